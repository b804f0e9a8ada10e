"""Versioned schema of the chassis tables: an Alembic branch (label ``chassis``) every service applies."""

from pathlib import Path

#: The folder of the chassis branch's revisions; ``chassis.migrations.alembic_config`` adds it to
#: every service's ``version_locations``.
VERSIONS = Path(__file__).resolve().parent / "versions"

#: The chassis revision holding the tables every service had from its first migration; each
#: service's revision 0001 names it in ``depends_on``.
BASE_REVISION = "chassis_0001"
