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


def test_a_stale_line_anchor_of_a_symbol_link_is_re_pointed(tmp_path: Path) -> None:
    """Kind: a ``#L<n>`` link into the code that, after an edit above it, lands on a blank line
    (``SagaEngine._continue_trace`` at ``engine.py#L223``, the function at 228)."""
    page = tmp_path / "docs" / "page.md"
    page.parent.mkdir()
    linked = learn_refs.ROOT / SOURCE
    # the page links relative to itself: make the repository's file reachable from tmp_path
    (tmp_path / "libs").symlink_to(learn_refs.ROOT / "libs")
    text = (
        f"[`command_payload`](../{SOURCE}#L2), [`SagaParticipant.handle`](../{SOURCE}#L1-L4), "
        f"[`{SOURCE}`](../{SOURCE}#L3) and [line 3](../{SOURCE}#L3)\n"
    )
    page.write_text(text)
    moved, lost = learn_refs.mend_links(page, fix=True)
    assert (moved, lost) == (2, [])
    source = linked.read_text(encoding="utf-8").splitlines()
    handle = next(
        i + 1 for i, line in enumerate(source) if line.strip().startswith("async def handle(")
    )
    assert page.read_text() == (
        f"[`command_payload`](../{SOURCE}#L{line_of('def command_payload')}), "
        f"[`SagaParticipant.handle`](../{SOURCE}#L{handle}-L{handle + 3}), "
        f"[`{SOURCE}`](../{SOURCE}#L3) and [line 3](../{SOURCE}#L3)\n"
    )


def test_every_symbol_link_of_the_docs_lands_on_its_symbol() -> None:
    stale: list[str] = []
    for page in sorted(learn_refs.DOCS.rglob("*.md")):
        moved, lost = learn_refs.mend_links(page, fix=False)
        stale += lost + ([f"{page}: {moved} stale"] if moved else [])
    assert stale == [], "run `python -m tools.learn_refs --fix`:\n" + "\n".join(stale)
