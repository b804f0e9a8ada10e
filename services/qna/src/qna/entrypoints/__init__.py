"""Entrypoints: HTTP routes, message handlers and their schemas."""
