"""Unit tests of the saga orchestrator."""
