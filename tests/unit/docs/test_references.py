"""Documentation as a checked artefact: every reference in README.md and docs/ must resolve.

What is checked, in ``README.md`` and every ``docs/**/*.md`` (fenced code blocks are skipped:
they hold commands and sample output, not references):

* **Relative links.** Every inline link or image ``[text](target)`` and every reference
  definition ``[label]: target`` whose target has no URL scheme and does not start with ``/``
  must name an existing file or directory, resolved against the Markdown file's folder. A
  ``#fragment`` into a Markdown file (or a bare ``#fragment`` into the same file) must match a
  heading's anchor under GitHub's rules: lower-cased, every character that is not a letter,
  digit, ``_``, ``-`` or space dropped, spaces turned into ``-``, and a repeated anchor given
  ``-1``, ``-2``... in document order. A ``#L12`` or ``#L12-L20`` into any other file must be
  within the file.
* **Repository paths in code spans.** An inline code span is a path when it has no whitespace,
  no ``://``, and either
  - starts with a top-level folder of the repository (``libs/``, ``services/``, ``gateway/``,
    ``saga/``, ``web/``, ``deploy/``, ``tests/``, ``docs/``, ``benchmarks/``, ``tools/``): it
    must exist relative to the repository root; or
  - starts with the name of one of the repository's Python packages (``chassis/``,
    ``member/``, ``board/``, ``qna/``, ``saga/``, ``gateway/``) and ends in a file extension
    (``chassis/saga.py``): it must exist under one of the ``src/`` folders. Without an
    extension such a span is a name (``member/transfer-points`` is a saga step), not a path.

  A path may end in ``:N`` or ``:N-M`` (line numbers; each must be within the file), or in
  ``::name`` (pytest's node id: ``tests/unit/x.py::test_y``, ``...::TestX::test_y``; each name
  must be defined in the file by ``def``, ``async def`` or ``class``), may use
  ``{a,b}`` alternatives (each expansion must exist) and ``*`` globs (must match something).
  Paths relative to an unnamed folder (``domain/model.py``, a bare ``bootstrap.py``) depend on
  the prose around them and are not checked.
* **Code copied from the repository.** A fenced block whose first line is ``# <repository
  path>`` is a copy of that file: its other lines must be consecutive lines of the file. With
  ``# <repository path> (abridged)`` its lines must be in the file in the same order, with
  lines left out where the block says ``# ...``. Lines are compared exactly, indentation
  included; blank lines are not compared.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
ROOT_FOLDERS = (
    "libs",
    "services",
    "gateway",
    "saga",
    "web",
    "deploy",
    "tests",
    "docs",
    "benchmarks",
    "tools",
)
PACKAGE_SOURCE_ROOTS = sorted(ROOT.glob("libs/*/src")) + sorted(ROOT.glob("*/src"))
PACKAGE_SOURCE_ROOTS += sorted(ROOT.glob("services/*/src"))
PACKAGES = sorted({p.name for src in PACKAGE_SOURCE_ROOTS for p in src.iterdir() if p.is_dir()})

FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)")
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
GITHUB_LINES = re.compile(r"L(\d+)(?:-L(\d+))?")
LINE_SUFFIX = re.compile(r":(\d+)(?:-(\d+))?$")
NODE_SUFFIX = re.compile(r"((?:::[A-Za-z_][A-Za-z0-9_]*)+)$")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def markdown_files() -> list[Path]:
    """README.md and every Markdown file under docs/, in a stable order."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


@dataclass(frozen=True)
class Line:
    """One line of prose (outside fenced code) with its 1-based number."""

    number: int
    text: str


def prose_lines(path: Path) -> list[Line]:
    """The file's lines outside fenced code blocks."""
    lines: list[Line] = []
    fence: str | None = None
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        match = FENCE.match(text)
        if match:
            if fence is None:
                fence = match.group(1)
            elif match.group(1) == fence:
                fence = None
            continue
        if fence is None:
            lines.append(Line(number, text))
    return lines


def github_anchors(path: Path) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown file (see the module docstring)."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for line in prose_lines(path):
        match = HEADING.match(line.text)
        if not match:
            continue
        text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", match.group(2))
        slug = "".join(
            ch
            for ch in text.lower()
            if ch in "_- " or unicodedata.category(ch)[0] in ("L", "N", "M")
        ).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def without_code_spans(text: str) -> str:
    """The line with its code spans blanked, so a link written as code is not a link."""
    return CODE_SPAN.sub(lambda m: " " * len(m.group(0)), text)


def line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def link_problems(path: Path) -> list[str]:
    """Every relative link in the file that does not resolve, as ``file:line: message``."""
    problems: list[str] = []
    for line in prose_lines(path):
        text = without_code_spans(line.text)
        targets = [m.group(1) for m in INLINE_LINK.finditer(text)]
        definition = REFERENCE_DEFINITION.match(text)
        if definition:
            targets.append(definition.group(1))
        for target in targets:
            if SCHEME.match(target) or target.startswith("/"):
                continue
            where = f"{path.relative_to(ROOT)}:{line.number}"
            file_part, _, fragment = target.partition("#")
            resolved = (path.parent / file_part).resolve() if file_part else path
            if not resolved.exists():
                problems.append(f"{where}: link target {target!r} does not exist")
                continue
            if fragment and resolved.suffix == ".md" and fragment not in github_anchors(resolved):
                problems.append(f"{where}: no heading for anchor {target!r}")
            lines = GITHUB_LINES.fullmatch(fragment)
            if lines and resolved.suffix != ".md":
                last = int(lines.group(2) or lines.group(1))
                if last > line_count(resolved):
                    problems.append(f"{where}: {target!r} is past the end of the file")
    return problems


def expand_braces(pattern: str) -> list[str]:
    """``a/{b,c}/d`` -> ``["a/b/d", "a/c/d"]`` (non-nested alternatives)."""
    parts = re.split(r"\{([^{}]*)\}", pattern)
    choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
    return ["".join(combo) for combo in itertools.product(*choices)]


def span_candidates(span: str) -> list[Path] | None:
    """The base folders a code span is resolved against, or None when it is not a path."""
    if any(ch.isspace() for ch in span) or "://" in span:
        return None
    first = span.split("/", 1)[0]
    if "/" in span and first in ROOT_FOLDERS:
        return [ROOT]
    if "/" in span and first in PACKAGES and re.search(r"\.[A-Za-z]+(:\d+(-\d+)?)?$", span):
        return PACKAGE_SOURCE_ROOTS
    return None


def span_problems(path: Path) -> list[str]:
    """Every code-span repository path in the file that does not exist (see the docstring)."""
    problems: list[str] = []
    for line in prose_lines(path):
        for match in CODE_SPAN.finditer(line.text):
            span = match.group(2).strip()
            bases = span_candidates(span)
            if bases is None:
                continue
            where = f"{path.relative_to(ROOT)}:{line.number}"
            node = NODE_SUFFIX.search(span)
            if node:
                problems += node_problems(where, span[: node.start()], node.group(1))
                continue
            lines = LINE_SUFFIX.search(span)
            name = span[: lines.start()] if lines else span
            for expanded in expand_braces(name):
                found = [
                    hit
                    for base in bases
                    for hit in (
                        sorted(base.glob(expanded)) if "*" in expanded else [base / expanded]
                    )
                    if hit.exists()
                ]
                if not found:
                    problems.append(f"{where}: path {expanded!r} does not exist")
                    continue
                if lines:
                    last = int(lines.group(2) or lines.group(1))
                    for hit in found:
                        if not hit.is_file() or last > line_count(hit):
                            problems.append(f"{where}: {span!r} is past the end of {hit}")
    return problems


def defines(source: str, name: str) -> bool:
    """True when the Python source defines ``name`` as a function or class (at any depth)."""
    pattern = rf"^\s*(?:async\s+def|def|class)\s+{re.escape(name)}\b"
    return re.search(pattern, source, re.MULTILINE) is not None


def node_problems(where: str, file: str, names: str) -> list[str]:
    """The problems of a pytest node id ``file::name[::name]``: the file must exist and define
    every name (a test class and its method, or a test function)."""
    source_path = ROOT / file
    if not source_path.is_file():
        return [f"{where}: path {file!r} does not exist"]
    source = source_path.read_text(encoding="utf-8")
    return [
        f"{where}: {file} defines no {name!r}"
        for name in names.strip(":").split("::")
        if not defines(source, name)
    ]


COPY_HEADER = re.compile(r"^#\s+(\S+)(\s+\(abridged\))?\s*$")


def fenced_blocks(path: Path) -> list[tuple[int, list[str]]]:
    """Every fenced code block of the file: (line number of its first line, its lines)."""
    blocks: list[tuple[int, list[str]]] = []
    current: list[str] | None = None
    fence = ""
    start = 0
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        match = FENCE.match(text)
        if current is None and match:
            current, fence, start = [], match.group(1), number + 1
        elif current is not None and match and match.group(1) == fence:
            blocks.append((start, current))
            current = None
        elif current is not None:
            current.append(text)
    return blocks


def copy_problems(path: Path) -> list[str]:
    """Every fenced copy of repository code that the file it names does not contain."""
    problems: list[str] = []
    for start, lines in fenced_blocks(path):
        header = COPY_HEADER.match(lines[0]) if lines else None
        if header is None or header.group(1).split("/", 1)[0] not in ROOT_FOLDERS:
            continue
        where = f"{path.relative_to(ROOT)}:{start}"
        source = ROOT / header.group(1)
        if not source.is_file():
            problems.append(f"{where}: {header.group(1)!r} does not exist")
            continue
        wanted = [line for line in lines[1:] if line.strip()]
        have = [line for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
        if header.group(2):
            position = 0
            for line in wanted:
                if line.strip().startswith("# ..."):
                    continue
                if line in have[position:]:
                    position = have.index(line, position) + 1
                else:
                    problems.append(f"{where}: not in {header.group(1)} (in order): {line!r}")
        elif not any(have[i : i + len(wanted)] == wanted for i in range(len(have))):
            problems.append(f"{where}: not a run of consecutive lines of {header.group(1)}")
    return problems


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_code_copied_from_the_repository_matches_it(path: Path) -> None:
    assert copy_problems(path) == []


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    assert link_problems(path) == []


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_code_span_paths_exist(path: Path) -> None:
    assert span_problems(path) == []


def test_a_pytest_node_id_must_name_a_test_the_file_defines() -> None:
    here = "tests/unit/docs/test_references.py"
    assert node_problems("x", here, "::test_code_span_paths_exist") == []
    assert node_problems("x", here, "::test_that_does_not_exist") != []
    assert node_problems("x", "tests/unit/docs/missing.py", "::test_code_span_paths_exist") != []
