"""Domain errors: business refusals, named by what went wrong (mapped to HTTP or saga replies at the edge)."""

from __future__ import annotations


class MemberError(Exception):
    """Base of every refusal the member context can give."""


class InvalidInput(MemberError):
    """A value breaks a rule of the model (email format, nickname length, password size)."""


class DuplicateEmail(MemberError):
    """Another member already has this email."""


class DuplicateNickname(MemberError):
    """Another member already has this nickname."""


class MemberNotFound(MemberError):
    """No member with this id."""


class InvalidCredentials(MemberError):
    """The email/password pair does not match an account."""


class LoginLocked(MemberError):
    """Too many password checks for one email (or one member's ``current_password``); try again
    after ``retry_after`` seconds."""

    def __init__(
        self, retry_after: int, detail: str = "too many failed logins; try again later"
    ) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class AccountNotActive(MemberError):
    """The account is being withdrawn or is withdrawn."""


class InvalidRefreshToken(MemberError):
    """The refresh token is unknown, expired, revoked or was already used."""


class CurrentPasswordRequired(MemberError):
    """A password change must carry the current password."""


class WrongCurrentPassword(MemberError):
    """The current password given with a password change is wrong."""


class InvalidStateTransition(MemberError):
    """The member's status does not allow this change."""


class InsufficientPoints(MemberError):
    """Points never go negative."""


class InvalidTransfer(MemberError):
    """A point transfer that makes no sense (negative amount, paying oneself, bad ids)."""
