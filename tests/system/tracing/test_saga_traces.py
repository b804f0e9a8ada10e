"""One trace is the proof: a saga started at the gateway is one Zipkin trace, from the request through
the outbox relay and Kafka to every participant and back to the orchestrator (W3C trace context in
the outbox rows and the Kafka headers)."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass

import httpx
import pytest

from tests.system.saga.client import SagaStackClient, eventually
from tests.system.saga.stack import Stack
from tests.system.tracing.zipkin import Span, Zipkin, wait_for_trace

pytestmark = pytest.mark.system


@dataclass(frozen=True)
class Hop:
    """One span the trace must hold: made by ``service`` (Zipkin's ``localEndpoint``), of ``kind``,
    its name containing ``name``, and a descendant of the hop named ``after`` (parent/child links
    only: the code makes every span a child of the context it received)."""

    label: str
    service: str
    kind: str | None  # None: an internal span (Zipkin leaves its kind out)
    name: str
    after: str | None


def saga_round_trip(
    n: int, participant: str, after: str, sender: str = "saga"
) -> tuple[list[Hop], str]:
    """A command from the orchestrator to ``participant`` and its reply back: the relay's publish,
    the participant's handling, its reply's publish, and the orchestrator's handling of it."""
    hops = [
        Hop(f"command {n} published", sender, "PRODUCER", f"saga.{participant}.commands publish", after),
        Hop(f"command {n} handled by {participant}", participant, "CONSUMER", f"saga.{participant}.commands process", f"command {n} published"),
        Hop(f"reply {n} published", participant, "PRODUCER", "saga.replies publish", f"command {n} handled by {participant}"),
        Hop(f"reply {n} handled by the orchestrator", "saga", "CONSUMER", "saga.replies process", f"reply {n} published"),
    ]  # fmt: skip
    return hops, f"reply {n} handled by the orchestrator"


def saga_hops(
    route: str, participants: list[str], pre_check: str | None, sender: str = "saga"
) -> list[Hop]:
    hops = [
        Hop("gateway request", "gateway", "SERVER", route, None),
        Hop("saga api request", "saga", "SERVER", route, "gateway request"),
    ]
    if pre_check is not None:
        hops.append(
            Hop(f"{pre_check} api pre-check", pre_check, "SERVER", "get", "saga api request")
        )
    after = "saga api request"
    for n, participant in enumerate(participants, start=1):
        more, after = saga_round_trip(n, participant, after, sender)
        hops += more
    return hops


def parents(spans: list[Span]) -> dict[str, str | None]:
    return {s["id"]: s.get("parentId") for s in spans}


def is_descendant(spans_parents: dict[str, str | None], span_id: str, ancestor_id: str) -> bool:
    seen = set()
    current: str | None = span_id
    while current is not None and current not in seen:
        if current == ancestor_id:
            return True
        seen.add(current)
        current = spans_parents.get(current)
    return False


def match(spans: list[Span], hops: list[Hop]) -> tuple[dict[str, Span], list[Hop]]:
    """Each hop's earliest span that descends from the span matched for its ``after``; the hops
    that matched none."""
    links = parents(spans)
    found: dict[str, Span] = {}
    missing: list[Hop] = []
    for hop in hops:
        candidates = sorted(
            (
                s
                for s in spans
                if s.get("localEndpoint", {}).get("serviceName") == hop.service
                and s.get("kind") == hop.kind
                and hop.name.lower() in s.get("name", "")
                and (hop.after is None or (
                    hop.after in found and is_descendant(links, s["id"], found[hop.after]["id"])
                ))
                and s["id"] not in {f["id"] for f in found.values()}
            ),
            key=lambda s: s.get("timestamp", 0),
        )  # fmt: skip
        if candidates:
            found[hop.label] = candidates[0]
        else:
            missing.append(hop)
    return found, missing


def describe(spans: list[Span]) -> str:
    """The trace as Zipkin holds it, one span a line, children indented under their parent."""
    by_parent: dict[str | None, list[Span]] = {}
    ids = {s["id"] for s in spans}
    for s in sorted(spans, key=lambda s: s.get("timestamp", 0)):
        parent = s.get("parentId")
        by_parent.setdefault(parent if parent in ids else None, []).append(s)
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        for s in by_parent.get(parent, []):
            service = s.get("localEndpoint", {}).get("serviceName")
            lines.append(f"{'  ' * depth}{service} {s.get('kind', '-')} {s.get('name')}")
            walk(s["id"], depth + 1)

    walk(None, 0)
    return "\n".join(lines) or "(no span)"


def trace_id_in_access_log(stack: Stack, request_id: str) -> str | None:
    """The trace id of the gateway's access log line for ``request_id`` (X-Request-ID): how an
    operator goes from a log line to its trace."""
    for line in stack.logs("gateway-api").splitlines():
        try:
            entry = json.loads(line[line.index("{") :])
        except ValueError:
            continue
        if entry.get("event") == "http.request" and entry.get("request_id") == request_id:
            trace_id: str = entry["trace_id"]
            return trace_id
    return None


async def start_through_gateway(
    http: httpx.AsyncClient, stack: Stack, method: str, path: str, token: str
) -> tuple[str, str]:
    """Start a saga at the gateway; its id and the trace id of the request."""
    request_id = uuid.uuid4().hex
    response = await http.request(
        method,
        f"{stack.gateway_url}{path}",
        headers={"Authorization": f"Bearer {token}", "X-Request-ID": request_id},
    )
    assert response.status_code == 202, response.text

    async def logged() -> str | None:
        # the access log line is written once the answer has gone out
        return trace_id_in_access_log(stack, request_id)

    trace_id: str = await eventually(logged, timeout=10, message="the gateway's access log line")
    return response.json()["saga_id"], trace_id


async def assert_one_trace(
    http: httpx.AsyncClient, zipkin: Zipkin, trace_id: str, hops: list[Hop]
) -> dict[str, Span]:
    spans = await wait_for_trace(http, zipkin, trace_id, lambda s: not match(s, hops)[1])
    found, missing = match(spans, hops)
    assert not missing, (
        f"trace {trace_id} lacks {[h.label for h in missing]}; it holds:\n{describe(spans)}"
    )
    return found


async def test_an_answer_acceptance_is_one_trace_from_the_gateway_to_the_last_reply(
    traced_stack: Stack, client: SagaStackClient, http: httpx.AsyncClient, zipkin: Zipkin
) -> None:
    asker, answerer = await client.sign_up(), await client.sign_up()
    question = await client.ask(asker, bounty=30)
    answer = await client.answer(answerer, question)

    saga_id, trace_id = await start_through_gateway(
        http,
        traced_stack,
        "POST",
        f"/api/questions/{question}/answers/{answer}/accept",
        asker.token,
    )
    await client.wait_saga(saga_id, "COMPLETED")

    await assert_one_trace(
        http,
        zipkin,
        trace_id,
        saga_hops("accept", ["qna", "member", "qna"], pre_check="qna"),
    )


async def test_a_member_withdrawal_is_one_trace_from_the_gateway_to_the_last_reply(
    traced_stack: Stack, client: SagaStackClient, http: httpx.AsyncClient, zipkin: Zipkin
) -> None:
    member = await client.sign_up()
    await client.write_post(member)

    saga_id, trace_id = await start_through_gateway(
        http, traced_stack, "DELETE", "/api/members/me", member.token
    )
    await client.wait_saga(saga_id, "COMPLETED")

    await assert_one_trace(
        http,
        zipkin,
        trace_id,
        saga_hops("members/me", ["member", "board", "qna", "member"], pre_check=None),
    )


async def test_a_retried_step_is_re_sent_in_the_same_trace(
    traced_stack: Stack, client: SagaStackClient, http: httpx.AsyncClient, zipkin: Zipkin
) -> None:
    """ConfirmAcceptance refused once (qna failing): the deadline sweeper re-sends it after the
    backoff, as the child of a "saga deadline" span under the refusal's handling."""
    asker, answerer = await client.sign_up(), await client.sign_up()
    question = await client.ask(asker, bounty=30)
    answer = await client.answer(answerer, question)
    await client.set_fault("qna", "confirm-acceptance", "fail")

    saga_id, trace_id = await start_through_gateway(
        http,
        traced_stack,
        "POST",
        f"/api/questions/{question}/answers/{answer}/accept",
        asker.token,
    )

    async def refused() -> bool:
        saga = await client.saga(saga_id)
        confirm = next(s for s in saga["steps"] if s["name"] == "confirm-acceptance")
        return bool(confirm["retries"])

    await eventually(refused, message="ConfirmAcceptance refused and retried")
    await client.set_fault("qna", "confirm-acceptance", "off")
    await client.wait_saga(saga_id, "COMPLETED")

    # reply 3 is a refusal; the sweeper re-sends ConfirmAcceptance (command 4) after the backoff
    retry, _ = saga_round_trip(4, "qna", "deadline passed")
    await assert_one_trace(
        http,
        zipkin,
        trace_id,
        [
            *saga_hops("accept", ["qna", "member", "qna"], pre_check="qna"),
            Hop("deadline passed", "saga", None, "saga deadline", "reply 3 handled by the orchestrator"),
            *retry,
        ],
    )  # fmt: skip


async def test_a_command_re_sent_after_a_restart_stays_in_the_same_trace(
    traced_stack: Stack, client: SagaStackClient, http: httpx.AsyncClient, zipkin: Zipkin
) -> None:
    """TransferPoints in flight when the orchestrator's worker restarts: its recovery re-sends the
    command in a "saga recover" span under the saga's stored context."""
    asker, answerer = await client.sign_up(), await client.sign_up()
    question = await client.ask(asker, bounty=30)
    answer = await client.answer(answerer, question)
    # member holds TransferPoints long enough for the restart to find it unanswered
    await client.set_fault("member", "transfer-points", "delay", 20_000)

    saga_id, trace_id = await start_through_gateway(
        http,
        traced_stack,
        "POST",
        f"/api/questions/{question}/answers/{answer}/accept",
        asker.token,
    )
    await client.wait_step(saga_id, "transfer-points", "RUNNING")
    await asyncio.to_thread(traced_stack.restart, "saga-worker")
    await client.set_fault("member", "transfer-points", "off")
    await client.wait_saga(saga_id, "COMPLETED")

    await assert_one_trace(
        http,
        zipkin,
        trace_id,
        [
            *saga_hops("accept", ["qna"], pre_check="qna"),
            Hop("recovery", "saga", None, "saga recover", "reply 1 handled by the orchestrator"),
            Hop("re-sent command published", "saga", "PRODUCER", "saga.member.commands publish",
                "recovery"),
            Hop("re-sent command handled", "member", "CONSUMER", "saga.member.commands process",
                "re-sent command published"),
        ],
    )  # fmt: skip
