"""Test support: real infrastructure fixtures, token helpers and process helpers."""
