"""Idle processes stay idle: the HTTP server's main loop ticks once a second and an exit request wakes it at once."""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import threading
import time

import uvicorn
from fastapi import FastAPI

from chassis.health import Health
from chassis.runner import TICK_SECONDS, GracefulServer


def server() -> GracefulServer:
    config = uvicorn.Config(FastAPI(), log_config=None, lifespan="off")
    config.load()
    return GracefulServer(config, Health(service="tests"), drain_seconds=0)


async def test_the_main_loop_ticks_once_a_second_and_keeps_the_date_header_fresh() -> None:
    """uvicorn's own loop ticked every 100 ms: ten wake-ups a second in an idle process."""
    s = server()
    ticks: list[float] = []
    on_tick = s.on_tick

    async def counting(counter: int) -> bool:
        ticks.append(time.time())
        return await on_tick(counter)

    s.on_tick = counting  # type: ignore[method-assign]
    began = time.time()
    loop = asyncio.create_task(s.main_loop())
    await asyncio.sleep(2.5)
    s.should_exit = True
    await asyncio.wait_for(loop, 5)
    # the first tick, one per second boundary passed (t seconds hold up to floor(t) + 1 of
    # them: 2.5 s from x.73 pass x+1, x+2 and x+3), and the one that sees the exit; counted over
    # the time that really passed (a loaded machine oversleeps the 2.5 s). The old loop's ten
    # ticks a second give 25.
    assert len(ticks) <= (time.time() - began) / TICK_SECONDS + 3
    assert all(b - a <= TICK_SECONDS + 0.1 for a, b in itertools.pairwise(ticks))
    date = dict(s.server_state.default_headers)[b"date"].decode()
    assert abs(email.utils.parsedate_to_datetime(date).timestamp() - time.time()) <= 2


async def test_an_exit_requested_from_another_thread_wakes_the_main_loop_at_once() -> None:
    """The readiness drain's timer thread sets ``should_exit``: the loop must not sleep on."""
    s = server()
    loop = asyncio.create_task(s.main_loop())
    await asyncio.sleep(0.05)
    began = time.monotonic()
    threading.Thread(target=setattr, args=(s, "should_exit", True)).start()
    await asyncio.wait_for(loop, 1)
    assert time.monotonic() - began < 0.2
    assert s.should_exit
