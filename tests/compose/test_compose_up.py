"""docker-compose.yml brought up whole with Compose v2, and the golden journey through its gateway.

The compose file is used as a developer uses it, from the images ``make images`` builds:
``up -d`` with a project name of its own (``msa-compose-test-<hash of the checkout's path>``,
so two checkouts can run it at once), the gateway published on
``GATEWAY_PORT`` (8000, or a free port when 8000 is taken), then, through the gateway only,
the golden journey: two sign-ups and logins, a post and a comment, a question with a bounty,
an answer, the answer-acceptance saga to COMPLETED (bounty moved: 70 and 130 points), and
the member-withdrawal saga to COMPLETED (the member can no longer log in). ``down -v``
always follows, whatever happened, a second Ctrl-C included. It prints the bring-up time (``up`` until the gateway is
ready) and the journey's.

With podman the harness of tests/compose/stack.py stands in for what podman 4.3 lacks (a
Docker-compatible daemon, a healthcheck scheduler, ``start_interval``); where no registry
answers, the infrastructure runs on the stand-ins of deploy/compose (docs/deploy.md says
what that leaves uncovered).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy.images.engine import Engine
from tests.compose.stack import (
    COMPOSE_FILE,
    Compose,
    HealthcheckScheduler,
    ShieldedExitStack,
    compose_env,
    compose_healthchecks,
    compose_project,
    free_port,
    podman_service,
    write_podman_override,
)

#: Images, stand-ins, bring-up, journey and down: far beyond the suite's 300 s per test.
pytestmark = [pytest.mark.compose, pytest.mark.timeout(3000)]

PROJECT = compose_project()
#: ``up -d`` waits for every dependency to be healthy; on two busy cores that takes minutes.
UP_TIMEOUT_SECONDS = 900
GATEWAY_READY_SECONDS = 180
SAGA_SECONDS = 120
#: The admin account member-migrate seeds (docker-compose.yml's defaults).
ADMIN = {"email": "admin@example.com", "password": "admin-dev-password"}


def test_docker_compose_up_serves_the_golden_journey(
    compose_engine: Engine, compose_binary: str, compose_images: dict[str, str]
) -> None:
    port = free_port(8000)
    # Unwound with SIGINT ignored: down -v, the healthcheck thread and the podman service
    # stop even when Ctrl-C comes twice (ShieldedExitStack).
    with ShieldedExitStack() as stack:
        files = [COMPOSE_FILE]
        docker_host = None
        if compose_engine.name == "podman":
            docker_host = stack.enter_context(podman_service(compose_engine))
            files.append(write_podman_override())
        compose = Compose(
            Path(compose_binary), PROJECT, compose_env(docker_host, compose_images, port), files
        )
        # Whatever an interrupted earlier run of this checkout left behind (this project only).
        compose.down(timeout=10)
        if compose_engine.name == "podman":
            stack.enter_context(
                HealthcheckScheduler(compose_engine, PROJECT, compose_healthchecks())
            )
        left: list[str] = []
        stack.callback(down_and_list_leftovers, compose, left)
        started = time.monotonic()
        try:
            compose.run(
                "up", "--detach", "--no-build", "--pull", "never", timeout=UP_TIMEOUT_SECONDS
            )
            base = f"http://127.0.0.1:{port}"
            wait_ready(f"{base}/readyz", GATEWAY_READY_SECONDS)
        except Exception as error:
            raise AssertionError(f"{error}\n{compose.diagnostics()}") from error
        bring_up = time.monotonic() - started
        print(f"\ncompose: bring-up {bring_up:.1f}s (up -d until the gateway on :{port} is ready)")

        started = time.monotonic()
        try:
            golden_journey(base)
        except Exception as error:
            raise AssertionError(f"{error}\n{compose.diagnostics()}") from error
        print(f"compose: golden journey {time.monotonic() - started:.1f}s")
    assert not left, f"containers left after down -v: {left}"


def down_and_list_leftovers(compose: Compose, left: list[str]) -> None:
    """``down -v``, then whatever ``ps --all`` still lists of the project into ``left`` (while
    the engine still answers: the podman service stops later in the unwinding)."""
    started = time.monotonic()
    compose.down(timeout=30)
    print(f"compose: down -v {time.monotonic() - started:.1f}s")
    done = compose.run("ps", "--all", "--quiet", check=False, timeout=120, shielded=True)
    if done.returncode != 0:
        left.append(f"ps --all exited {done.returncode}: {done.stderr[-2000:]}")
    left += done.stdout.split()


def wait_ready(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=5)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:300]}"
        except httpx.HTTPError as error:
            last = repr(error)
        time.sleep(1)
    raise AssertionError(f"{url} not ready after {timeout:.0f}s: {last}")


# ------------------------------------------------------------------ the golden journey


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url}: {response.status_code} {response.text}"
    )
    return response.json() if response.content else None


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def log_in(http: httpx.Client, email: str, password: str) -> str:
    token: str = ok(http.post("/api/auth/login", json={"email": email, "password": password}))[
        "access_token"
    ]
    return token


def sign_up(http: httpx.Client) -> tuple[str, str, str]:
    """A new member through the gateway: (id, email, access token)."""
    suffix = uuid.uuid4().hex[:10]
    email = f"c{suffix}@example.com"
    body = {"email": email, "password": "password-123", "nickname": f"c{suffix}"}
    member = ok(http.post("/api/members", json=body), 201)
    return member["id"], email, log_in(http, email, "password-123")


def wait_saga(http: httpx.Client, saga_id: str, admin: str) -> dict[str, Any]:
    """Poll the saga (as the admin: a withdrawn member's token is refused) until it ends."""
    deadline = time.monotonic() + SAGA_SECONDS
    while True:
        saga: dict[str, Any] = ok(http.get(f"/api/sagas/{saga_id}", headers=bearer(admin)))
        if saga["status"] in ("COMPLETED", "COMPENSATED", "FAILED"):
            return saga
        assert time.monotonic() < deadline, f"saga still {saga['status']}: {saga}"
        time.sleep(0.5)


def golden_journey(base: str) -> None:
    with httpx.Client(base_url=base, timeout=30) as http:
        admin = log_in(http, ADMIN["email"], ADMIN["password"])
        asker_id, _, asker = sign_up(http)
        answerer_id, answerer_email, answerer = sign_up(http)

        boards = ok(http.get("/api/boards"))
        free = next(b for b in boards if b["slug"] == "free")
        post = ok(
            http.post(
                f"/api/boards/{free['id']}/posts",
                json={"title": "compose", "content": "a post through the gateway"},
                headers=bearer(asker),
            ),
            201,
        )
        ok(
            http.post(
                f"/api/posts/{post['id']}/comments",
                json={"content": "a comment"},
                headers=bearer(answerer),
            ),
            201,
        )

        question = ok(
            http.post(
                "/api/questions",
                json={"title": "a question", "content": "why?", "bounty": 30},
                headers=bearer(asker),
            ),
            201,
        )
        answer = ok(
            http.post(
                f"/api/questions/{question['id']}/answers",
                json={"content": "because"},
                headers=bearer(answerer),
            ),
            201,
        )
        started = ok(
            http.post(
                f"/api/questions/{question['id']}/answers/{answer['id']}/accept",
                headers=bearer(asker),
            ),
            202,
        )
        saga = wait_saga(http, started["saga_id"], admin)
        assert saga["status"] == "COMPLETED", saga
        assert saga["type"] == "answer-acceptance"
        resolved = ok(http.get(f"/api/questions/{question['id']}"))
        assert resolved["status"] == "RESOLVED"
        assert resolved["accepted_answer_id"] == answer["id"]
        me = ok(http.get("/api/members/me", headers=bearer(asker)))
        assert (me["id"], me["points"]) == (asker_id, 70)
        me = ok(http.get("/api/members/me", headers=bearer(answerer)))
        assert (me["id"], me["points"]) == (answerer_id, 130)

        started = ok(http.delete("/api/members/me", headers=bearer(answerer)), 202)
        saga = wait_saga(http, started["saga_id"], admin)
        assert saga["status"] == "COMPLETED", saga
        assert saga["type"] == "member-withdrawal"
        refused = http.post(
            "/api/auth/login", json={"email": answerer_email, "password": "password-123"}
        )
        assert refused.status_code == 401, refused.text
