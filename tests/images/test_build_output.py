"""What `make images` prints: a build announced only when it happens, each stand-in timed on its own line.

The driver runs against a recording engine (a fake of our own Engine port: it answers
``image inspect`` from a dictionary and records every other command), so these checks need
no container engine.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field

import pytest

from deploy.images import build, standins
from deploy.images.engine import Engine


@dataclass(frozen=True)
class RecordingEngine(Engine):
    """Images it has: ``labels`` per reference; ``build`` and ``import`` add the image."""

    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    commands: list[tuple[str, ...]] = field(default_factory=list)

    def run(
        self,
        *args: str,
        check: bool = True,
        timeout: float | None = None,
        capture: bool = True,
        shielded: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        self.commands.append(args)
        ref = args[-1]
        if args[:2] == ("image", "inspect"):
            if ref not in self.labels:
                return subprocess.CompletedProcess(args, 1, "", "no such image")
            wants = " ".join(args)
            out = json.dumps(self.labels[ref]) if "Labels" in wants else "1000000"
            return subprocess.CompletedProcess(args, 0, out, "")
        if args[0] == "build":
            self.labels[args[args.index("-t") + 1]] = {}
        if args[0] == "import":
            self.labels[ref] = {}
        return subprocess.CompletedProcess(args, 0, "", "")


def test_an_up_to_date_image_is_not_announced_as_being_built(
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine = RecordingEngine("podman", {})
    build.build_one(engine, "board", {}, say=True)
    assert "images: building ghcr.io/example/msa-board/board:0.1.0" in capsys.readouterr().out

    # The same inputs again: the image carries their digest and is left alone, silently.
    ref = build.image_ref("board")
    argv = next(c for c in engine.commands if c[0] == "build")
    digest = argv[argv.index("--label") + 1].partition("=")[2]
    engine.labels[ref] = {build.INPUTS_LABEL: digest}
    built = build.build_one(engine, "board", {}, say=True)
    assert not built.rebuilt
    assert "building" not in capsys.readouterr().out
    assert "(up to date)" in build.report([built], 0.1)


def test_each_stand_in_is_timed_on_a_line_of_its_own(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(standins, "python_rootfs_tarball", lambda: "python.tar")
    monkeypatch.setattr(standins, "uv_tarball", lambda version: "uv.tar")
    engine = RecordingEngine("podman", {})
    standins.ensure_standins(engine, "0.13.9", say=True)
    out = capsys.readouterr().out.splitlines()
    assert [line.rsplit(" in ", 1)[0] for line in out] == [
        f"images: stand-in {standins.PYTHON_STANDIN} made",
        f"images: stand-in {standins.UV_STANDIN_REPOSITORY}:0.13.9 made",
    ]
    assert all(line.endswith("s") for line in out)

    # Present already: nothing made, nothing printed.
    standins.ensure_standins(engine, "0.13.9", say=True)
    assert capsys.readouterr().out == ""
