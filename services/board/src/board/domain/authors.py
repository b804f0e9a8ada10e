"""Value object: how an author is shown, from the service's local copy of member nicknames.

Only board has it as a module: board's read model and API join its author copy for every
byline; qna stores the byline in its read model's own author copy (``service_layer/projector.py``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

#: Shown, without an id, for a member who withdrew (or whose content the saga anonymized).
WITHDRAWN_NICKNAME = "탈퇴한 회원"
#: Shown while the member's MemberRegistered event has not reached this service yet.
UNKNOWN_NICKNAME = "알 수 없음"


@dataclass(frozen=True)
class Author:
    """The local copy of one member, fed by ``member.events``."""

    member_id: uuid.UUID
    nickname: str | None
    withdrawn: bool = False


@dataclass(frozen=True)
class Byline:
    """What a reader sees as the author of a post or comment."""

    id: uuid.UUID | None
    nickname: str


def byline(author_id: uuid.UUID | None, author: Author | None) -> Byline:
    """Anonymized or withdrawn authors lose their id; an author not yet known gets a placeholder."""
    if author_id is None or (author is not None and author.withdrawn):
        return Byline(None, WITHDRAWN_NICKNAME)
    if author is None or not author.nickname:
        return Byline(author_id, UNKNOWN_NICKNAME)
    return Byline(author_id, author.nickname)
