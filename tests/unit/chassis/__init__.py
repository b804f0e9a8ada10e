"""Tests: unit/chassis."""
