"""Alembic environment of the board database: the chassis runs it online with the async engine."""

from board.adapters.tables import metadata
from chassis.migrations import run_env

run_env(metadata)
