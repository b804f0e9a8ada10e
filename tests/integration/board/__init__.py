"""Tests: integration/board."""
