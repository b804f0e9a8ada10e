"""Documentation as a checked artefact: the trainee's reading path ``docs/learn/`` names code that exists, at the line it says.

``test_references.py`` already resolves every link and path in the path's pages. These rules
are stricter, for ``docs/learn/**/*.md`` (the generated ``docs/learn/inventory/`` excepted):

* **A line reference names its symbol.** A ``path:N`` (or ``path:N-M``) code span is written
  as ``` `symbol` (`path:N`) ```, with the repository path in full, and line N holds
  ``symbol``: its last dotted part (``publish`` of ``UnitOfWork.publish``) as a whole word. So
  a line number cannot drift silently: when code moves, the test names the reference. A link
  with ``#L12`` into a code file is refused in these pages: one form, one check.
* **The event-storming board speaks the code's language.** Every node of class ``event`` or
  ``command`` in the mermaid diagrams of ``01-event-storming.md`` is labelled with a name the
  code defines: an event is a class of a ``domain/events.py``; a command is a command class of
  member (``domain/commands.py``), a participant command of a saga definition, or a public use
  case of a service layer (``service_layer/handlers.py``) or of the saga API.
* **Every pattern page has the same parts** (the problem, the code, the proof, production,
  the walkthrough) and the patterns' index lists every page.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.unit.docs.test_references import (
    CODE_SPAN,
    GITHUB_LINES,
    INLINE_LINK,
    LINE_SUFFIX,
    ROOT,
    fenced_blocks,
    prose_lines,
    span_candidates,
    without_code_spans,
)

LEARN = ROOT / "docs" / "learn"
LINE_REFERENCE = re.compile(
    r"`(?P<symbol>[^`\s]+)` \(`(?P<path>[^`\s]+?):(?P<start>\d+)(?:-(?P<end>\d+))?`\)"
)
MERMAID_NODE = re.compile(r"\b[A-Za-z_][\w-]*\[\"(?P<label>[^\"]+)\"\]:::(?P<cls>[a-z]+)")
PATTERN_SECTIONS = (
    "## The problem",
    "## The code",
    "## The proof",
    "## In production",
    "## See it",
)


def learn_pages() -> list[Path]:
    """Every page of the reading path, without the generated inventory."""
    return [p for p in sorted(LEARN.rglob("*.md")) if "inventory" not in p.relative_to(LEARN).parts]


def symbol_on_line(symbol: str, text: str) -> bool:
    """True when the symbol's last dotted part stands on the line as a whole word."""
    name = symbol.rsplit(".", 1)[-1].strip("()")
    return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text) is not None


def line_reference_problems(path: Path, text_of: dict[int, str] | None = None) -> list[str]:
    """Every line reference in the page that is not ``` `symbol` (`path:N`) ``` with the symbol
    on line N, and every ``#L`` link into a code file (see the module docstring)."""
    problems: list[str] = []
    lines = text_of or {line.number: line.text for line in prose_lines(path)}
    for number, text in lines.items():
        where = f"{path.name}:{number}"
        named = {m.start("path") - 1 for m in LINE_REFERENCE.finditer(text)}
        for match in LINE_REFERENCE.finditer(text):
            file = ROOT / match.group("path")
            if span_candidates(match.group("path")) != [ROOT] or not file.is_file():
                problems.append(f"{where}: {match.group('path')!r} is not a repository file path")
                continue
            source = file.read_text(encoding="utf-8").splitlines()
            start = int(match.group("start"))
            held = source[start - 1] if start <= len(source) else ""
            if not symbol_on_line(match.group("symbol"), held):
                problems.append(
                    f"{where}: line {start} of {match.group('path')} does not hold "
                    f"{match.group('symbol')!r}: {held.strip()!r} "
                    "(`python -m tools.learn_refs --fix` re-points it)"
                )
        for match in CODE_SPAN.finditer(text):
            span = match.group(2).strip()
            if LINE_SUFFIX.search(span) and span_candidates(span) and match.start() not in named:
                problems.append(f"{where}: write `symbol` (`{span}`): name what line it means")
        for link in INLINE_LINK.finditer(without_code_spans(text)):
            fragment = link.group(1).partition("#")[2]
            if GITHUB_LINES.fullmatch(fragment):
                problems.append(f"{where}: {link.group(1)!r}: write `symbol` (`path:N`) instead")
    return problems


@pytest.mark.parametrize("path", learn_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_line_references_name_the_symbol_on_their_line(path: Path) -> None:
    assert line_reference_problems(path) == []


def test_a_drifted_or_anonymous_line_reference_is_reported() -> None:
    page = LEARN / "README.md"
    good = "`SagaDefinition` (`saga/src/saga/definition.py:1`)"
    source = (ROOT / "saga/src/saga/definition.py").read_text(encoding="utf-8").splitlines()
    line = next(i for i, text in enumerate(source, 1) if text.startswith("class SagaDefinition"))
    assert line_reference_problems(page, {1: good.replace(":1`", f":{line}`")}) == []
    drifted = good.replace(":1`", f":{line + 1}`")
    assert "does not hold" in line_reference_problems(page, {1: drifted})[0]
    anonymous = f"see `saga/src/saga/definition.py:{line}`"
    assert "name what line it means" in line_reference_problems(page, {1: anonymous})[0]
    linked = f"[here](../../saga/src/saga/definition.py#L{line})"
    assert "instead" in line_reference_problems(page, {1: linked})[0]


def _classes(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in tree.body if isinstance(node, ast.ClassDef)}


def _public_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and not node.name.startswith("_")
    }


def code_events() -> set[str]:
    """The domain events: the classes of every service's ``domain/events.py``."""
    return set().union(*(_classes(p) for p in ROOT.glob("services/*/src/*/domain/events.py")))


def code_commands() -> set[str]:
    """The commands: member's command classes, the saga definitions' participant commands and
    the public use cases of the service layers and of the saga API."""
    from saga.definitions import DEFINITIONS

    saga_commands = {
        invocation.command
        for definition in DEFINITIONS.values()
        for step in definition.steps
        for invocation in (step.action, step.compensation)
        if invocation is not None
    }
    use_cases = [
        *ROOT.glob("services/*/src/*/service_layer/handlers.py"),
        ROOT / "saga/src/saga/entrypoints/api.py",
    ]
    return (
        _classes(ROOT / "services/member/src/member/domain/commands.py")
        | saga_commands
        | set().union(*(_public_functions(p) for p in use_cases))
    )


def storming_nodes() -> list[tuple[str, str]]:
    """(class, label) of every classed node in the event-storming page's mermaid diagrams."""
    page = LEARN / "01-event-storming.md"
    nodes: list[tuple[str, str]] = []
    for _, lines in fenced_blocks(page):
        for text in lines:
            nodes += [(m.group("cls"), m.group("label")) for m in MERMAID_NODE.finditer(text)]
    return nodes


def test_the_event_storming_board_uses_the_codes_names() -> None:
    nodes = storming_nodes()
    events = {label for cls, label in nodes if cls == "event"}
    commands = {label for cls, label in nodes if cls == "command"}
    assert events
    assert commands
    assert events - code_events() == set()
    assert commands - code_commands() == set()


def test_the_event_storming_board_shows_every_domain_event() -> None:
    shown = {label for cls, label in storming_nodes() if cls == "event"}
    bases = {"Event", "PostEvent"}
    assert code_events() - bases - shown == set()


def pattern_pages() -> list[Path]:
    return [p for p in sorted((LEARN / "04-patterns").glob("*.md")) if p.name != "README.md"]


@pytest.mark.parametrize("path", pattern_pages(), ids=lambda p: p.name)
def test_a_pattern_page_has_every_part(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert [s for s in PATTERN_SECTIONS if f"\n{s}\n" not in text] == []
    assert "::" in text, "the proof names a test as path::test_name"


def test_the_patterns_index_lists_every_page() -> None:
    index = (LEARN / "04-patterns" / "README.md").read_text(encoding="utf-8")
    assert [p.name for p in pattern_pages() if f"]({p.name})" not in index] == []
