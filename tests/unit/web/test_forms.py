"""Form input parsing and the messages an API refusal becomes on a form (web.forms)."""

from __future__ import annotations

import pytest

from web.forms import whole_number


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("0", 0),
        ("42", 42),
        (" 7 ", 7),
        ("-3", -3),
        ("+3", 3),
        ("999999999", 999_999_999),
        ("1000000000", None),
        ("²", None),
        ("①", None),
        ("٣", None),
        ("1_000", None),
        ("1e3", None),
        ("", None),
        (None, None),
        ("4\n2", None),
    ],
)
def test_whole_number_takes_ascii_digits_only(typed: str | None, expected: int | None) -> None:
    assert whole_number(typed) == expected
