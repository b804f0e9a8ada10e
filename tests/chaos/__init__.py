"""Fault suite: the real system on its own infrastructure instance, under load and faults, checked by invariants."""
