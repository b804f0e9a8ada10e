"""Aggregate: the Member, its value rules (email, nickname, password policy), status life cycle and points."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass, field
from enum import StrEnum

from member.domain import errors
from member.domain.events import (
    Event,
    MemberProfileChanged,
    MemberRegistered,
    MemberWithdrawalCancelled,
    MemberWithdrawalStarted,
    MemberWithdrawn,
)
from member.domain.identity import canonical, display_form

SIGNUP_POINTS = 100

EMAIL_MAX_LENGTH = 254
NICKNAME_MIN_LENGTH = 2
NICKNAME_MAX_LENGTH = 20
PASSWORD_MIN_LENGTH = 8
#: Bounds the work one request can cause: argon2 cost grows with the input.
PASSWORD_MAX_LENGTH = 128
PASSWORD_MAX_BYTES = 512

#: Nicknames of withdrawn members start with this; nobody else may take one.
WITHDRAWN_NICKNAME_PREFIX = "탈퇴회원-"
#: The label board and qna show instead of a withdrawn author (docs/sagas.md, "탈퇴한 회원"): a
#: living member who took it could pass their posts off as a withdrawn member's. Compared by
#: text identity with every space removed, so "탈퇴한회원" and its NFD spelling are reserved too.
WITHDRAWN_AUTHOR_LABEL = "탈퇴한 회원"
WITHDRAWN_EMAIL_DOMAIN = "invalid"

_LOCAL_PART = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(
    rf"^(?P<local>{_LOCAL_PART})@(?P<domain>{_LABEL}(?:\.{_LABEL})*\.[A-Za-z]{{2,63}})$"
)


class Role(StrEnum):
    USER = "USER"
    ADMIN = "ADMIN"


class Status(StrEnum):
    ACTIVE = "ACTIVE"
    WITHDRAWING = "WITHDRAWING"
    WITHDRAWN = "WITHDRAWN"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def normalize_email(raw: str) -> str:
    """The email as stored and shown: trimmed, NFC, in the case it was typed (its text identity,
    ``identity.canonical``, is what must be unique). ``InvalidInput`` unless it matches the ASCII
    address pattern, at most 254 characters with a local part of at most 64 (RFC 5321 §4.5.3.1)."""
    email = display_form(raw)
    match = _EMAIL.match(email) if len(email) <= EMAIL_MAX_LENGTH else None
    if match is None or len(match["local"]) > 64:
        raise errors.InvalidInput("email is not a valid address")
    return email


def normalize_nickname(raw: str) -> str:
    """The nickname as stored and shown: trimmed and NFC (``identity.display_form``), 2-20
    characters counted in NFC, printable, not in the withdrawn members' reserved range.
    ``InvalidInput`` otherwise. The reserved prefix is matched by text identity, so a decomposed
    or differently cased spelling of it is reserved too."""
    nickname = display_form(raw)
    if not NICKNAME_MIN_LENGTH <= len(nickname) <= NICKNAME_MAX_LENGTH:
        raise errors.InvalidInput(
            f"nickname must be {NICKNAME_MIN_LENGTH} to {NICKNAME_MAX_LENGTH} characters"
        )
    if not nickname.isprintable():
        raise errors.InvalidInput("nickname must not contain control characters")
    key = canonical(nickname)
    if key.startswith(canonical(WITHDRAWN_NICKNAME_PREFIX)) or "".join(key.split()) == "".join(
        canonical(WITHDRAWN_AUTHOR_LABEL).split()
    ):
        raise errors.InvalidInput("this nickname is reserved")
    return nickname


def check_password_policy(password: str) -> None:
    """Refuse a password before it is hashed, so a huge one costs nothing."""
    if len(password) > PASSWORD_MAX_LENGTH or len(password.encode()) > PASSWORD_MAX_BYTES:
        raise errors.InvalidInput(f"password must be at most {PASSWORD_MAX_LENGTH} characters")
    if len(password) < PASSWORD_MIN_LENGTH:
        raise errors.InvalidInput(f"password must be at least {PASSWORD_MIN_LENGTH} characters")


@dataclass(eq=False)
class Member:
    """A registered person. Points never go negative; only an ACTIVE member changes its profile,
    logs in or refreshes a session. Withdrawal is a saga: ACTIVE → WITHDRAWING → WITHDRAWN, and
    WITHDRAWING (the saga's semantic lock) can be cancelled back to ACTIVE by the same saga."""

    id: uuid.UUID
    email: str
    nickname: str
    password_hash: str | None
    role: Role = Role.USER
    status: Status = Status.ACTIVE
    points: int = SIGNUP_POINTS
    created_at: dt.datetime = field(default_factory=utcnow)
    updated_at: dt.datetime = field(default_factory=utcnow)
    withdrawal_saga_id: str | None = None
    #: 1 at sign-up, +1 for every nickname change. The profile events carry it, so the services
    #: that copy the nickname can refuse an older event replayed after a newer one.
    profile_version: int = 1
    #: Text identities (``identity.canonical``) of the email and the nickname: what the unique
    #: indexes hold and every lookup compares. Derived when empty; loaded as stored otherwise,
    #: because migration 0004 gave the younger of two members whose old nicknames collide a
    #: disambiguated key, which a later unrelated save must keep.
    email_canonical: str = ""
    nickname_canonical: str = ""
    events: list[Event] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.email_canonical = self.email_canonical or canonical(self.email)
        self.nickname_canonical = self.nickname_canonical or canonical(self.nickname)

    @classmethod
    def register(
        cls,
        *,
        email: str,
        nickname: str,
        password_hash: str,
        role: Role = Role.USER,
        member_id: uuid.UUID | None = None,
        now: dt.datetime | None = None,
    ) -> Member:
        """Sign up (회원 가입): a new ACTIVE member with the sign-up points."""
        when = now or utcnow()
        member = cls(
            id=member_id or uuid.uuid4(),
            email=normalize_email(email),
            nickname=normalize_nickname(nickname),
            password_hash=password_hash,
            role=role,
            created_at=when,
            updated_at=when,
        )
        member.events.append(
            MemberRegistered(
                member_id=member.id,
                nickname=member.nickname,
                role=member.role,
                profile_version=member.profile_version,
                occurred_at=when,
            )
        )
        return member

    def pull_events(self) -> list[Event]:
        """Hand the recorded events over (to the outbox) and forget them."""
        events, self.events = self.events, []
        return events

    @property
    def is_active(self) -> bool:
        return self.status is Status.ACTIVE

    def _require_active(self, action: str) -> None:
        if not self.is_active:
            raise errors.InvalidStateTransition(f"cannot {action}: the member is {self.status}")

    def require_profile_changeable(self) -> None:
        """Update profile (회원 정보 수정) is for an ACTIVE member only: while WITHDRAWING (the
        saga's semantic lock) or once WITHDRAWN, every PATCH, even an empty one, is refused
        with InvalidStateTransition (409: the account's state conflicts with the request)."""
        self._require_active("change the profile")

    def change_nickname(self, nickname: str, now: dt.datetime | None = None) -> None:
        """Update profile (회원 정보 수정); other services learn the nickname from the event."""
        self._require_active("change the nickname")
        new = normalize_nickname(nickname)
        if new == self.nickname:
            return
        self.nickname = new
        self.nickname_canonical = canonical(new)
        self.profile_version += 1
        self.updated_at = now or utcnow()
        self.events.append(
            MemberProfileChanged(
                member_id=self.id,
                nickname=new,
                profile_version=self.profile_version,
                occurred_at=self.updated_at,
            )
        )

    def change_password_hash(self, password_hash: str, now: dt.datetime | None = None) -> None:
        self._require_active("change the password")
        self.password_hash = password_hash
        self.updated_at = now or utcnow()

    def rehash_password(self, password_hash: str) -> None:
        """Store a hash made with stronger parameters; the password itself is unchanged."""
        self.password_hash = password_hash

    # --- withdrawal (saga participant) -------------------------------------------------------

    def start_withdrawal(self, saga_id: str, now: dt.datetime | None = None) -> None:
        """ACTIVE → WITHDRAWING. Repeating it for the same saga is harmless."""
        if self.status is Status.WITHDRAWING and self.withdrawal_saga_id == saga_id:
            return
        if not self.is_active:
            raise errors.InvalidStateTransition(
                f"cannot start a withdrawal: the member is {self.status}"
            )
        self.status = Status.WITHDRAWING
        self.withdrawal_saga_id = saga_id
        self.updated_at = now or utcnow()
        self.events.append(
            MemberWithdrawalStarted(member_id=self.id, saga_id=saga_id, occurred_at=self.updated_at)
        )

    def cancel_withdrawal(self, saga_id: str, now: dt.datetime | None = None) -> bool:
        """WITHDRAWING → ACTIVE if this saga started it; otherwise nothing to undo (False)."""
        if self.status is not Status.WITHDRAWING or self.withdrawal_saga_id != saga_id:
            return False
        self.status = Status.ACTIVE
        self.withdrawal_saga_id = None
        self.updated_at = now or utcnow()
        self.events.append(
            MemberWithdrawalCancelled(
                member_id=self.id, saga_id=saga_id, occurred_at=self.updated_at
            )
        )
        return True

    def complete_withdrawal(self, saga_id: str, now: dt.datetime | None = None) -> bool:
        """WITHDRAWING → WITHDRAWN: erase personal data. False when already done by this saga."""
        if self.status is Status.WITHDRAWN and self.withdrawal_saga_id == saga_id:
            return False
        if self.status is not Status.WITHDRAWING or self.withdrawal_saga_id != saga_id:
            raise errors.InvalidStateTransition(
                f"cannot complete the withdrawal: the member is {self.status}"
            )
        self.status = Status.WITHDRAWN
        self.email = f"withdrawn+{self.id.hex}@{WITHDRAWN_EMAIL_DOMAIN}"
        self.nickname = f"{WITHDRAWN_NICKNAME_PREFIX}{self.id.hex[:12]}"
        self.email_canonical = canonical(self.email)
        self.nickname_canonical = canonical(self.nickname)
        self.password_hash = None
        self.updated_at = now or utcnow()
        self.events.append(MemberWithdrawn(member_id=self.id, occurred_at=self.updated_at))
        return True

    # --- points -----------------------------------------------------------------------------

    def debit(self, amount: int) -> None:
        if amount < 0:
            raise errors.InvalidTransfer("amount must not be negative")
        if amount > self.points:
            raise errors.InsufficientPoints(f"member has {self.points} points, {amount} are needed")
        self.points -= amount

    def credit(self, amount: int) -> None:
        if amount < 0:
            raise errors.InvalidTransfer("amount must not be negative")
        self.points += amount
