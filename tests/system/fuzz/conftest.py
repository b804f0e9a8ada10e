"""One stack with a gateway and web for the fuzzer and the authorization matrix, started once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.infra import Infra
from tests.system.fuzz.stack import fuzz_stack
from tests.system.saga.stack import Stack


@pytest.fixture(scope="session")
async def gateway_stack(infra: Infra) -> AsyncIterator[Stack]:
    """Member, board, qna and saga (api + worker each), a gateway and web, as real processes."""
    async with fuzz_stack(infra) as stack:
        yield stack
