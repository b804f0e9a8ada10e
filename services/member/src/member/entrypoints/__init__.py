"""Entrypoints: HTTP routes, saga command handlers and event handlers (thin adapters into the service layer)."""
