"""The stack the fuzzer and the authorization matrix run against: the saga stack with a gateway and
the web front end behind it (the matrix checks its pages too).

Its own Redis database (fault flags are global keys, and the fuzzer may switch them), and a
gateway whose per-client rate limit is out of the way of a fuzzer that sends thousands of
requests from one address in a minute.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from tests.support.infra import Infra
from tests.system.saga.stack import Stack, running_stack

#: Not the saga system tests' database (12): the fuzzer may turn fault flags on.
FUZZ_REDIS_DB = 13


@contextlib.asynccontextmanager
async def fuzz_stack(infra: Infra) -> AsyncIterator[Stack]:
    async with running_stack(
        infra,
        gateway=True,
        web=True,
        redis_db=FUZZ_REDIS_DB,
        gateway_env={"RATE_LIMIT_PER_MINUTE": "1000000", "UPSTREAM_TIMEOUT_SECONDS": "10"},
    ) as stack:
        yield stack
