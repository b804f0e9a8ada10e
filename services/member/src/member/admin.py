"""Admin processes (12-factor XII): migrate (schema + admin seeding) and rebuild the activity read model."""

from __future__ import annotations

import asyncio
import json

from chassis.db import create_engine, create_session_factory
from chassis.logging import get_logger
from chassis.migrations import upgrade
from member.adapters.passwords import Argon2Passwords
from member.bootstrap import rebuild_read_model
from member.config import SERVICE_ROOT, Settings
from member.service_layer.handlers import seed_admin
from member.service_layer.unit_of_work import MemberUnitOfWork

log = get_logger(__name__)


async def seed_admin_account(settings: Settings) -> str | None:
    """Create the ADMIN account from ADMIN_EMAIL/ADMIN_PASSWORD if set and not there yet."""
    if not settings.ADMIN_EMAIL or settings.ADMIN_PASSWORD is None:
        log.info("admin.seed_skipped", reason="ADMIN_EMAIL or ADMIN_PASSWORD not set")
        return None
    engine = create_engine(settings.DATABASE_URL, pool_size=1)
    try:
        member_id = await seed_admin(
            MemberUnitOfWork(create_session_factory(engine), settings.SERVICE_NAME),
            Argon2Passwords(),
            email=settings.ADMIN_EMAIL,
            password=settings.ADMIN_PASSWORD.get_secret_value(),
            nickname=settings.ADMIN_NICKNAME,
        )
    finally:
        await engine.dispose()
    log.info("admin.seeded" if member_id else "admin.exists", email=settings.ADMIN_EMAIL)
    return str(member_id) if member_id else None


def migrate(settings: Settings) -> None:
    """Apply the migrations, then seed the admin account (idempotent: safe to re-run)."""
    upgrade(SERVICE_ROOT, settings.DATABASE_URL)
    asyncio.run(seed_admin_account(settings))


def rebuild_command(settings: Settings) -> None:
    """Rebuild the read model (``bootstrap.rebuild_read_model``) and print its report as JSON."""
    report = asyncio.run(rebuild_read_model(settings))
    print(json.dumps(report.to_json()))
