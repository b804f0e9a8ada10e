"""Alembic environment of the qna database (run by ``qna migrate``)."""

from chassis.migrations import run_env
from qna.adapters.tables import metadata

run_env(metadata)
