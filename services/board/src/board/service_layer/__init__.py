"""Service layer: use cases, saga steps, the unit of work and the read-model projection."""
