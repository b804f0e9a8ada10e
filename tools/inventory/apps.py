"""Composition roots built in-process: each service's API and worker app, as its process would build them.

Building an app creates clients but connects nothing (``chassis.resources.attach``), so the
inventory can read the routes and the consumers the real wiring registers. The build runs with an
empty environment and fixed settings, so the inventory is the same on every machine and in every
shell (a ``KAFKA_TOPIC_PREFIX`` or ``SERVICE_NAME`` set by a test run changes nothing).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from unittest import mock

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from chassis.lifecycle import Runtime
from chassis.messaging.consumer import ConsumerRunner

#: Settings that need no infrastructure: building an app opens no connection.
NOWHERE = "postgresql+asyncpg://nobody:nothing@127.0.0.1:1/nothing"
# Each app instruments the same libraries again; OpenTelemetry warns about it once per app, which
# says nothing about the inventory.
logging.getLogger("opentelemetry.instrumentation.instrumentor").setLevel(logging.ERROR)

#: The services with an API and a worker, in the order the inventories list them.
SERVICES = ("member", "board", "qna", "saga")


@contextmanager
def clean_environment() -> Iterator[None]:
    """Build under an empty environment: only the settings passed explicitly count."""
    with mock.patch.dict(os.environ, {}, clear=True):
        yield


def _signing_key() -> str:
    """A throwaway Ed25519 key: member's settings need one; no token is ever signed with it."""
    return (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


def _member(worker: bool) -> FastAPI:
    from member.bootstrap import build_api, build_worker
    from member.config import Settings

    build = build_worker if worker else build_api
    return build(Settings(DATABASE_URL=NOWHERE, JWT_PRIVATE_KEY=_signing_key()))


def _board(worker: bool) -> FastAPI:
    from board.bootstrap import build_api, build_worker
    from board.config import Settings

    return (build_worker if worker else build_api)(Settings(DATABASE_URL=NOWHERE))


def _qna(worker: bool) -> FastAPI:
    from qna.bootstrap import build_api, build_worker
    from qna.config import Settings

    return (build_worker if worker else build_api)(Settings(DATABASE_URL=NOWHERE))


def _saga(worker: bool) -> FastAPI:
    from saga.bootstrap import build_api, build_worker
    from saga.config import Settings

    return (build_worker if worker else build_api)(Settings(DATABASE_URL=NOWHERE))


_BUILDERS: dict[str, Callable[[bool], FastAPI]] = {
    "member": _member,
    "board": _board,
    "qna": _qna,
    "saga": _saga,
}


def api_app(service: str) -> FastAPI:
    """The ``api`` process's app of ``service`` (one of ``SERVICES``)."""
    with clean_environment():
        return _BUILDERS[service](False)


def gateway_app() -> FastAPI:
    """The gateway's app: its own routes (the composed dashboard); the route table is separate."""
    from gateway.bootstrap import build_api
    from gateway.config import Settings

    with clean_environment():
        return build_api(Settings())


@dataclass(frozen=True)
class Consumer:
    """One consumer loop of a worker: its group, the topics it subscribes to and its handler."""

    service: str
    group: str
    topics: tuple[str, ...]
    handler: Callable[..., object]

    @property
    def handler_name(self) -> str:
        """``module.qualname`` of the handler, e.g. ``chassis.saga.SagaParticipant.handle``."""
        function = getattr(self.handler, "__func__", self.handler)
        return f"{function.__module__}.{function.__qualname__}"


def consumers(service: str) -> list[Consumer]:
    """The consumer loops ``service``'s worker registers, in registration order.

    Read from the worker's ``Runtime`` (``app.state.runtime``), whose background loops are the
    consumers ``chassis.resources.Resources.add_consumer`` created; the topic prefix is empty."""
    with clean_environment():
        app = _BUILDERS[service](True)
    runtime: Runtime = app.state.runtime
    # the runtime keeps its loops privately; the inventory only reads them, never runs them
    loops = [background.service for background in runtime._background]
    return [
        Consumer(service, loop.group_id, tuple(loop.topics), loop.handler)
        for loop in loops
        if isinstance(loop, ConsumerRunner)
    ]
