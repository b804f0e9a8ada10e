"""Health check API: a degraded dependency shows in the detail without making the process unready."""

from __future__ import annotations

from chassis.health import Health, NotReady
from chassis.lifecycle import Runtime
from chassis.metrics import DEPENDENCY_UP
from chassis.resources import attach
from chassis.settings import BaseServiceSettings


async def _fine() -> None:
    return None


async def _redis_down() -> None:
    raise ConnectionRefusedError("[Errno 111] Connect call failed ('127.0.0.1', 56379)")


async def _consumer_waiting() -> None:
    raise NotReady("consumer g: waiting out ConnectionRefusedError since 2026-01-01T00:00:00+00:00")


async def test_a_degraded_dependency_that_is_down_leaves_the_process_ready() -> None:
    health = Health(service="unit-health")
    health.started = True
    health.add_check("postgres", _fine)
    health.add_check("redis", _redis_down, degraded=True)
    ready, checks = await health.ready()
    assert ready is True
    assert checks["postgres"] == "up"
    assert checks["redis"].startswith("degraded: ConnectionRefusedError")
    assert DEPENDENCY_UP.labels("unit-health", "redis")._value.get() == 0
    assert DEPENDENCY_UP.labels("unit-health", "postgres")._value.get() == 1


async def test_a_consumer_waiting_out_an_outage_makes_the_process_not_ready_with_its_reason() -> (
    None
):
    health = Health(service="unit-health")
    health.started = True
    health.add_check("consumer g", _consumer_waiting)
    ready, checks = await health.ready()
    assert ready is False
    assert checks["consumer g"] == (
        "down: consumer g: waiting out ConnectionRefusedError since 2026-01-01T00:00:00+00:00"
    )


async def test_a_process_attached_to_an_unreachable_redis_stays_ready() -> None:
    settings = BaseServiceSettings(SERVICE_NAME="unit-redis", REDIS_URL="redis://127.0.0.1:1/0")
    runtime = Runtime(settings.SERVICE_NAME)
    res = attach(settings, runtime, database=False, redis=True, kafka=False, verifier=False)
    runtime.health.started = True
    try:
        ready, checks = await runtime.health.ready()
    finally:
        await res.cache.aclose()
    assert ready is True
    assert checks["redis"].startswith("degraded:")


async def test_process_ready_follows_every_readiness_evaluation() -> None:
    from chassis.metrics import PROCESS_READY

    health = Health(service="unit-ready")
    health.add_check("postgres", _fine)
    await health.ready()
    assert PROCESS_READY.labels("unit-ready")._value.get() == 0  # still starting
    health.started = True
    await health.ready()
    assert PROCESS_READY.labels("unit-ready")._value.get() == 1
    health.add_check("consumer g", _consumer_waiting)
    await health.ready()
    assert PROCESS_READY.labels("unit-ready")._value.get() == 0
    health.shutting_down = True
    await health.ready()
    assert PROCESS_READY.labels("unit-ready")._value.get() == 0


async def test_a_scrape_of_metrics_evaluates_readiness_without_a_probe_of_readyz() -> None:
    """Nothing probes a local worker's /readyz: the scrape itself keeps process_ready current."""
    import httpx
    from fastapi import FastAPI

    from chassis import metrics

    app = FastAPI()
    app.include_router(metrics.router)
    health = Health(service="unit-scrape")
    health.started = True
    health.add_check("postgres", _fine)
    app.state.health = health
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert 'process_ready{service="unit-scrape"} 1.0' in (await client.get("/metrics")).text
        health.add_check("consumer g", _consumer_waiting)
        text = (await client.get("/metrics")).text
        assert 'process_ready{service="unit-scrape"} 0.0' in text
        assert 'dependency_up{dependency="consumer g",service="unit-scrape"} 0.0' in text
