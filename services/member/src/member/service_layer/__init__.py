"""Service layer: use cases of the member context, orchestrating the domain through ports."""
