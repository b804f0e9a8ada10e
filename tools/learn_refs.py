"""Docs as a checked artefact: re-point the line references of docs/learn and docs/ after the code moved.

A reference on the reading path is written `` `symbol` (`path:N`) `` and
tests/unit/docs/test_learn.py requires line N to hold the symbol. The other pages link to a
symbol's line: ``[`symbol`](../path#LN)`` (or ``#LN-LM``), the path relative to the page;
tests/unit/docs/test_learn_refs.py requires those lines to hold their symbol too (a link whose
text is a path or a line number, not a symbol, is not checked). When code above it moves, the
tests name each stale reference; ``python -m tools.learn_refs`` lists them with the line the
symbol is on now, and ``--fix`` rewrites them. A symbol's new line is its definition (``def``,
``class``, an assignment or a field) when it has one, else the occurrence nearest the old line;
a symbol that no longer occurs is left for a person to mend (exit status 1).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
LEARN = DOCS / "learn"
REFERENCE = re.compile(
    r"`(?P<symbol>[^`\s]+)` \(`(?P<path>[^`\s]+?):(?P<start>\d+)(?:-(?P<end>\d+))?`\)"
)


#: ``[`symbol`](relative/path#L12)`` or ``...#L12-L20)``: a link to the lines of a symbol.
LINK = re.compile(
    r"\[`(?P<symbol>[^`\s/]+)`\]\((?P<path>[^)\s#:]+)#L(?P<start>\d+)(?:-L(?P<end>\d+))?\)"
)


def _word(name: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w-]){re.escape(name)}(?![\w-])")


def new_line(symbol: str, source: list[str], old: int) -> int | None:
    """The 1-based line that holds ``symbol`` now (see the module docstring), or None."""
    name = symbol.rsplit(".", 1)[-1].strip("()")
    word = _word(name)
    hits = [i + 1 for i, line in enumerate(source) if word.search(line)]
    if not hits:
        return None
    definition = re.compile(
        rf"^\s*(?:async\s+def|def|class)\s+{re.escape(name)}\b|^\s*{re.escape(name)}\s*[:=]"
    )
    defined = [n for n in hits if definition.search(source[n - 1])]
    return min(defined or hits, key=lambda n: abs(n - old))


def _shown(page: Path) -> str:
    return str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else str(page)


def _where(symbol: str, file: Path, start: int) -> int | None:
    """``start`` when that line of ``file`` holds ``symbol``, else its line now (None: gone)."""
    source = file.read_text(encoding="utf-8").splitlines()
    held = source[start - 1] if start <= len(source) else ""
    if _word(symbol.rsplit(".", 1)[-1].strip("()")).search(held):
        return start
    return new_line(symbol, source, start)


def mend_links(page: Path, fix: bool) -> tuple[int, list[str]]:
    """(links re-pointed, links that cannot be) for one page: ``[`symbol`](path#LN)`` links
    whose line no longer holds the symbol (see the module docstring)."""
    text = page.read_text(encoding="utf-8")
    moved = 0
    lost: list[str] = []

    def replace(match: re.Match[str]) -> str:
        nonlocal moved
        symbol, target = match.group("symbol"), match.group("path")
        file = (page.parent / target).resolve()
        if not file.is_file() or file.suffix == ".md":
            return match.group(0)  # a missing file is test_references.py's to report
        start = int(match.group("start"))
        line = _where(symbol, file, start)
        if line is None:
            lost.append(f"{_shown(page)}: {symbol} not in {target}")
            return match.group(0)
        if line == start:
            return match.group(0)
        moved += 1
        end = match.group("end")
        span = f"L{line}-L{int(end) + line - start}" if end else f"L{line}"
        print(f"{_shown(page)}: {symbol} {target}#L{start} -> #{span}")
        return f"[`{symbol}`]({target}#{span})"

    updated = LINK.sub(replace, text)
    if fix and updated != text:
        page.write_text(updated, encoding="utf-8")
    return moved, lost


def mend(page: Path, fix: bool) -> tuple[int, list[str]]:
    """(references re-pointed, references that cannot be) for one page."""
    text = page.read_text(encoding="utf-8")
    moved = 0
    lost: list[str] = []

    def replace(match: re.Match[str]) -> str:
        nonlocal moved
        file = ROOT / match.group("path")
        if not file.is_file():
            lost.append(f"{_shown(page)}: no file {match.group('path')}")
            return match.group(0)
        source = file.read_text(encoding="utf-8").splitlines()
        start = int(match.group("start"))
        held = source[start - 1] if start <= len(source) else ""
        name = match.group("symbol").rsplit(".", 1)[-1].strip("()")
        if _word(name).search(held):
            return match.group(0)
        line = new_line(match.group("symbol"), source, start)
        if line is None:
            lost.append(f"{_shown(page)}: {match.group('symbol')} not in {match.group('path')}")
            return match.group(0)
        moved += 1
        end = match.group("end")
        span = f"{line}-{int(end) + line - start}" if end else str(line)
        print(f"{_shown(page)}: {match.group('symbol')} {match.group('path')}:{start} -> {span}")
        return f"`{match.group('symbol')}` (`{match.group('path')}:{span}`)"

    updated = REFERENCE.sub(replace, text)
    if fix and updated != text:
        page.write_text(updated, encoding="utf-8")
    return moved, lost


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.learn_refs", description=__doc__)
    parser.add_argument("--fix", action="store_true", help="rewrite the stale references")
    args = parser.parse_args(argv)
    lost: list[str] = []
    for page in sorted(LEARN.rglob("*.md")):
        lost += mend(page, args.fix)[1]
    for page in sorted(DOCS.rglob("*.md")):
        lost += mend_links(page, args.fix)[1]
    for problem in lost:
        print(problem, file=sys.stderr)
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
