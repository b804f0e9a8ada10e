"""Domain errors: the ways a board rule can refuse a change, independent of any transport."""

from __future__ import annotations


class DomainError(Exception):
    """A business rule refused the change; nothing was modified."""


class NotPermitted(DomainError):
    """The actor may not do this (not the author, not an admin); HTTP 403."""


class InvalidValue(DomainError):
    """A value breaks a limit of the model (length, format); HTTP 422."""
