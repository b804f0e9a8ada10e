"""Service layer: use cases run in a unit of work, independent of HTTP and Kafka."""
