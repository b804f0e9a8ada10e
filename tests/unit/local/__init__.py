"""Tests: the make run supervisor (deploy/local/run.py)."""
