"""The fault tooling (tools/chaos) and the walkthroughs (tools/walkthrough) without a stack: which stack a target names, pid files, the outcome, and what an interrupted walkthrough puts back."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.stack import stack_env
from tests.support.signals import sigint_as_at_a_terminal
from tools.chaos.stack import REPO, Infra, Processes, Target, port_of
from tools.walkthrough import __main__ as runner
from tools.walkthrough import fail_saga_step, kill_worker, roll_deployment, stop_kafka
from tools.walkthrough.guide import Guide, _short

# ---------------------------------------------------------------------- the target


def test_the_default_target_is_make_runs_stack() -> None:
    target = Target.from_env({})
    assert target.gateway_url == "http://127.0.0.1:8000"
    assert target.processes.pid_dir == REPO / ".local" / "run"
    assert target.processes.url("board-worker") == "http://127.0.0.1:9102"
    assert target.infra.settings == {}  # infra.sh's default instance
    assert target.database_url("board") == "postgresql://postgres:postgres@127.0.0.1:55432/board"
    assert target.kafka_bootstrap == "127.0.0.1:9092"
    # make run does not set it: the orchestrator's default applies.
    assert target.step_timeout_seconds() == 30.0


def test_the_chaos_target_is_described_by_the_same_settings() -> None:
    target = Target.from_env(stack_env())
    assert target.gateway_url == "http://127.0.0.1:18000"
    assert target.processes.pid_dir == REPO / ".local" / "chaos" / "pids"
    assert target.processes.url("saga-worker") == "http://127.0.0.1:19104"
    assert target.infra.settings["PG_PORT"] == "55532"
    assert target.infra.settings["KAFKA_PORT"] == "9192"
    assert target.database_url("qna").endswith("@127.0.0.1:55532/qna")
    assert target.step_timeout_seconds() == 3.0
    argv, env = target.service_command("board", "rebuild-read-model")
    assert argv[-1] == "rebuild-read-model"
    assert Path(argv[0]).name == "board"
    assert env["DATABASE_URL"] == env["BOARD_DATABASE_URL"]
    assert ":55532/board" in env["DATABASE_URL"]


def test_replicas_listen_ten_ports_up() -> None:
    assert port_of("board-api") == 8002
    assert port_of("board-api-2") == 8012
    assert port_of("saga-api-2", 10000) == 18014
    assert port_of("gateway", 10000) == 18000
    with pytest.raises(KeyError):
        port_of("board-worker-2")


def test_processes_are_found_by_their_pid_files(tmp_path: Path) -> None:
    for name, pid in (("board-api", 11), ("board-api-2", 12), ("qna-api", 13)):
        (tmp_path / f"{name}.pid").write_text(f"{pid}\n")
    processes = Processes(tmp_path)
    assert processes.names() == ["board-api", "board-api-2", "qna-api"]
    assert processes.replicas("board-api") == ["board-api", "board-api-2"]
    assert processes.replicas("qna-api") == ["qna-api"]
    assert processes.pid("board-api-2") == 12
    with pytest.raises(FileNotFoundError):
        processes.pid("saga-api")


def test_a_process_not_restarted_is_a_timeout(tmp_path: Path) -> None:
    (tmp_path / "board-api.pid").write_text(f"{os.getpid()}\n")
    with pytest.raises(TimeoutError, match="board-api not restarted"):
        Processes(tmp_path).wait_replaced("board-api", os.getpid(), timeout=0.3)


def test_infra_acts_on_known_components_only() -> None:
    with pytest.raises(ValueError, match="postgres, redis, kafka"):
        Infra().stop("zookeeper")


def fake_infra_sh(tmp_path: Path, stop_seconds: float = 1.0) -> Path:
    """An infra.sh that logs each command to ``log`` beside it (a stop as its begin and its
    end, ``stop_seconds`` apart, as a broker's controlled shutdown) and its own process
    group and session to ``ids``."""
    script = tmp_path / "infra.sh"
    script.write_text(
        f"""
        read -r _ _ _ _ pgrp sid _ </proc/$$/stat
        echo "$pgrp $sid" >"{tmp_path}/ids"
        if [ "$1" = stop ]; then
            echo "stop $2 begin" >>"{tmp_path}/log"
            sleep {stop_seconds}
            echo "stop $2 end" >>"{tmp_path}/log"
        else
            echo "$1 $2" >>"{tmp_path}/log"
        fi
        """
    )
    return script


def test_infra_sh_runs_in_a_session_of_its_own(tmp_path: Path) -> None:
    Infra(script=fake_infra_sh(tmp_path)).start("kafka")
    pgrp, sid = (int(n) for n in (tmp_path / "ids").read_text().split())
    # Not in the caller's process group: the terminal's Ctrl-C (SIGINT to the foreground
    # group) does not reach it.
    assert pgrp != os.getpgid(0)
    assert sid != os.getsid(0)


def test_ctrl_c_does_not_cut_a_stop_short(tmp_path: Path) -> None:
    # The walkthrough as a terminal's foreground job: a process group of its own, to which
    # Ctrl-C sends SIGINT while infra.sh is stopping the broker.
    script = fake_infra_sh(tmp_path)
    job = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from tools.chaos.stack import Infra\n"
            f"try: Infra(script=Path({str(script)!r})).stop('kafka')\n"
            "except KeyboardInterrupt: sys.exit(130)",
        ],
        cwd=REPO,
        start_new_session=True,
        preexec_fn=sigint_as_at_a_terminal,
    )
    log = tmp_path / "log"
    deadline = time.monotonic() + 20
    while not (log.exists() and "begin" in log.read_text()):
        assert time.monotonic() < deadline, "the stop never began"
        time.sleep(0.05)
    os.killpg(job.pid, signal.SIGINT)
    assert job.wait(timeout=20) == 130  # interrupted, after the stop had ended
    assert log.read_text() == "stop kafka begin\nstop kafka end\n"


# ---------------------------------------------------------------------- the guide


def guide(check_only: bool = True, target: Target | None = None) -> Guide:
    return Guide(target or Target.from_env({}), check_only=check_only, pause=0, out=io.StringIO())


def output(g: Guide) -> str:
    assert isinstance(g.out, io.StringIO)
    return g.out.getvalue()


def test_the_outcome_is_pass_only_when_every_check_held() -> None:
    passed = guide()
    passed.check(True, "fine")
    assert passed.result() == 0
    assert output(passed).splitlines()[-1].startswith("PASS")
    failed = guide()
    failed.check(True, "fine")
    failed.check(False, "lost a post")
    assert failed.result() == 1
    assert "FAIL" in output(failed)
    assert "  - lost a post" in output(failed)


def test_check_only_leaves_out_the_narration() -> None:
    terse, narrated = guide(check_only=True), guide(check_only=False)
    for g in (terse, narrated):
        g.say("why this matters")
        g.look("where to look", "a value")
        g.do("an action")
    assert "why this matters" not in output(terse)
    assert "an action" in output(terse)
    assert "why this matters" in output(narrated)
    assert "look: where to look" in output(narrated)


def test_a_json_log_line_is_shown_as_its_event_and_fields() -> None:
    line = 'saga-worker    | {"event": "saga.step_retry", "step": "confirm-acceptance", "retries": 1, "x": 2}'
    assert _short(line) == "saga-worker    | saga.step_retry step=confirm-acceptance retries=1"
    assert _short("run.py | plain") == "run.py | plain"


def test_the_delay_outlasts_the_step_timeout_and_stays_short() -> None:
    assert fail_saga_step.delay_seconds(3) == 6
    assert fail_saga_step.delay_seconds(30) == 35


# ---------------------------------------------------------------------- what is put back


class Interrupted(asyncio.CancelledError):
    """What Ctrl-C (or SIGTERM) raises inside the walkthrough."""


@dataclasses.dataclass
class FakeLoad:
    """The part of tools.chaos.load.Load the walkthroughs use; ``interrupt_on`` raises there."""

    interrupt_on: str
    faults: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)
    calls: list[str] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        member = object()
        question = type("Q", (), {"id": "q-1", "asker": member, "answers": [("a", member)]})()
        self.world = type("W", (), {"members": [member, object()], "questions": [question]})()
        self.world.hot_posts = []
        self.requests: list[Any] = []
        self.admin = object()

    def _step(self, name: str) -> None:
        self.calls.append(name)
        if name == self.interrupt_on:
            raise Interrupted

    async def prepare(self, members: int, hot_posts: int) -> None:
        self._step("prepare")

    async def set_fault(self, service: str, command: str, mode: str, delay_ms: int = 0) -> None:
        self.faults.append((service, command, mode))

    async def ask(self, member: object) -> None:
        self._step("ask")

    async def answer(self, member: object, question: object) -> None:
        self._step("answer")

    async def accept(self) -> str:
        self._step("accept")
        return "saga-1"

    async def saga(self, saga_id: str) -> dict[str, Any]:
        self._step("saga")
        return {"status": "RUNNING", "steps": []}

    async def write_post(self, member: object) -> str:
        self._step("write_post")
        return "post-1"

    async def call(self, op: str, method: str, path: str, expect: int, *a: Any) -> Any:
        """The admin's list of faults: those set and not lifted; a question: ACCEPTING."""
        if path == "/api/admin/faults":
            on: dict[tuple[str, str], str] = {}
            for service, command, mode in self.faults:
                on[(service, command)] = mode
            return {"items": [f"{s}/{c}" for (s, c), mode in on.items() if mode != "off"]}
        return {"status": "ACCEPTING"}


async def test_an_interrupted_saga_walkthrough_lifts_its_fault() -> None:
    load = FakeLoad(interrupt_on="saga")
    g = guide()
    with pytest.raises(asyncio.CancelledError):
        await fail_saga_step.run(g, load)  # type: ignore[arg-type]
    assert load.faults == [
        ("member", "transfer-points", "fail"),
        ("member", "transfer-points", "off"),
    ]
    assert "put back: fault member/transfer-points off" in output(g)


@pytest.fixture
def listening() -> Iterator[str]:
    """A ``host:port`` that accepts connections, as a broker that is up."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield f"127.0.0.1:{server.getsockname()[1]}"


def closed_port() -> str:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
    return f"127.0.0.1:{port}"


async def no_dead_letters(target: Target) -> dict[str, int]:
    return {}


@pytest.mark.parametrize("interrupted", ["while stopping", "while writing"])
async def test_an_interrupted_kafka_walkthrough_starts_kafka_again_and_says_so(
    interrupted: str, tmp_path: Path, listening: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stop_kafka, "dead_letters", no_dead_letters)
    target = dataclasses.replace(
        Target.from_env({"KAFKA_BOOTSTRAP_SERVERS": listening}),
        infra=Infra(script=fake_infra_sh(tmp_path, stop_seconds=0.5)),
    )
    g = guide(target=target)
    load = FakeLoad(interrupt_on="write_post" if interrupted == "while writing" else "")
    task = asyncio.create_task(stop_kafka.run(g, load))  # type: ignore[arg-type]
    if interrupted == "while stopping":
        await asyncio.sleep(0.2)
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Started again, and only once the stop had finished (or the stop would win).
    assert (tmp_path / "log").read_text() == "stop kafka begin\nstop kafka end\nstart kafka\n"
    g.interrupt("SIGINT")
    assert g.result() == 130
    last = output(g).rstrip().splitlines()[-1]
    assert last.startswith("INTERRUPTED by SIGINT")
    assert f"put back: Kafka started, accepting connections at {listening}" in last


async def test_kafka_not_back_after_an_interruption_tells_how_to_start_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stop_kafka, "dead_letters", no_dead_letters)
    target = dataclasses.replace(
        Target.from_env({"KAFKA_BOOTSTRAP_SERVERS": closed_port()}),
        infra=Infra(script=fake_infra_sh(tmp_path, stop_seconds=0)),
    )
    g = guide(target=target)
    with pytest.raises(asyncio.CancelledError):
        await stop_kafka.run(g, FakeLoad(interrupt_on="write_post"))  # type: ignore[arg-type]
    g.interrupt("SIGINT")
    assert g.result() == 130
    assert "NOT put back; start it by hand: `make infra-up`" in output(g)


def test_a_stack_that_is_down_fails_at_once_before_any_narration(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GATEWAY_URL", f"http://{closed_port()}")
    monkeypatch.delenv("RUN_PORT_OFFSET", raising=False)
    started = time.monotonic()
    assert runner.main(["kill-worker", "--pause", "0"]) == 1
    assert time.monotonic() - started < 3
    shown = capsys.readouterr().out
    assert "is `make run` running?" in shown
    assert kill_worker.SUMMARY[:40] not in shown.replace("\n", " ")


async def test_rolling_without_a_second_replica_fails_and_says_how_to_start_one(
    tmp_path: Path,
) -> None:
    for service in ("member", "board", "qna", "saga"):
        (tmp_path / f"{service}-api.pid").write_text("1\n")
    target = dataclasses.replace(Target.from_env({}), processes=Processes(tmp_path))
    g = guide(target=target)
    load = FakeLoad(interrupt_on="")
    await roll_deployment.run(g, load)  # type: ignore[arg-type]
    assert g.result() == 1
    assert "RUN_API_REPLICAS=2" in output(g)
    assert load.calls == []  # no traffic, no restart
