"""Self-contained documentation: no file cites a design document the repository does not hold.

Code and docs once cited a design document by section ("<name> §3") that is not in this
repository, so a reader could not follow the citation. A rule is cited by the in-repo
document that states it (``docs/sagas.md``, ``docs/CONVENTIONS.md``, ``docs/gateway.md``,
``docs/services/*.md``) or quoted. The check: that document's upper-case name is absent from every
file outside ``.git``, ``.venv``, ``.local`` and the tools' caches (generated, never committed).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SKIPPED = {
    ".git",
    ".venv",
    ".local",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
}
# Spelled in two pieces so that this file does not match itself.
CITATION = re.compile(r"\b" + "DES" + r"IGN\b")


def repository_files(folder: Path = ROOT) -> Iterator[Path]:
    for entry in sorted(folder.iterdir()):
        if entry.is_dir():
            if entry.name not in SKIPPED and not entry.name.endswith(".egg-info"):
                yield from repository_files(entry)
        elif entry.is_file():
            yield entry


def test_no_file_cites_a_design_document_outside_the_repository() -> None:
    citing = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in repository_files()
        for number, line in enumerate(
            path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1
        )
        if CITATION.search(line)
    ]
    assert citing == []


def test_the_check_sees_a_citation() -> None:
    assert CITATION.search("the rule of " + "DES" + "IGN §3")
    assert not CITATION.search("a designer's note")
