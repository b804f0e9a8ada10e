"""The admin fault-injection screen: lists every participant command, sets a flag through the API, shows refusals on the row."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import Request
from fastapi.testclient import TestClient

from tests.unit.web.fakes import FakeGateway
from web.bootstrap import build_api
from web.config import Settings
from web.entrypoints import deps
from web.sessions import Session

LISTED = {
    "items": [{"service": "member", "command": "transfer-points", "mode": "fail", "delay_ms": 0}],
    "commands": {
        "member": ["transfer-points"],
        "qna": ["confirm-acceptance", "reserve-acceptance"],
        "board": ["anonymize-author"],
    },
}


def _client(gateway: FakeGateway, role: str) -> TestClient:
    app = build_api(Settings(REDIS_URL="redis://127.0.0.1:1/0"), gateway=gateway)
    who = Session(
        key="k", csrf="t", member_id="m-1", nickname="root", role=role, access_token="tok"
    )

    async def signed_in() -> Session:
        return who

    async def form_of(request: Request) -> dict[str, str]:
        return {k: v for k, v in (await request.form()).items() if isinstance(v, str)}

    app.dependency_overrides[deps.require_member] = signed_in
    app.dependency_overrides[deps.current_session] = signed_in
    app.dependency_overrides[deps.checked_form] = form_of
    return TestClient(app)


@pytest.fixture
def gateway() -> FakeGateway:
    return FakeGateway(routes={("GET", "/api/admin/faults"): (200, LISTED)})


@pytest.fixture
def admin(gateway: FakeGateway) -> Iterator[TestClient]:
    with _client(gateway, "ADMIN") as client:
        yield client


def test_every_command_is_listed_with_its_flag(admin: TestClient, gateway: FakeGateway) -> None:
    page = admin.get("/admin/faults", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    for command in (
        "transfer-points",
        "confirm-acceptance",
        "reserve-acceptance",
        "anonymize-author",
    ):
        assert f"<code>{command}</code>" in page.text
    assert "fails" in page.text  # member/transfer-points is on
    assert gateway.calls[0].token == "tok"


def test_setting_a_delay_calls_the_api_and_redirects(
    admin: TestClient, gateway: FakeGateway
) -> None:
    gateway.routes[("PUT", "/api/admin/faults/qna/confirm-acceptance")] = (200, {})
    done = admin.post(
        "/admin/faults",
        data={
            "service": "qna",
            "command": "confirm-acceptance",
            "mode": "delay",
            "delay_ms": "4000",
        },
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/admin/faults?applied=qna%2Fconfirm-acceptance"
    put = gateway.calls[-1]
    assert (put.method, put.json) == ("PUT", {"mode": "delay", "delay_ms": 4000})


def test_a_refusal_shows_on_the_row_not_as_a_problem_document(
    admin: TestClient, gateway: FakeGateway
) -> None:
    gateway.routes[("PUT", "/api/admin/faults/qna/confirm-acceptance")] = (
        422,
        {"status": 422, "detail": "mode 'delay' needs delay_ms > 0"},
    )
    page = admin.post(
        "/admin/faults",
        data={"service": "qna", "command": "confirm-acceptance", "mode": "fail"},
        headers={"Accept-Language": "en"},
    )
    assert page.status_code == 422
    assert page.headers["content-type"].startswith("text/html")
    assert "delay_ms &gt; 0" in page.text


def test_a_delay_without_a_number_is_refused_before_the_api(
    admin: TestClient, gateway: FakeGateway
) -> None:
    page = admin.post(
        "/admin/faults",
        data={"service": "qna", "command": "confirm-acceptance", "mode": "delay", "delay_ms": "x"},
        headers={"Accept-Language": "en"},
    )
    assert page.status_code == 422
    assert "Give the delay in milliseconds." in page.text
    assert all(call.method == "GET" for call in gateway.calls)


def test_fault_injection_off_is_said_plainly(gateway: FakeGateway) -> None:
    gateway.routes[("GET", "/api/admin/faults")] = (404, {"status": 404})
    with _client(gateway, "ADMIN") as client:
        page = client.get("/admin/faults", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    assert "FAULT_INJECTION=false" in page.text


def test_a_member_who_is_not_an_admin_gets_a_403_page(gateway: FakeGateway) -> None:
    with _client(gateway, "USER") as client:
        page = client.get("/admin/faults")
        refused = client.post(
            "/admin/faults", data={"service": "qna", "command": "x", "mode": "fail"}
        )
    assert page.status_code == 403
    assert refused.status_code == 403
    assert gateway.calls == []
