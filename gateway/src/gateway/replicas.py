"""Client-side load balancing: round robin over an upstream's ready replicas, active health checks on /readyz.

An upstream is one URL (``BOARD_URL=http://board-api:8000``, a Kubernetes Service or a compose
service, which balances behind that one address) or a comma-separated list of replicas
(``BOARD_URL=http://127.0.0.1:8002,http://127.0.0.1:8012``, what ``make run`` passes when it
starts two replicas of each API). For a list the gateway does what Envoy does with the
endpoints of a cluster (docs/gateway.md "Replicas"):

- **round robin** over the replicas that are ready;
- **active health checks**: every ``UPSTREAM_HEALTH_CHECK_INTERVAL_SECONDS`` each replica's
  ``/readyz`` is read; 200 makes it ready, anything else (503 while it drains after SIGTERM or
  while it starts, no answer within ``UPSTREAM_HEALTH_CHECK_TIMEOUT_SECONDS``) takes it out of
  the rotation until a later check passes;
- **passive ejection**: a replica that refuses a connection leaves the rotation at once, without
  waiting for the next check, and the request fails over to the next replica (``proxy.py``);
- **panic routing**: when no replica is ready, every replica is tried (Envoy's panic threshold),
  so an outage that makes all of them unready (their database is down) is answered as it would be
  with one URL, by the breaker and the upstream's own answers, instead of by the gateway alone.

A single URL gets no health checks: whatever stands behind it (kube-proxy, a compose service)
does its own, and a gateway that took its only address out of service would answer 503 for an
upstream that may well be serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Sequence
from typing import Protocol

from chassis.logging import get_logger
from gateway.metrics import REPLICA_READY
from gateway.pool import UpstreamError, UpstreamReply

log = get_logger(__name__)

#: The path read by the active health checks: the chassis' readiness (``chassis.health``).
READINESS_PATH = "/readyz"


class Pool(Protocol):
    """What a replica needs of its connection pool (``pool.ConnectionPool``)."""

    async def request(
        self, method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> UpstreamReply: ...

    async def aclose(self) -> None: ...


def split_urls(value: str) -> list[str]:
    """``"http://a:1, http://b:2/"`` -> ``["http://a:1", "http://b:2"]``; raises ValueError when
    no URL is left."""
    urls = [url.strip().rstrip("/") for url in value.split(",") if url.strip()]
    if not urls:
        raise ValueError(f"no upstream URL in {value!r}")
    return urls


class Replica:
    """One address of an upstream, its connection pool (created in the lifespan) and whether the
    health checks consider it ready. A replica starts ready: the first check runs at startup."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.ready = True
        self._pool: Pool | None = None

    @property
    def pool(self) -> Pool:
        assert self._pool is not None, f"the pool of {self.url} is created in the lifespan"
        return self._pool

    @pool.setter
    def pool(self, pool: Pool) -> None:
        self._pool = pool

    @property
    def has_pool(self) -> bool:
        return self._pool is not None

    def __repr__(self) -> str:
        return f"Replica({self.url!r}, ready={self.ready})"


class ReplicaSet:
    """The replicas of one upstream and the round-robin cursor over them."""

    def __init__(self, name: str, urls: Sequence[str]) -> None:
        if not urls:
            raise ValueError(f"the upstream {name} has no URL")
        self.name = name
        self.replicas = [Replica(url) for url in urls]
        self._cursor = itertools.count()
        if self.checked:
            for replica in self.replicas:
                REPLICA_READY.labels(name, replica.url).set(1)

    @property
    def checked(self) -> bool:
        """Whether health checks run for this set (and replicas may leave the rotation)."""
        return len(self.replicas) > 1

    def order(self) -> list[Replica]:
        """The replicas one request may use, in the order to try them: the ready ones, starting
        one further than the previous request did (round robin), then the ones out of the
        rotation; every replica, round robin, when none is ready (panic routing). The first is
        the one the request goes to; the others are where it fails over when the connection is
        refused. A replica out of the rotation comes last rather than never: a health check
        lags a restart by up to its interval, so a replica back since then may be the only one
        still listening while its twin is stopped in turn (a rolling restart with no drain)."""
        ready = [r for r in self.replicas if r.ready]
        if not ready:
            start = next(self._cursor) % len(self.replicas)
            return self.replicas[start:] + self.replicas[:start]
        start = next(self._cursor) % len(ready)
        return ready[start:] + ready[:start] + [r for r in self.replicas if not r.ready]

    def eject(self, replica: Replica, reason: str) -> None:
        """Take ``replica`` out of the rotation until a health check finds it ready again (only
        where health checks run: a single address is never taken out)."""
        if self.checked and replica.ready:
            replica.ready = False
            REPLICA_READY.labels(self.name, replica.url).set(0)
            log.warning(
                "upstream.replica_ejected", upstream=self.name, replica=replica.url, reason=reason
            )

    def mark(self, replica: Replica, ready: bool, detail: str) -> None:
        """Record one health check's verdict, logging only the changes."""
        if replica.ready == ready:
            return
        replica.ready = ready
        REPLICA_READY.labels(self.name, replica.url).set(1 if ready else 0)
        if ready:
            log.info("upstream.replica_ready", upstream=self.name, replica=replica.url)
        else:
            log.warning(
                "upstream.replica_not_ready", upstream=self.name, replica=replica.url, detail=detail
            )


class HealthChecker:
    """Active health checks of every checked replica set (a background loop of the gateway's
    lifespan: ``chassis.lifecycle.BackgroundService``).

    Each replica's ``/readyz`` is read, bounded by ``timeout`` seconds, then again ``interval``
    seconds after the answer, each replica on its own schedule. One verdict decides (Envoy's healthy and unhealthy
    thresholds of 1): a replica that turns 503 on SIGTERM leaves the rotation within about one
    interval, which is why ``SHUTDOWN_DRAIN_SECONDS`` should be at least two intervals."""

    def __init__(self, sets: Sequence[ReplicaSet], *, interval: float, timeout: float) -> None:
        self.sets = [s for s in sets if s.checked]
        self.interval = interval
        self.timeout = timeout
        self._stop = asyncio.Event()

    async def check(self, replicas: ReplicaSet, replica: Replica) -> None:
        """One health check of one replica."""
        try:
            async with asyncio.timeout(self.timeout):
                reply = await replica.pool.request("GET", READINESS_PATH, [], b"")
        except TimeoutError:
            replicas.mark(replica, False, f"no answer within {self.timeout:g} s")
        except UpstreamError as exc:
            replicas.mark(replica, False, f"{type(exc).__name__}: {exc}")
        else:
            replicas.mark(replica, reply.status == 200, f"{READINESS_PATH} answered {reply.status}")

    async def check_all(self) -> None:
        """One round: every replica of every set, concurrently."""
        await asyncio.gather(
            *(self.check(s, r) for s in self.sets for r in s.replicas if r.has_pool)
        )

    async def _watch(self, replicas: ReplicaSet, replica: Replica) -> None:
        """Check one replica every ``interval`` until stopped; a slow replica delays only its own
        next check, never another replica's."""
        while not self._stop.is_set():
            await self.check(replicas, replica)
            with contextlib.suppress(TimeoutError):  # the interval passed: the next check
                await asyncio.wait_for(self._stop.wait(), self.interval)

    async def run(self) -> None:
        await asyncio.gather(
            *(self._watch(s, r) for s in self.sets for r in s.replicas if r.has_pool)
        )

    async def stop(self) -> None:
        self._stop.set()
