"""Adapters of the web deployable: its only outbound port is the gateway's public HTTP API."""
