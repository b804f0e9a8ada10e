"""Entrypoints: HTTP routes, integration-event and saga-command handlers, background loops."""
