"""The narrator of a failure walkthrough: what is about to happen and why, where to look, and the checks that end it in PASS or FAIL.

Narrated (the default), each stage is explained and followed by a short pause, so that a
reader can follow along in the ``make run`` terminal. ``--check-only`` runs the same actions
and checks tersely, without pauses (what the test in ``make test`` runs).
"""

from __future__ import annotations

import json
import re
import signal
import sys
import textwrap
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from tools.chaos.stack import Target

WIDTH = 92


@dataclass
class Guide:
    """Narration and checks of one walkthrough run against ``target``.

    ``log``: a file holding the ``make run`` output (``make run 2>&1 | tee .local/run.log``),
    from which the log lines a stage points at are shown; without it only what to grep for
    is printed. ``pause``: seconds after each narrated stage (none in check-only mode).
    """

    target: Target
    check_only: bool = False
    log: Path | None = None
    pause: float = 2.0
    out: TextIO = field(default_factory=lambda: sys.stdout)
    problems: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    #: What the walkthrough put back after changing it, each checked (``put_back``).
    restored: list[str] = field(default_factory=list)
    #: The signal that interrupted the walkthrough (``SIGINT``, ``SIGTERM``), if one did.
    interrupted_by: str | None = None

    # ------------------------------------------------------------------ narration

    def _print(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def title(self, name: str, summary: str) -> None:
        """The walkthrough's name and, narrated, what it teaches."""
        self._print(f"== walkthrough {name} ==")
        if not self.check_only:
            self._print(textwrap.fill(summary, WIDTH))
            self._print()

    def say(self, text: str) -> None:
        """Narration: what is about to happen and why (left out in check-only mode)."""
        if not self.check_only:
            self._print(textwrap.fill(text, WIDTH, initial_indent="  ", subsequent_indent="  "))

    def do(self, text: str) -> None:
        """An action, printed in both modes with the seconds since the start."""
        self._print(f"[{time.monotonic() - self.started:5.1f}s] {text}")

    def wait(self) -> None:
        """The pause after a narrated stage."""
        if not self.check_only and self.pause > 0:
            self._print()
            time.sleep(self.pause)

    def look(self, what: str, detail: str = "") -> None:
        """Where to look (narrated only): ``what``, then ``detail`` indented."""
        if self.check_only:
            return
        self._print(f"  look: {what}")
        for line in detail.splitlines():
            self._print(f"        {line}")

    # ------------------------------------------------------------------ what to look at

    def saga(self, body: Mapping[str, Any]) -> None:
        """A saga as ``GET /api/sagas/{id}`` shows it: status, then one line per step."""
        lines = [f"saga {body.get('id', '?')} {body['status']}"]
        if body.get("failure_reason"):
            lines.append(f"  failure_reason: {body['failure_reason']}")
        for step in body["steps"]:
            lines.append(
                f"  {step['name']:<22} {step['kind']:<14} {step['status']:<12}"
                f" retries {step['retries']}"
            )
        self.look(
            f"the saga's steps: curl -H 'Authorization: Bearer <admin token>'"
            f" {self.target.gateway_url}/api/sagas/{body.get('id', '<id>')}",
            "\n".join(lines),
        )

    def logs(self, process: str, pattern: str, why: str, limit: int = 4) -> None:
        """The log lines of ``process`` matching ``pattern`` (a regular expression): where
        they appear in the ``make run`` terminal, the grep that finds them, and the last few
        of them when the output is in ``log``."""
        if self.check_only:
            return
        grep = f"grep -E '^{process} +\\|.*({pattern})'"
        shown = ""
        if self.log is not None and self.log.exists():
            found = [
                line
                for line in self.log.read_text(errors="replace").splitlines()
                if re.match(rf"{re.escape(process)} +\|", line) and re.search(pattern, line)
            ]
            shown = "\n".join(_short(line) for line in found[-limit:]) or "(none yet)"
        self.look(f"{why}: lines starting '{process} |' in the `make run` terminal ({grep})", shown)

    def metric(self, process: str, metric: str, why: str, **labels: str) -> float | None:
        """A metric of ``process`` (its ``/metrics``), shown with its name and value."""
        value = self.target.processes.metric(process, metric, **labels)
        selector = ",".join(f'{k}="{v}"' for k, v in labels.items())
        shown = f"{metric}{{{selector}}}" if labels else metric
        self.look(
            f"{why}: curl -s {self.target.processes.url(process)}/metrics | grep {metric}",
            f"{shown} = {'(not exposed)' if value is None else _number(value)}",
        )
        return value

    def rows(self, what: str, rows: Iterable[Mapping[str, Any]]) -> None:
        """Read-model (or write-model) rows, one line each."""
        self.look(what, "\n".join(json.dumps(dict(row), default=str) for row in rows) or "(none)")

    # ------------------------------------------------------------------ checks

    def check(self, ok: bool, what: str) -> bool:
        """One expected outcome: printed ``ok`` or ``NOT``, and remembered when it failed."""
        self._print(f"  {'ok ' if ok else 'NOT'} {what}")
        if not ok:
            self.problems.append(what)
        return ok

    def fail(self, why: str) -> None:
        """A failure that ends the walkthrough early."""
        self._print(f"  NOT {why}")
        self.problems.append(why)

    def put_back(self, ok: bool, what: str, remedy: str) -> None:
        """What the walkthrough changed, put back: ``what`` when the check that it is back
        held, else a failure that says ``remedy`` (what the reader runs by hand)."""
        if ok:
            self.restored.append(what)
            self.do(f"put back: {what}")
        else:
            self.fail(f"{what}: NOT put back; {remedy}")

    def interrupt(self, signal_name: str) -> None:
        """Remember that ``signal_name`` (``SIGINT`` for Ctrl-C, ``SIGTERM``) ended the run."""
        self.interrupted_by = signal_name

    def result(self) -> int:
        """Print PASS, FAIL with the failed checks, or INTERRUPTED with what was put back;
        the exit status: 0, 1, or 128 + the signal's number (130 for Ctrl-C, 143 for
        SIGTERM, the shell's convention)."""
        seconds = time.monotonic() - self.started
        if self.interrupted_by is not None:
            back = "; ".join(self.restored) if self.restored else "nothing was changed yet"
            self._print(f"INTERRUPTED by {self.interrupted_by} ({seconds:.0f} s): put back: {back}")
            for problem in self.problems:
                self._print(f"  - {problem}")
            return 128 + int(signal.Signals[self.interrupted_by])
        if self.problems:
            self._print(f"FAIL ({seconds:.0f} s)")
            for problem in self.problems:
                self._print(f"  - {problem}")
            return 1
        self._print(f"PASS ({seconds:.0f} s)")
        return 0


#: The fields of a JSON log line shown beside its event (the rest is in the terminal).
LOG_FIELDS = ("step", "command", "reason", "retries", "loop", "error", "outcome", "trace_id")


def _short(line: str, width: int = 200) -> str:
    """A log line for the screen: a JSON one as its event and a few fields, cut at ``width``."""
    prefix, bar, payload = line.partition("| ")
    try:
        entry = json.loads(payload)
    except ValueError:
        entry = None
    if isinstance(entry, dict) and "event" in entry:
        fields = " ".join(f"{k}={entry[k]}" for k in LOG_FIELDS if k in entry)
        line = f"{prefix}{bar}{entry['event']} {fields}".rstrip()
    return line if len(line) <= width else line[: width - 3] + "..."


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.3f}"


def missing(wanted: Sequence[str], found: Iterable[str]) -> list[str]:
    """The items of ``wanted`` not in ``found``, in order."""
    have = set(found)
    return [item for item in wanted if item not in have]
