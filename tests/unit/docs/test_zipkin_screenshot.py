"""The Zipkin screenshot tool (tools/screenshots/zipkin.py) finds the newest acceptance by Zipkin's own filters, whatever other traffic there is."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tools.screenshots import zipkin


def span(trace: str, name: str, *, service: str = "gateway", kind: str = "SERVER", at: int) -> Any:
    return {
        "traceId": trace,
        "name": name,
        "kind": kind,
        "timestamp": at,
        "localEndpoint": {"serviceName": service},
    }


def test_the_newest_gateway_acceptance_is_taken_and_nothing_else() -> None:
    traces = [
        [span("old", zipkin.ACCEPT_SPAN, at=1)],
        [span("new", zipkin.ACCEPT_SPAN, at=5), span("new", "post", kind="CLIENT", at=6)],
        # a newer span of the same name elsewhere, and newer traffic of other routes
        [span("client", zipkin.ACCEPT_SPAN, kind="CLIENT", at=9)],
        [span("saga", zipkin.ACCEPT_SPAN, service="saga-api", at=9)],
        [span("other", "get /api/questions", at=9)],
    ]
    assert zipkin.newest_trace(traces, "gateway", zipkin.ACCEPT_SPAN) == "new"
    assert zipkin.newest_trace(traces[2:], "gateway", zipkin.ACCEPT_SPAN) is None


async def test_zipkin_is_asked_for_the_gateways_accept_spans_by_name() -> None:
    """Kind: a search that scanned the newest 100 gateway traces missed the acceptance as soon
    as 100 other requests followed it."""
    asked: list[httpx.QueryParams] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.params)
        return httpx.Response(200, json=[[span("t1", zipkin.ACCEPT_SPAN, at=3)]])

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        assert await zipkin.newest_acceptance(http, "http://z") == "t1"
    assert asked[0]["serviceName"] == "gateway"
    assert asked[0]["spanName"] == "post /api/questions/{qid}/answers/{aid}/accept"


async def test_no_acceptance_says_to_run_a_saga() -> None:
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(lambda _: httpx.Response(200, json=[]))
    ) as http:
        with pytest.raises(SystemExit, match="run a saga"):
            await zipkin.newest_acceptance(http, "http://z")
