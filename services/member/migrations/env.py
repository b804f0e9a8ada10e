"""Alembic environment of the member database (run by ``member migrate``)."""

from chassis.migrations import run_env
from member.adapters.tables import metadata

run_env(metadata)
