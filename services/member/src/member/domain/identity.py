"""Text identity: the one canonical form under which emails and nicknames are compared.

docs/services/member.md ("Text identity"): emails and nicknames are compared after trimming, case
folding and Unicode NFC normalization, so text that reads the same is the same. Every uniqueness
check and lookup of an email or a nickname goes through :func:`canonical` (the ``email_canonical``
and ``nickname_canonical`` columns and their unique indexes hold its result); what the member typed
is kept, in :func:`display_form`, for showing.

Why canonical equivalence (NFC) and not compatibility equivalence (NFKC): NFKC also folds
characters that read differently. It maps the Hangul compatibility letters people type on their
own (``"ㅎㅗ"``, ``"ㅋㅋ"``) to conjoining jamo, which then compose into syllables, so
``NFKC("ㅎㅗ") == "호"``; it turns ``"①"`` into ``"1"`` and ``"²"`` into ``"2"``. A fullwidth
``"Ａｄｍｉｎ"`` stays distinct from ``"admin"`` under NFC, and it also looks distinct (twice as
wide). Emails cannot hold such characters at all (the address pattern is ASCII), so only
nicknames are concerned, and for them NFC's "reads the same" is the rule: canonically equivalent
strings (UAX #15 §1.1) render identically by definition; compatibility-equivalent ones need not.
"""

from __future__ import annotations

import unicodedata

__all__ = ["canonical", "display_form"]


def display_form(text: str) -> str:
    """What is stored and shown: ``text`` trimmed and in Normalization Form C (UAX #15).

    The case the member typed is kept. NFC makes the decomposed Hangul of a macOS or mobile
    keyboard (``unicodedata.normalize("NFD", "홍길동")``, 9 code points) the 3 precomposed
    syllables, so length rules count what a reader sees. Trimming is ``str.strip()``: every
    Unicode White_Space character (U+3000 IDEOGRAPHIC SPACE and U+00A0 NO-BREAK SPACE included).
    """
    return unicodedata.normalize("NFC", text.strip())


def canonical(text: str) -> str:
    """The text identity of an email or a nickname: equal results mean "the same" for every
    uniqueness check and lookup.

    ``NFC(casefold(NFD(strip(text))))``: the Unicode Standard's *canonical caseless match*
    (§3.13, definition D145: ``NFD(toCasefold(NFD(X)))``), with the result kept in NFC rather
    than NFD; both are representatives of the same canonical-equivalence class, so equality is
    the same and the stored key is as short as the display form. The inner NFD is what makes the
    fold agree for all canonically equivalent inputs (a precomposed letter and its decomposed
    sequence fold alike). ``str.casefold`` is full case folding (CaseFolding.txt statuses C and
    F, §3.13 "Default Case Folding"), so ``"Straße"``, ``"STRASSE"`` and ``"strasse"`` are one
    identity, which ``lower()`` would not make them.

    The result is stable across Unicode versions for the text this service accepts: nicknames
    refuse unassigned code points (``str.isprintable``) and emails are ASCII, and Unicode's
    normalization and case-folding stability policies fix both operations for assigned
    characters. The function is idempotent: ``canonical(canonical(x)) == canonical(x)``.
    """
    decomposed = unicodedata.normalize("NFD", text.strip())
    return unicodedata.normalize("NFC", decomposed.casefold())
