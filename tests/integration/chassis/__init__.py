"""Tests: integration/chassis."""
