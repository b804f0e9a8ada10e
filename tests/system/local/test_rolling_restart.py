"""Rolling restart under `make run`: every API replica restarted one by one under traffic, with no failed request.

``deploy/local/run.py`` runs the whole system as ``make run`` does, with two replicas of each
API (``RUN_API_REPLICAS=2``), its restart policy and pid files, on ports and databases of its
own (``RUN_PORT_OFFSET=20600``: gateway 28600, first replicas 28601-28604, second replicas
28611-28614; fresh databases, its own topic prefix and Redis database). Steady mixed traffic
goes through the gateway (about 20 requests a second: reads and writes of every service, and
answer acceptances, whose saga pre-check calls qna's replicas directly), while:

- each replica in turn gets SIGTERM from outside (a rolling restart): it turns unready, the
  gateway's health check takes it out of the rotation during its drain, it stops, run.py starts
  it again, and the next is rolled once it is ready. No request may fail.
- one replica gets SIGKILL (a crash): reads fail over to the other replica; a write that was in
  flight on the killed replica may fail (503: the gateway cannot know whether it was processed,
  so it does not repeat it), and no other request may fail.

The figures (requests sent and failed, each replica's time from SIGTERM to ready again) are
printed (``pytest -s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import IO, Any

import httpx
import pytest

from tests.support.infra import Infra
from tests.support.kafka import delete_topics_with_prefix
from tests.system.local.supervisor import (
    System,
    ready,
    start_supervisor,
    stop_supervisor,
    supervisor_env,
    wait_ready,
)

pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]

#: Far from make run (8000-8014, 9101-9104) and the fault suite (18000-18014, 19101-19104).
PORT_OFFSET = 20600
REPLICAS = 2
SERVICES = ("member", "board", "qna", "saga")
GATEWAY = f"http://127.0.0.1:{8000 + PORT_OFFSET}"
#: Fault flags and rate-limit counters are global Redis keys: a database no other suite uses.
REDIS_DB = 10
ADMIN_EMAIL = "admin@rolling.example"
ADMIN_PASSWORD = "rolling-admin-pw"
PASSWORD = "password-123"
RATE = 20  # requests a second
#: As in local.env: three of the gateway's health-check intervals (0.5 s).
DRAIN_SECONDS = 1.5


def replica_name(service: str, k: int) -> str:
    return f"{service}-api" if k == 1 else f"{service}-api-{k}"


def replica_port(service: str, k: int) -> int:
    return 8001 + SERVICES.index(service) + PORT_OFFSET + 10 * (k - 1)


REPLICA_PORTS = {
    replica_name(s, k): replica_port(s, k) for s in SERVICES for k in range(1, REPLICAS + 1)
}


@pytest.fixture(scope="module")
async def system(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[System]:
    workdir = tmp_path_factory.mktemp("rolling")
    prefix = f"r{uuid.uuid4().hex[:10]}."
    databases = {s: await infra.create_database(s) for s in SERVICES}
    env = supervisor_env(
        infra,
        databases,
        prefix,
        redis_db=REDIS_DB,
        port_offset=PORT_OFFSET,
        replicas=REPLICAS,
        pid_dir=workdir / "pids",
        key_id=f"rolling-{prefix}",
        extra={
            "ADMIN_EMAIL": ADMIN_EMAIL,
            "ADMIN_PASSWORD": ADMIN_PASSWORD,
            "SHUTDOWN_DRAIN_SECONDS": str(DRAIN_SECONDS),
            "SHUTDOWN_TIMEOUT_SECONDS": "10",
            # all the traffic comes from one address
            "RATE_LIMIT_PER_MINUTE": "0",
            "LOGIN_PER_ADDRESS_PER_MINUTE": "0",
            "SIGN_UP_PER_ADDRESS_PER_MINUTE": "0",
        },
    )
    log_path = workdir / "run.log"
    log: IO[bytes] = log_path.open("wb")
    supervisor = start_supervisor(env, log)
    started = System(supervisor, workdir / "pids", log_path)
    try:
        await wait_ready(started, [8000 + PORT_OFFSET, *REPLICA_PORTS.values()], timeout=300)
        await asyncio.sleep(1.0)  # the gateway's first health checks have seen every replica
        yield started
    finally:
        stop_supervisor(started)
        log.close()
        for url in databases.values():
            await infra.drop_database(url)
        await delete_topics_with_prefix(infra.kafka_bootstrap, prefix)


# ------------------------------------------------------------------------------ traffic


@dataclass
class Failure:
    op: str
    at: float  # monotonic seconds
    what: str


@dataclass
class Traffic:
    """About ``RATE`` requests a second through the gateway, each started on its tick whatever
    the previous ones do; a request fails when it raises or answers a status it should not."""

    http: httpx.AsyncClient
    asker: dict[str, str] = field(default_factory=dict)
    answerer: dict[str, str] = field(default_factory=dict)
    admin: dict[str, str] = field(default_factory=dict)
    free_board: str = ""
    post_id: str = ""
    sent: int = 0
    by_op: dict[str, int] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)

    async def call(self, op: str, method: str, path: str, status: int, **kwargs: Any) -> Any:
        self.sent += 1
        self.by_op[op] = self.by_op.get(op, 0) + 1
        try:
            response = await self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            self.failures.append(Failure(op, time.monotonic(), f"{type(exc).__name__}: {exc}"))
            return None
        if response.status_code != status:
            detail = f"{response.status_code} {response.text[:200]}"
            self.failures.append(Failure(op, time.monotonic(), detail))
            return None
        return response.json() if response.content else None

    async def log_in(self, email: str, password: str) -> dict[str, str]:
        tokens = await self.call(
            "log-in", "POST", "/api/auth/login", 200, json={"email": email, "password": password}
        )
        assert tokens is not None, self.failures
        return {"Authorization": f"Bearer {tokens['access_token']}"}

    async def sign_up(self) -> dict[str, str]:
        suffix = uuid.uuid4().hex[:10]
        email = f"r{suffix}@rolling.example"
        body = {"email": email, "password": PASSWORD, "nickname": f"r{suffix}"}
        assert await self.call("sign-up", "POST", "/api/members", 201, json=body) is not None
        return await self.log_in(email, PASSWORD)

    async def prepare(self) -> None:
        boards = await self.call("boards", "GET", "/api/boards", 200)
        assert boards is not None, self.failures
        self.free_board = next(b["id"] for b in boards if b["slug"] == "free")
        self.asker = await self.sign_up()
        self.answerer = await self.sign_up()
        self.admin = await self.log_in(ADMIN_EMAIL, ADMIN_PASSWORD)
        post = await self.call(
            "write post",
            "POST",
            f"/api/boards/{self.free_board}/posts",
            201,
            json={"title": "rolling", "content": "restart"},
            headers=self.asker,
        )
        assert post is not None, self.failures
        self.post_id = post["id"]
        assert not self.failures, self.failures

    async def acceptance(self) -> None:
        """Ask, answer, accept: the accept's saga pre-check calls qna's replicas directly."""
        question = await self.call(
            "ask",
            "POST",
            "/api/questions",
            201,
            json={"title": "why", "content": "roll", "bounty": 0},
            headers=self.asker,
        )
        if question is None:
            return
        answer = await self.call(
            "answer",
            "POST",
            f"/api/questions/{question['id']}/answers",
            201,
            json={"content": "because"},
            headers=self.answerer,
        )
        if answer is None:
            return
        await self.call(
            "accept",
            "POST",
            f"/api/questions/{question['id']}/answers/{answer['id']}/accept",
            202,
            headers=self.asker,
        )

    def operations(self) -> list[Callable[[], Coroutine[Any, Any, object]]]:
        board = self.free_board
        return [
            lambda: self.call("list posts", "GET", f"/api/boards/{board}/posts?size=20", 200),
            lambda: self.call("read post", "GET", f"/api/posts/{self.post_id}", 200),
            lambda: self.call("me", "GET", "/api/members/me", 200, headers=self.asker),
            lambda: self.call("questions", "GET", "/api/questions?size=20", 200),
            lambda: self.call("faults", "GET", "/api/admin/faults", 200, headers=self.admin),
            lambda: self.call(
                "write post",
                "POST",
                f"/api/boards/{board}/posts",
                201,
                json={"title": "rolling", "content": "under traffic"},
                headers=self.asker,
            ),
            lambda: self.call(
                "comment",
                "POST",
                f"/api/posts/{self.post_id}/comments",
                201,
                json={"content": "still here"},
                headers=self.answerer,
            ),
            lambda: self.call("boards", "GET", "/api/boards", 200),
            self.acceptance,
        ]

    async def run(self, stop: asyncio.Event) -> None:
        tasks: set[asyncio.Task[object]] = set()
        ops = itertools.cycle(self.operations())
        tick = 1 / RATE
        next_at = time.monotonic()
        while not stop.is_set():
            task: asyncio.Task[object] = asyncio.create_task(next(ops)())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            next_at += tick
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, next_at - time.monotonic()))
        await asyncio.gather(*tasks)


@contextlib.asynccontextmanager
async def traffic() -> AsyncIterator[Traffic]:
    async with httpx.AsyncClient(base_url=GATEWAY, timeout=15) as http:
        load = Traffic(http)
        await load.prepare()
        before = load.sent
        stop = asyncio.Event()
        runner = asyncio.create_task(load.run(stop))
        try:
            yield load
        finally:
            stop.set()
            await runner
        print(f"\nrequests sent under faults: {load.sent - before}, failed: {len(load.failures)}")
        print("by operation:", dict(sorted(load.by_op.items())))


async def in_rotation(http: httpx.AsyncClient, name: str) -> bool | None:
    """The gateway's view of replica ``name`` (``gateway_upstream_replica_ready``); None when
    the metric cannot be read."""
    try:
        text = (await http.get(f"{GATEWAY}/metrics", timeout=2)).text
    except httpx.HTTPError:
        return None
    replica = f"http://127.0.0.1:{REPLICA_PORTS[name]}"
    for line in text.splitlines():
        if line.startswith("gateway_upstream_replica_ready{") and f'replica="{replica}"' in line:
            return float(line.rsplit(" ", 1)[1]) == 1.0
    return None


@dataclass
class Restart:
    left_rotation: float | None  # seconds from the signal until the gateway took it out
    ready: float  # seconds from the signal until it was restarted and ready


async def restart_of(system: System, name: str, sig: signal.Signals) -> Restart:
    """Send ``sig`` to replica ``name`` and wait until run.py restarted it and it is ready."""
    pid = system.pid(name)
    sent = time.monotonic()
    os.killpg(pid, sig)
    deadline = sent + 120
    left: float | None = None
    async with httpx.AsyncClient() as http:
        while True:
            assert time.monotonic() < deadline, f"{name} not back:\n{system.log_tail()}"
            if left is None and await in_rotation(http, name) is False:
                left = time.monotonic() - sent
            with contextlib.suppress(FileNotFoundError, ValueError):
                if system.pid(name) != pid and await ready(http, REPLICA_PORTS[name]):
                    return Restart(left, time.monotonic() - sent)
            await asyncio.sleep(0.05)


# -------------------------------------------------------------------------------- tests


async def test_a_rolling_restart_of_every_api_replica_fails_no_request(system: System) -> None:
    timings: dict[str, Restart] = {}
    async with traffic() as load:
        await asyncio.sleep(3)  # steady traffic before the first restart
        for name in REPLICA_PORTS:
            timings[name] = await restart_of(system, name, signal.SIGTERM)
            # as a rolling update waits for the new pod: the gateway's next health checks
            # (0.5 s apart) put it back in the rotation before the next replica goes
            await asyncio.sleep(1.5)
        await asyncio.sleep(2)
    print("SIGTERM to ready, per replica (s):", {k: round(v.ready, 1) for k, v in timings.items()})
    print(
        "SIGTERM to out of the gateway's rotation (s):",
        {k: v.left_rotation and round(v.left_rotation, 2) for k, v in timings.items()},
    )
    assert load.sent > RATE * 20
    assert not load.failures, [f"{f.op}: {f.what}" for f in load.failures]
    for name, restart in timings.items():
        # its health check, not a refused connection, took it out: during its drain (1.5 s),
        # while it still accepted requests
        assert restart.left_rotation is not None, name
        assert restart.left_rotation < DRAIN_SECONDS, (name, restart)
    exits = system.log_path.read_text(errors="replace").count(
        "exited with code 0 (stopped from outside"
    )
    assert exits >= len(REPLICA_PORTS)  # each rolled replica ended gracefully and came back


async def test_a_killed_replica_fails_only_a_write_it_had_in_flight(system: System) -> None:
    """SIGKILL: the gateway's connections to it break (a write in flight there is answered
    503, never repeated) or are refused (any request fails over); reads never fail."""
    async with traffic() as load:
        await asyncio.sleep(3)
        killed_at = time.monotonic()
        back_after = (await restart_of(system, "board-api", signal.SIGKILL)).ready
        await asyncio.sleep(2)
    print(
        f"SIGKILL to ready: {back_after:.1f} s; failures: {[(f.op, f.what) for f in load.failures]}"
    )
    for failure in load.failures:
        assert failure.op in ("write post", "comment"), failure
        assert failure.what.startswith("503"), failure
        assert failure.at - killed_at < 1.0, failure  # only what was in flight at the kill
    assert len(load.failures) <= 2
