"""The five failure walkthroughs (tools/walkthrough), each in its check-only mode, on the fault suite's own stack.

Stopping Kafka or killing a worker here never touches the shared infrastructure that the
other tests use: the walkthroughs act on the chaos instance (tests/chaos/stack.py), told
about it by the same settings ``make run`` reads, and they share its one start with the short
fault suite (the session-scoped ``chaos_stack``).
"""

from __future__ import annotations

import socket
import subprocess
import sys

import httpx
import pytest

from tests.chaos.stack import ADMIN_EMAIL, ADMIN_PASSWORD, GATEWAY_URL, ChaosStack, stack_env
from tests.support.infra import REPO
from tools.walkthrough.__main__ import WALKTHROUGHS

pytestmark = [pytest.mark.chaos, pytest.mark.system]


def replicas_running(stack: ChaosStack) -> bool:
    """Whether deploy/local/run.py started a second replica of the APIs (``<service>-api-2``)."""
    return any(name.endswith("-api-2") for name in stack.target.processes.names())


def faults_on() -> list[object]:
    """The step faults that are on (``GET /api/admin/faults`` as the admin)."""
    with httpx.Client(base_url=GATEWAY_URL, timeout=10) as http:
        login = http.post(
            "/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        login.raise_for_status()
        token = login.json()["access_token"]
        response = http.get("/api/admin/faults", headers={"Authorization": f"Bearer {token}"})
        response.raise_for_status()
        items: list[object] = response.json()["items"]
        return items


def kafka_up(stack: ChaosStack) -> bool:
    host, _, port = stack.target.kafka_bootstrap.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError:
        return False
    return True


@pytest.mark.timeout(240)
@pytest.mark.parametrize("name", list(WALKTHROUGHS))
def test_walkthrough_passes_and_puts_back_what_it_changed(
    name: str, chaos_stack: ChaosStack, request: pytest.FixtureRequest
) -> None:
    if name == "roll-deployment" and not replicas_running(chaos_stack):
        # Until deploy/local/run.py starts two replicas of each API, a restart refuses
        # requests: the walkthrough says so and FAILs. strict: it must pass once they exist.
        request.applymarker(pytest.mark.xfail(strict=True, reason="run.py starts one replica"))
    result = subprocess.run(
        [sys.executable, "-m", "tools.walkthrough", name, "--check-only"],
        env=stack_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=220,
        check=False,
    )
    output = result.stdout + result.stderr
    print(output)
    assert kafka_up(chaos_stack), "Kafka was left stopped"
    assert faults_on() == [], "a fault flag was left on"
    assert result.returncode == 0, output
    assert result.stdout.rstrip().splitlines()[-1].startswith("PASS"), output
