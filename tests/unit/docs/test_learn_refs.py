"""The line-reference mender (tools/learn_refs.py): a stale reference is re-pointed at the symbol's definition."""

from __future__ import annotations

from pathlib import Path

from tools import learn_refs

SOURCE = "libs/chassis/src/chassis/saga.py"


def line_of(prefix: str) -> int:
    lines = (learn_refs.ROOT / SOURCE).read_text(encoding="utf-8").splitlines()
    return next(i + 1 for i, line in enumerate(lines) if line.startswith(prefix))


def test_a_stale_reference_is_re_pointed_at_the_definition(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(f"See `command_payload` (`{SOURCE}:3`) and `SagaParticipant` (`{SOURCE}:1`).\n")
    moved, lost = learn_refs.mend(page, fix=True)
    assert (moved, lost) == (2, [])
    assert page.read_text() == (
        f"See `command_payload` (`{SOURCE}:{line_of('def command_payload')}`) and "
        f"`SagaParticipant` (`{SOURCE}:{line_of('class SagaParticipant')}`).\n"
    )


def test_a_current_reference_is_left_and_a_vanished_symbol_is_reported(tmp_path: Path) -> None:
    current = line_of("def command_payload")
    page = tmp_path / "page.md"
    text = f"`command_payload` (`{SOURCE}:{current}`), `no_such_symbol_here` (`{SOURCE}:5`)\n"
    page.write_text(text)
    moved, lost = learn_refs.mend(page, fix=True)
    assert moved == 0
    assert lost == [f"{page}: no_such_symbol_here not in {SOURCE}"]
    assert page.read_text() == text
