"""Token refresh for a logged-in persona: rotate the pair before the access token expires.

Access tokens live 15 minutes and refresh tokens rotate (docs/services/member.md): a persona refreshes
``margin`` seconds before ``expires_in`` runs out, replaces both tokens with the answer, and
logs in again when a refresh is refused (a rotated-away or revoked token), never reuses an old
refresh token (that would revoke its whole family). The HTTP calls are the caller's; this
module only keeps the pair and decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Refresh this many seconds before the access token expires, so no request carries a token
#: that expires on the way.
REFRESH_MARGIN_SECONDS = 60.0


@dataclass
class Tokens:
    """One member's token pair; ``expires_at`` is on the caller's monotonic clock (seconds)."""

    access: str
    refresh: str
    expires_at: float

    @classmethod
    def from_response(cls, body: Mapping[str, Any], now: float) -> Tokens:
        """From a login or refresh answer ``{access_token, refresh_token, expires_in}``;
        ``KeyError``/``ValueError`` for an answer that is not one."""
        return cls(
            access=str(body["access_token"]),
            refresh=str(body["refresh_token"]),
            expires_at=now + float(body["expires_in"]),
        )

    def due(self, now: float, margin: float = REFRESH_MARGIN_SECONDS) -> bool:
        """Whether to refresh before the next request: within ``margin`` of the expiry (a
        token that lives less than the margin is refreshed at once, on every check)."""
        return now >= self.expires_at - margin

    def rotate(self, body: Mapping[str, Any], now: float) -> None:
        """Take the new pair from a refresh answer; the old refresh token is never used again."""
        fresh = Tokens.from_response(body, now)
        self.access, self.refresh, self.expires_at = fresh.access, fresh.refresh, fresh.expires_at

    @property
    def header(self) -> dict[str, str]:
        """The ``Authorization`` header for a request."""
        return {"Authorization": f"Bearer {self.access}"}


class Refresh:
    """What to do with a refresh's answer, by status: rotate (200), log in again (401, 403:
    the refresh token is no longer valid), or try again later (anything else, e.g. 503)."""

    ROTATE = "rotate"
    LOG_IN = "log_in"
    LATER = "later"

    @staticmethod
    def decide(status: int) -> str:
        if status == 200:
            return Refresh.ROTATE
        if status in (400, 401, 403, 422):
            return Refresh.LOG_IN
        return Refresh.LATER
