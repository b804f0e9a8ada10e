"""Generated content for the load generator: members, posts, questions, answers and comments (test data generation).

Every member it creates is recognisable: email and nickname start with ``loadgen-``, so a
demonstration's data can be told from a person's, and a withdrawal can only ever be asked for
a member this generator created (``ensure_own``). Text is drawn from small word lists with a
``random.Random`` the caller owns, so a seeded generator repeats itself. Limits come from the
public API (docs/services/*.md): nickname 2-20, password ≥ 8, title 1-200, bounty 0-1000.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass

PREFIX = "loadgen-"
#: Addresses at example.com (RFC 2606): never a real mailbox.
EMAIL_DOMAIN = "example.com"
NICKNAME_MAX = 20
TITLE_MAX = 200
BOUNTY_MAX = 1000
#: Bounties stay small, so an asker can pay for several acceptances (a new member has 100
#: points, docs/sagas.md) and an acceptance rarely compensates for want of points.
BOUNTY_CAP = 10

TOPICS = (
    "Kafka consumer lag",
    "the transactional outbox",
    "saga compensation",
    "PostgreSQL indexes",
    "read models",
    "idempotent consumers",
    "JWT key rotation",
    "rate limits at the gateway",
    "circuit breakers",
    "Redis caching",
    "database per service",
    "trace propagation",
)
OPENERS = (
    "Notes on",
    "A question about",
    "What I learned from",
    "How do you handle",
    "Thoughts on",
    "Trouble with",
)
SENTENCES = (
    "We measured it on a small machine first.",
    "The read model caught up after a few hundred milliseconds.",
    "Retries are safe because the consumer is idempotent.",
    "Each service keeps its own database.",
    "The gateway checks the token before anything else.",
    "A compensation undoes the earlier steps in reverse order.",
    "Keep the pivot step as late as possible.",
    "The dashboard shows the lag per consumer group.",
    "오늘도 좋은 하루 되세요.",
    "답변 감사합니다!",
)


@dataclass(frozen=True)
class Identity:
    """A member the generator signs up: ``email`` and ``nickname`` start with ``loadgen-``."""

    email: str
    nickname: str
    password: str


def identity(rng: random.Random) -> Identity:
    """A new, unique member: ``loadgen-<8 hex>`` as nickname (16 characters) and email."""
    tag = uuid.UUID(int=rng.getrandbits(128)).hex[:8]
    nickname = f"{PREFIX}{tag}"
    password = f"{PREFIX}pw-{uuid.UUID(int=rng.getrandbits(128)).hex[:12]}"
    return Identity(email=f"{nickname}@{EMAIL_DOMAIN}", nickname=nickname, password=password)


def is_own(nickname: str | None) -> bool:
    """Whether content is by a member this generator created (writes go only to those)."""
    return bool(nickname) and str(nickname).startswith(PREFIX)


def ensure_own(member: Identity) -> None:
    """Refuse (``ValueError``) to act destructively for anyone the generator did not create:
    never the admin, never a person's account."""
    if not (member.email.startswith(PREFIX) and member.nickname.startswith(PREFIX)):
        raise ValueError(f"{member.email} was not created by the load generator")


def title(rng: random.Random) -> str:
    """A post or question title, 1-200 characters."""
    return f"{rng.choice(OPENERS)} {rng.choice(TOPICS)}"[:TITLE_MAX]


def paragraph(rng: random.Random, sentences: tuple[int, int] = (1, 4)) -> str:
    """Body text of one to a few sentences (a post, question, answer or comment)."""
    return " ".join(rng.choice(SENTENCES) for _ in range(rng.randint(*sentences)))


def search_term(rng: random.Random) -> str:
    """A word a reader searches for (``?q=``)."""
    return rng.choice(TOPICS).split()[-1]


def bounty(rng: random.Random, points: int, open_questions: int, minimum: int = 0) -> int:
    """A question's bounty, ``minimum`` to ``BOUNTY_CAP``, that the asker can still pay even if
    each of its ``open_questions`` (counting this one) is accepted: at most ``points`` split
    between them, so an acceptance is not compensated for want of points. Below ``minimum``
    (0 included) when that is all the asker can afford."""
    affordable = max(0, points) // max(1, open_questions)
    top = min(BOUNTY_CAP, affordable, BOUNTY_MAX)
    return rng.randint(min(max(0, minimum), top), top)
