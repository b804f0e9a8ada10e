"""Entrypoints: the HTTP API of the orchestrator (the worker's entrypoint is the reply consumer)."""
