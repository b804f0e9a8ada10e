"""Service layer: use cases, the unit of work, the read-model projection and its rebuild."""
