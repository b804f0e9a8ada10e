"""Graceful shutdown: only a listener a load balancer routes to waits out the readiness drain."""

from __future__ import annotations

import gc
import importlib
from collections.abc import Callable
from typing import Any

import pytest

from chassis import cli
from chassis.settings import BaseServiceSettings

#: Each process type's ``run``: (module, function, routed by a load balancer).
PROCESS_TYPES = [
    ("member.main", "run", True),
    ("member.worker", "run", False),
    ("board.main", "run", True),
    ("board.worker", "run", False),
    ("qna.main", "run", True),
    ("qna.worker", "run", False),
    ("saga.cli", "_api", True),
    ("saga.cli", "_worker", False),
]


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What ``chassis.cli.serve_http`` hands to uvicorn (``chassis.runner.serve``), not served."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(cli, "serve", lambda app, **kwargs: calls.append(kwargs))
    monkeypatch.setattr(cli, "configure_tracing", lambda *args: None)
    monkeypatch.setenv("SHUTDOWN_DRAIN_SECONDS", "2.5")
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://nobody@127.0.0.1:1/none")
    return calls


@pytest.mark.parametrize(("module", "function", "routed"), PROCESS_TYPES)
def test_an_api_drains_for_the_setting_and_a_worker_stops_at_once(
    served: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    module: str,
    function: str,
    routed: bool,
) -> None:
    process = importlib.import_module(module)
    # the app itself is not built: only what reaches uvicorn matters here
    monkeypatch.setattr(process, "serve_http", _without_app(cli.serve_http))
    run: Callable[[], None] = getattr(process, function)
    run()
    [call] = served
    assert call["drain_seconds"] == (2.5 if routed else 0.0)


def _without_app(serve_http: Callable[..., None]) -> Callable[..., None]:
    def serve(settings: Any, _factory: Any, **kwargs: Any) -> None:
        serve_http(settings, lambda _: object(), **kwargs)

    return serve


def test_what_a_process_built_before_serving_is_frozen_out_of_the_collector(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frozen_when_served: list[int] = []
    monkeypatch.setattr(
        cli, "serve", lambda app, **_: frozen_when_served.append(gc.get_freeze_count())
    )
    monkeypatch.setattr(cli, "configure_tracing", lambda *args: None)
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://nobody@127.0.0.1:1/none")
    app = {"routes": [object() for _ in range(100)]}
    try:
        cli.serve_http(BaseServiceSettings(), lambda _: app, port=1)  # type: ignore[arg-type,return-value]
    finally:
        gc.unfreeze()
    # the app, its objects and every module imported so far: skipped by full collections while
    # it serves and by the collections of interpreter finalization after SIGTERM
    [frozen] = frozen_when_served
    assert frozen > 100
