"""Resilient HTTP retries only idempotent methods; the runtime stops loops and pools in phase order."""

from __future__ import annotations

import asyncio
import itertools

import httpx

from chassis.faults import kebab
from chassis.http import RetryTransport, create_http_client, no_cookie_jar
from chassis.lifecycle import Phase, Runtime


class FlakyUpstream(httpx.AsyncBaseTransport):
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.calls <= self.failures:
            return httpx.Response(503)
        return httpx.Response(200, json={"ok": True})


async def test_get_is_retried_until_it_succeeds() -> None:
    upstream = FlakyUpstream(failures=2)
    async with httpx.AsyncClient(
        transport=RetryTransport(upstream, attempts=3, backoff=0.001)
    ) as c:
        response = await c.get("http://upstream/x")
    assert response.status_code == 200
    assert upstream.calls == 3


async def test_post_is_never_retried() -> None:
    upstream = FlakyUpstream(failures=1)
    async with httpx.AsyncClient(
        transport=RetryTransport(upstream, attempts=3, backoff=0.001)
    ) as c:
        response = await c.post("http://upstream/x", json={})
    assert response.status_code == 503
    assert upstream.calls == 1


def test_backoff_is_capped() -> None:
    transport = RetryTransport(FlakyUpstream(0), backoff=0.1, max_backoff=0.3)
    assert all(0 <= transport.delay(n) <= 0.3 for n in range(10))


def test_kebab_case_command_names() -> None:
    assert kebab("RetireAuthor") == "retire-author"
    assert kebab("StartWithdrawal") == "start-withdrawal"


class Loop:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log
        self._stop = asyncio.Event()

    async def run(self) -> None:
        await self._stop.wait()
        self.log.append(f"{self.name} stopped")

    async def stop(self) -> None:
        self._stop.set()


async def test_runtime_stops_in_phase_order_and_readiness_follows() -> None:
    log: list[str] = []
    runtime = Runtime("t")

    async def close_pool() -> None:
        log.append("pool closed")

    async def flush() -> None:
        log.append("producer flushed")

    runtime.on_shutdown("pool", close_pool, Phase.POOLS)
    runtime.add_background("relay", Loop("relay", log), Phase.RELAY)
    runtime.on_shutdown("producer", flush, Phase.RELAY)
    runtime.add_background("consumer", Loop("consumer", log), Phase.CONSUMERS)
    assert (await runtime.health.ready())[0] is False  # not started yet
    await runtime.start()
    assert (await runtime.health.ready())[0] is True
    await runtime.stop()
    assert log == ["consumer stopped", "relay stopped", "producer flushed", "pool closed"]
    assert (await runtime.health.ready())[0] is False


async def test_a_crashed_loop_is_restarted() -> None:
    runs: list[int] = []

    class Crashy:
        def __init__(self) -> None:
            self._stop = asyncio.Event()

        async def run(self) -> None:
            runs.append(1)
            if len(runs) < 3:
                raise ConnectionError("broker went away")
            await self._stop.wait()

        async def stop(self) -> None:
            self._stop.set()

    runtime = Runtime("t", restart_backoff=0.01)
    runtime.add_background("crashy", Crashy(), Phase.CONSUMERS)
    await runtime.start()
    for _ in range(100):
        if len(runs) >= 3:
            break
        await asyncio.sleep(0.01)
    await runtime.stop()
    assert len(runs) == 3


async def test_a_loop_that_keeps_crashing_is_restarted_with_growing_capped_pauses() -> None:
    starts: list[float] = []
    loop = asyncio.get_running_loop()
    enough = asyncio.Event()

    class Down:
        async def run(self) -> None:
            starts.append(loop.time())
            if len(starts) >= 6:
                enough.set()
            raise ConnectionRefusedError("[Errno 111] Connect call failed")

        async def stop(self) -> None:
            return None

    runtime = Runtime("t", restart_backoff=0.02, restart_backoff_max=0.08)
    runtime.add_background("down", Down(), Phase.CONSUMERS)
    await runtime.start()
    await asyncio.wait_for(enough.wait(), 5)
    await runtime.stop()
    pauses = [b - a for a, b in itertools.pairwise(starts)]
    # 0.02, 0.04, 0.08, then capped at 0.08 (less up to 20% jitter): no spinning, no runaway
    assert 0.015 <= pauses[0] < 0.04
    assert pauses[2] >= 0.06
    assert all(p < 0.12 for p in pauses)


async def test_a_shared_client_keeps_no_cookie_between_callers() -> None:
    """Kind: httpx keeps every answer's cookies and sends them with later requests, so a
    client shared by many users carried one user's session into another's request."""
    seen: list[str | None] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("cookie"))
        return httpx.Response(200, headers={"Set-Cookie": "session=alice; Path=/"})

    for client in (
        httpx.AsyncClient(transport=httpx.MockTransport(upstream), cookies=no_cookie_jar()),
        create_http_client("http://upstream"),
    ):
        if not isinstance(client._transport, httpx.MockTransport):
            client._transport = httpx.MockTransport(upstream)
        async with client:
            await client.get("http://upstream/a")
            await client.get("http://upstream/b")
            await client.get("http://upstream/c", headers={"Cookie": "session=bob"})
        assert seen == [None, None, "session=bob"]
        assert len(client.cookies) == 0
        seen.clear()
