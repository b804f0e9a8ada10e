"""Alembic environment of the saga database."""

from chassis.migrations import run_env
from saga.store import metadata

run_env(metadata)
