"""Domain errors: the ways a Q&A rule can refuse a change, independent of any transport."""

from __future__ import annotations


class DomainError(Exception):
    """A business rule refused the change; nothing was modified."""


class InvalidValue(DomainError):
    """A value breaks an invariant (a blank title, a bounty out of range...)."""


class NotAllowed(DomainError):
    """The actor may not do this (only the author or an admin, never a withdrawn member...)."""


class NotFound(DomainError):
    """The question has no answer or comment with that id."""


class InvalidState(DomainError):
    """The question is not in a state that allows this (a semantic lock, an accepted answer...)."""


class InvalidTransition(InvalidState):
    """The question's state machine has no such transition from the current status."""
