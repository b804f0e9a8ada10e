"""Text identity (docs/services/member.md): one canonical form for emails and nicknames, and the Member's keys."""

from __future__ import annotations

import random
import unicodedata

import pytest

from member.domain import errors
from member.domain.identity import canonical, display_form
from member.domain.model import (
    WITHDRAWN_AUTHOR_LABEL,
    WITHDRAWN_NICKNAME_PREFIX,
    Member,
    Status,
)

HONG = "홍길동"
HONG_NFD = unicodedata.normalize("NFD", HONG)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (HONG, HONG_NFD),  # a macOS or mobile keyboard's decomposed Hangul
        ("Straße", "STRASSE"),  # full case folding: ß → ss
        ("  Hong@Example.com", "hong@example.com\u3000"),  # any Unicode white space trimmed
        ("Ǆemal", "ǆemal"),  # a title-case digraph
        ("café", "CAFE\u0301"),  # a combining accent after an upper-case letter
        ("ΣΊΣΥΦΟΣ", "σίσυφος"),  # final sigma folds like sigma
    ],
)
def test_text_that_reads_the_same_is_the_same(one: str, other: str) -> None:
    """Text identity: canonically equivalent, case-variant and padded spellings are one key."""
    assert one != other
    assert canonical(one) == canonical(other)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("Ａdmin", "admin"),  # fullwidth stays distinct: NFC, not NFKC
        ("ㅎㅗ", "호"),  # two letters are not one syllable (NFKC would merge them)
        ("x①", "x1"),
        ("ab", "a b"),
    ],
)
def test_text_that_reads_differently_stays_different(one: str, other: str) -> None:
    """Text identity: compatibility forms are not folded (the contract's NFC, see the module)."""
    assert canonical(one) != canonical(other)


def test_canonical_is_idempotent_and_closed_under_canonical_equivalence() -> None:
    """Text identity: the stored key is a fixed point, and NFC or NFD input gives the same key,
    over random strings of cased, combining and Hangul code points."""
    rng = random.Random(12)
    pool = (
        [chr(c) for c in range(0x41, 0x7B)]
        + [chr(c) for c in range(0xC0, 0x250)]
        + [chr(c) for c in range(0x300, 0x370)]  # combining marks
        + [chr(c) for c in range(0x370, 0x400)]
        + [chr(c) for c in range(0x1100, 0x1200)]  # conjoining jamo
        + [chr(c) for c in range(0x1E00, 0x2000)]
        + ["ß", "ﬃ", "İ", "ı", "ſ", "K", "Å", HONG]
    )
    for _ in range(20_000):
        text = "".join(rng.choice(pool) for _ in range(rng.randint(1, 6)))
        key = canonical(text)
        assert canonical(key) == key, ascii(text)
        for form in ("NFC", "NFD"):
            assert canonical(unicodedata.normalize(form, text)) == key, ascii(text)


def test_display_form_is_trimmed_nfc_in_the_typed_case() -> None:
    assert display_form(f"  {HONG_NFD}\u00a0") == HONG
    assert display_form(" Hong@Example.com ") == "Hong@Example.com"


def test_member_keeps_the_display_form_and_derives_its_keys() -> None:
    """Text identity: what the member typed is shown; the keys are what uniqueness compares."""
    member = Member.register(email=" Hong@Example.com ", nickname=HONG_NFD, password_hash="h")
    assert (member.email, member.nickname) == ("Hong@Example.com", HONG)
    assert (member.email_canonical, member.nickname_canonical) == ("hong@example.com", HONG)

    member.change_nickname("STRASSE")
    assert (member.nickname, member.nickname_canonical) == ("STRASSE", "strasse")

    member.start_withdrawal("saga-1")
    member.complete_withdrawal("saga-1")
    assert member.status is Status.WITHDRAWN
    assert member.email_canonical == member.email.lower()
    assert member.nickname_canonical == member.nickname


def test_a_stored_key_is_kept() -> None:
    """A disambiguated key (migration 0004) survives loading; only a new nickname replaces it."""
    member = Member(
        id=Member.register(email="a@example.com", nickname="ab", password_hash="h").id,
        email="a@example.com",
        nickname=HONG_NFD,
        nickname_canonical=f"{HONG}\x1fabc",
        password_hash="h",
    )
    assert member.nickname_canonical == f"{HONG}\x1fabc"


@pytest.mark.parametrize(
    "nickname",
    [
        unicodedata.normalize("NFD", WITHDRAWN_NICKNAME_PREFIX) + "abc",
        WITHDRAWN_NICKNAME_PREFIX + "ABC",
    ],
)
def test_the_reserved_prefix_is_matched_by_text_identity(nickname: str) -> None:
    """Text identity: a decomposed spelling of the withdrawn members' prefix is reserved too."""
    with pytest.raises(errors.InvalidInput):
        Member.register(email="a@example.com", nickname=nickname, password_hash="h")


@pytest.mark.parametrize(
    "nickname",
    [
        WITHDRAWN_AUTHOR_LABEL,
        " 탈퇴한회원 ",
        unicodedata.normalize("NFD", WITHDRAWN_AUTHOR_LABEL),
        "탈퇴한  회원",
    ],
)
def test_the_withdrawn_author_label_cannot_be_taken(nickname: str) -> None:
    """Text identity: the label shown for a withdrawn author ("탈퇴한 회원") is no living member's
    nickname, in any spelling that reads the same; a living member who took it could pass
    their posts off as a withdrawn member's."""
    with pytest.raises(errors.InvalidInput):
        Member.register(email="a@example.com", nickname=nickname, password_hash="h")


def test_a_nickname_that_only_contains_the_label_is_allowed() -> None:
    """Only the label itself is reserved, not every nickname with those syllables in it."""
    member = Member.register(email="a@example.com", nickname="탈퇴한 회원님", password_hash="h")
    assert member.nickname == "탈퇴한 회원님"


def test_length_is_counted_in_nfc() -> None:
    """A 20-syllable nickname typed as decomposed jamo (up to 60 code points) is accepted."""
    nickname = unicodedata.normalize("NFD", "한" * 20)
    assert len(nickname) == 60
    assert Member.register(email="a@example.com", nickname=nickname, password_hash="h").nickname


def test_emails_are_checked_in_nfc() -> None:
    """The KELVIN SIGN is canonically "K" (a singleton decomposition), so it is that letter; a
    Cyrillic look-alike is another letter and the ASCII address pattern refuses it."""
    member = Member.register(email="\u212aim@example.com", nickname="ab", password_hash="h")
    assert (member.email, member.email_canonical) == ("Kim@example.com", "kim@example.com")
    with pytest.raises(errors.InvalidInput):
        Member.register(email="\u0430lice@example.com", nickname="ab", password_hash="h")
