"""Backend-for-Frontend token handling: the browser holds only an opaque HttpOnly session cookie; the access and refresh tokens stay server-side in Redis.

This is the pattern the IETF's "OAuth 2.0 for Browser-Based Applications" recommends for
browser apps (the BFF keeps tokens out of reach of any script on the page).
Interface only in this revision: ``Session`` is the shape every page reads.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The session cookie's name (``__Host-`` prefixed when served over TLS).
SESSION_COOKIE = "msa_session"


@dataclass
class Session:
    """One browser's session as stored in Redis under ``web:session:{sha256(cookie)}``.

    ``key`` is that hash (never the cookie itself); ``csrf`` is the synchronizer token every
    form of this session carries. A guest session has no ``member_id`` and no tokens."""

    key: str
    csrf: str
    member_id: str | None = None
    nickname: str | None = None
    role: str | None = None
    access_token: str | None = None
    refresh_token: str | None = None
    #: epoch seconds
    access_expires_at: float = 0.0
    created_at: float = 0.0
    #: the withdrawal saga this session started, if any (its COMPLETED outcome is a 401)
    withdrawal_saga_id: str | None = None

    @property
    def signed_in(self) -> bool:
        return self.member_id is not None and self.access_token is not None

    @property
    def is_admin(self) -> bool:
        return self.role == "ADMIN"
