"""Tests of the API gateway."""
