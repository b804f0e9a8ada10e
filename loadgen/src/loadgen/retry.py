"""Retry of transient failures, with the same Idempotency-Key (the idempotent client side of at-least-once).

A connection error (status 0 in Locust), 502, 503 or 504 may have happened after the
service did the work: a write is sent again with the *same* ``Idempotency-Key``, so the
retry returns the first result instead of writing twice (docs/services/board.md,
"Idempotency-Key"). A 429 is not retried: the persona waits ``Retry-After`` and moves on,
since the limit says the whole client is too fast. Anything else is the answer.
"""

from __future__ import annotations

#: Connection error (Locust reports status 0), bad gateway, unavailable, gateway timeout.
TRANSIENT = frozenset({0, 502, 503, 504})
#: Attempts per request, the first included.
MAX_ATTEMPTS = 3
#: Seconds before the second attempt; doubled for each one after.
BACKOFF_SECONDS = 0.5
#: The longest a persona honours a ``Retry-After`` before it carries on.
MAX_RETRY_AFTER_SECONDS = 30.0


def should_retry(status: int, attempt: int, max_attempts: int = MAX_ATTEMPTS) -> bool:
    """Whether attempt number ``attempt`` (from 1) that got ``status`` is tried again."""
    return status in TRANSIENT and attempt < max_attempts


def backoff(attempt: int, base: float = BACKOFF_SECONDS) -> float:
    """Seconds to wait after failed attempt ``attempt`` (from 1): base, 2 × base, 4 × base..."""
    return float(base * 2 ** max(0, attempt - 1))


def retry_after(value: str | None, default: float = 1.0) -> float:
    """Seconds to wait from a ``Retry-After`` header in delay-seconds form (RFC 9110 §10.2.3),
    between 0 and ``MAX_RETRY_AFTER_SECONDS``; ``default`` when it is absent or a date."""
    try:
        seconds = float(value) if value is not None else default
    except ValueError:
        seconds = default
    return min(max(0.0, seconds), MAX_RETRY_AFTER_SECONDS)
