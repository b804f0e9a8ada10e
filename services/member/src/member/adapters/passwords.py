"""Password hashing with argon2id, run in a worker thread so the event loop keeps serving.

Only member has it: member is the only service that holds credentials (docs/CONVENTIONS.md
"One shape for every service").
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class Argon2Passwords:
    """argon2-cffi's defaults (RFC 9106 low-memory profile, argon2id)."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        # Verifying against this when an account does not exist costs the same time as a real check.
        self._decoy = self._hasher.hash("decoy password for unknown accounts")

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        return await asyncio.to_thread(self._verify, password_hash, password)

    def _verify(self, password_hash: str | None, password: str) -> bool:
        try:
            return bool(self._hasher.verify(password_hash or self._decoy, password)) and bool(
                password_hash
            )
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return bool(self._hasher.check_needs_rehash(password_hash))
        except InvalidHashError:
            return False
