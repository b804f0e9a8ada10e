"""The proxy's pure parts: which headers go upstream and back, how a body is read and bounded."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.types import Message
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from chassis.problems import HeadersTooLarge, PayloadTooLarge
from gateway.pool import UpstreamReply
from gateway.proxy import (
    ClientDisconnected,
    forward_request_headers,
    forwarded_for,
    read_body,
    reply_headers,
)


def forward(raw: list[tuple[bytes, bytes]], max_bytes: int = 16384) -> Any:
    return forward_request_headers(
        raw, request_id="rid-1", client_ip="10.1.2.3", max_bytes=max_bytes
    )


def test_end_to_end_headers_go_upstream_untouched() -> None:
    raw = [
        (b"authorization", b"Bearer abc.def.ghi"),
        (b"idempotency-key", b"k-1"),
        (b"content-type", b"application/json"),
        (b"accept", b"application/json"),
        (b"traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        (b"accept-language", b"ko"),
    ]
    out = forward(raw)
    assert out.headers[: len(raw)] == raw
    assert out.authorization == "Bearer abc.def.ghi"


def test_hop_by_hop_and_gateway_owned_headers_are_replaced() -> None:
    raw = [
        (b"host", b"gateway.example"),
        (b"connection", b"keep-alive, x-secret-hop"),
        (b"keep-alive", b"timeout=5"),
        (b"x-secret-hop", b"1"),
        (b"te", b"trailers"),
        (b"transfer-encoding", b"chunked"),
        (b"upgrade", b"h2c"),
        (b"proxy-authorization", b"Basic eA=="),
        (b"x-request-id", b"spoofed"),
        (b"content-length", b"12"),
        (b"expect", b"100-continue"),
        (b"accept-encoding", b"gzip"),
    ]
    out = forward(raw)
    assert out.headers == [
        (b"accept-encoding", b"gzip"),
        (b"x-request-id", b"rid-1"),
        (b"x-forwarded-for", b"10.1.2.3"),
        (b"x-forwarded-proto", b"http"),
        (b"x-forwarded-host", b"gateway.example"),
    ]
    assert out.content_length == 12


def test_an_unparsable_content_length_is_ignored() -> None:
    assert forward([(b"content-length", b"twelve")]).content_length is None


def test_headers_larger_than_the_limit_are_refused() -> None:
    with pytest.raises(HeadersTooLarge):
        forward([(b"x-big", b"a" * 2000)], max_bytes=1024)


def test_the_client_s_forwarding_headers_are_replaced_by_the_gateway_s() -> None:
    """Kind: one client's requests degrade another's (a client naming its own address)."""
    out = forward(
        [
            (b"x-forwarded-for", b"192.0.2.1"),
            (b"x-forwarded-for", b"192.0.2.2, 10.1.2.3"),  # ASGI names are lower case
            (b"x-forwarded-proto", b"https"),
            (b"x-forwarded-host", b"evil.example"),
            (b"host", b"localhost:8000"),
        ]
    )
    forwarding = [(n, v) for n, v in out.headers if n.lower().startswith(b"x-forwarded-")]
    assert forwarding == [
        (b"x-forwarded-for", b"10.1.2.3"),
        (b"x-forwarded-proto", b"http"),
        # the host the client asked for, for web's origin check of a form post
        (b"x-forwarded-host", b"localhost:8000"),
    ]
    assert forwarded_for("10.1.2.3") == [(b"x-forwarded-for", b"10.1.2.3")]


async def resolved_by_a_service(trusted: list[str], peer: str, headers: list[Any]) -> str:
    """The client address a service sees: uvicorn's proxy-header handling, as ``chassis.runner``
    configures it, applied to what the gateway sends from ``peer``."""
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.update(scope)

    scope = {"type": "http", "client": (peer, 50000), "headers": headers, "scheme": "http"}
    await ProxyHeadersMiddleware(app, trusted_hosts=trusted)(scope, None, None)  # type: ignore[arg-type]
    return str(seen["client"][0])


@pytest.mark.parametrize(
    ("client", "spoofed"),
    [("127.0.0.1", b"1.2.3.4"), ("10.244.1.9", b"1.2.3.4, 10.244.0.3"), ("203.0.113.5", b"x")],
)
async def test_a_service_trusting_the_gateway_sees_the_gateway_s_client(
    client: str, spoofed: bytes
) -> None:
    """Kind: one client's requests degrade another's. The service trusts the gateway's network
    (loopback locally, the pod network in Kubernetes); a client in that network too must still
    not name its own address."""
    out = forward_request_headers(
        [(b"x-forwarded-for", spoofed)], request_id="r", client_ip=client, max_bytes=16384
    )
    trusted = ["127.0.0.1", "10.244.0.0/16"]
    assert await resolved_by_a_service(trusted, "127.0.0.1", out.headers) == client
    assert await resolved_by_a_service(trusted, "10.244.0.7", out.headers) == client


def test_reply_headers_drop_what_the_gateway_writes_itself() -> None:
    reply = UpstreamReply(
        200,
        [
            (b"content-type", b"application/json"),
            (b"Content-Length", b"999"),
            (b"date", b"yesterday"),
            (b"server", b"uvicorn"),
            (b"x-request-id", b"rid-1"),
            (b"connection", b"close"),
            (b"location", b"/api/sagas/1"),
        ],
        b"{}",
    )
    assert reply_headers(reply) == [
        (b"content-type", b"application/json"),
        (b"location", b"/api/sagas/1"),
        (b"content-length", b"2"),
    ]


def test_a_204_carries_no_content_length() -> None:
    assert reply_headers(UpstreamReply(204, [], b"")) == []


def receiver(messages: list[Message]) -> Any:
    pending: Iterator[Message] = iter(messages)

    async def receive() -> Message:
        return next(pending)

    return receive


async def test_a_body_in_several_chunks_is_joined() -> None:
    receive = receiver(
        [
            {"type": "http.request", "body": b"ab", "more_body": True},
            {"type": "http.request", "body": b"cd", "more_body": False},
        ]
    )
    assert await read_body(receive, None, 10) == b"abcd"


async def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    with pytest.raises(PayloadTooLarge):
        await read_body(receiver([]), 11, 10)


async def test_a_body_growing_over_the_limit_is_refused() -> None:
    receive = receiver(
        [
            {"type": "http.request", "body": b"123456", "more_body": True},
            {"type": "http.request", "body": b"78901", "more_body": True},
        ]
    )
    with pytest.raises(PayloadTooLarge):
        await read_body(receive, None, 10)


async def test_a_client_leaving_mid_body_is_noticed() -> None:
    receive = receiver(
        [
            {"type": "http.request", "body": b"12", "more_body": True},
            {"type": "http.disconnect"},
        ]
    )
    with pytest.raises(ClientDisconnected):
        await read_body(receive, None, 10)
