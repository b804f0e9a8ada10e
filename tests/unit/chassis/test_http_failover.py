"""Service-to-service calls to the replicas of one service: round robin, and failover when a connection is refused.

Kind: a replica restarting fails a caller that names it by URL (saga's pre-check of qna under
``make run``, which starts two replicas of each API). A refused connection sent nothing, so any
method may go to the next replica; the replicas share the load otherwise.
"""

from __future__ import annotations

import httpx
import pytest

from chassis.http import FailoverTransport, create_http_client

A = "http://127.0.0.1:8003"
B = "http://127.0.0.1:8013"


class Replicas(httpx.AsyncBaseTransport):
    """The network, as far as these tests need it: the ports in ``down`` refuse connections,
    the others answer with their port; every request is recorded."""

    def __init__(self, down: set[int] | None = None) -> None:
        self.down = down or set()
        self.seen: list[tuple[str, int | None, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        port = request.url.port
        self.seen.append((request.method, port, request.headers["host"]))
        if port in self.down:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        return httpx.Response(200, text=str(port), request=request)


async def test_requests_alternate_between_replicas() -> None:
    network = Replicas()
    client = httpx.AsyncClient(transport=FailoverTransport(network, [A, B]), base_url=A)
    got = [(await client.get("/x")).text for _ in range(4)]
    assert got == ["8003", "8013", "8003", "8013"]
    assert [host for *_, host in network.seen] == ["127.0.0.1:8003", "127.0.0.1:8013"] * 2


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_refused_connection_goes_to_the_next_replica_for_any_method(method: str) -> None:
    network = Replicas(down={8003})
    client = httpx.AsyncClient(transport=FailoverTransport(network, [A, B]), base_url=A)
    for _ in range(4):
        response = await client.request(method, "/internal/x")
        assert response.text == "8013"


async def test_when_every_replica_refuses_the_error_reaches_the_caller() -> None:
    network = Replicas(down={8003, 8013})
    client = httpx.AsyncClient(transport=FailoverTransport(network, [A, B]), base_url=A)
    with pytest.raises(httpx.ConnectError):
        await client.post("/x")
    assert len(network.seen) == 2  # each tried once


def test_replicas_must_differ_only_in_their_origin() -> None:
    with pytest.raises(ValueError, match="origin"):
        FailoverTransport(Replicas(), [f"{A}/a", f"{B}/b"])


async def test_the_client_takes_a_comma_separated_list() -> None:
    client = create_http_client(f"{A},{B}")
    assert str(client.base_url) == f"{A}/" or str(client.base_url) == A
    transport = client._transport
    assert isinstance(getattr(transport, "inner", None), FailoverTransport)
    await client.aclose()
    single = create_http_client(A)
    assert not isinstance(getattr(single._transport, "inner", None), FailoverTransport)
    await single.aclose()
