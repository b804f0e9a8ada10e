"""Tests: unit/board."""
