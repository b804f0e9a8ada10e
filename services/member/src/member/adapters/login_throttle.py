"""Rate limiting of password checks (per email at login, per member for ``current_password``): each attempt reserved atomically in Redis before the check, per replica while Redis is down.

Reserving first is what makes the limit hold under concurrency: counting the failure only after
the slow argon2 check is a check-then-act race on a limit, in which 30 simultaneous guesses all
read "0 failures" and all get a hash check. Here the 6th of 30 simultaneous attempts is refused
before any hashing.

Redis is a dependency the process degrades around (docs/CONVENTIONS.md "Degraded dependencies"):
while it cannot answer, the count falls back to this replica's memory
(``chassis.ratelimit.Limiter``), so logins stay available to every client and each email is still
limited, per replica, instead of either refusing everybody or dropping the limit. Each bypassed call
is logged and counted in
``degraded_dependency_failures_total{dependency="redis",operation="login_throttle"}``.
"""

from __future__ import annotations

from redis.asyncio import Redis

from chassis import ratelimit
from member.domain.identity import canonical


class RedisLoginThrottle:
    """At most ``max_failures`` password checks per email within ``window_seconds``; the next
    attempt is refused (with the seconds until the window ends) without a check, so after
    ``max_failures`` failures in a window the next attempt gets 429 (docs/services/member.md). A
    right password clears the count. ``timeout`` (seconds) bounds each Redis call before the
    local fallback answers. Keys are ``<key_prefix>`` + ``key(subject)``."""

    operation = "login_throttle"

    def __init__(
        self,
        redis: Redis,
        *,
        max_failures: int,
        window_seconds: int,
        service: str = "member",
        key_prefix: str = "",
        timeout: float = 0.5,
    ) -> None:
        self.max_failures = max_failures
        self.window_seconds = window_seconds
        self.limiter = ratelimit.Limiter(
            redis,
            service=service,
            operation=self.operation,
            key_prefix=key_prefix,
            timeout=timeout,
        )

    @staticmethod
    def key(email: str) -> str:
        """One counter per text identity of the email (``identity.canonical``), so another
        case or normalization form of the same address cannot start a fresh count."""
        return f"login-failures:{canonical(email)}"

    async def reserve(self, subject: str) -> int | None:
        """Take one attempt for ``subject`` before its password is checked: None when granted,
        else the seconds until the window ends (the caller refuses without a check)."""
        decision = await self.limiter.hit(self.key(subject), self.max_failures, self.window_seconds)
        return None if decision.allowed else decision.retry_after

    async def release(self, subject: str) -> None:
        """Hand back a reserved attempt that never reached the password check."""
        await self.limiter.release(self.key(subject))

    async def reset(self, subject: str) -> None:
        """The password was right: the attempts so far (this one included) are forgotten."""
        await self.limiter.reset(self.key(subject))


class RedisPasswordCheckThrottle(RedisLoginThrottle):
    """The same reservation for the ``current_password`` of ``PATCH /api/members/me``, keyed by
    the member id: a stolen access token cannot be used to guess the password at full speed."""

    operation = "password_check_throttle"

    @staticmethod
    def key(member_id: str) -> str:
        return f"password-checks:{member_id}"
