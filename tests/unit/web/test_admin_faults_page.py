"""The admin fault-injection screen: lists every participant command, sets a flag through the API, shows refusals on the row."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.unit.web.fakes import World, csrf_of, csrf_of_form, log_in, member_body, ok, problem

EN = {"Accept-Language": "en"}
LISTED: dict[str, Any] = {
    "items": [{"service": "member", "command": "transfer-points", "mode": "fail", "delay_ms": 0}],
    "commands": {
        "member": ["transfer-points"],
        "qna": ["confirm-acceptance", "reserve-acceptance"],
        "board": ["anonymize-author"],
    },
}


@pytest.fixture
def world() -> World:
    found = World()
    found.me = member_body("root", role="ADMIN")
    found.gateway.on("GET /api/admin/faults", ok(LISTED))
    return found


@pytest.fixture
def admin(world: World) -> Iterator[TestClient]:
    with TestClient(world.app, base_url="http://web.test", headers=EN) as client:
        log_in(client)
        yield client


def _set(client: TestClient, **fields: str) -> httpx.Response:
    # the token of the row's own form, as the browser would send it
    row = f'name="command" value="{fields.get("command", "")}"'
    token = csrf_of_form(client.get("/admin/faults").text, "/admin/faults", containing=row)
    answer: httpx.Response = client.post(
        "/admin/faults", data={"csrf_token": token, **fields}, follow_redirects=False
    )
    return answer


def test_every_command_is_listed_with_its_flag(admin: TestClient, world: World) -> None:
    page = admin.get("/admin/faults")
    assert page.status_code == 200
    for command in LISTED["commands"]["qna"] + ["transfer-points", "anonymize-author"]:
        assert f"<code>{command}</code>" in page.text
    assert "fails" in page.text  # member/transfer-points is on
    assert world.gateway.called("GET /api/admin/faults")[-1].token is not None


def test_setting_a_delay_calls_the_api_and_redirects(admin: TestClient, world: World) -> None:
    world.gateway.on("PUT /api/admin/faults/qna/confirm-acceptance", ok({}))
    done = _set(admin, service="qna", command="confirm-acceptance", mode="delay", delay_ms="4000")
    assert done.status_code == 303
    assert done.headers["location"] == "/admin/faults?applied=qna%2Fconfirm-acceptance"
    put = world.gateway.called("PUT /api/admin/faults/qna/confirm-acceptance")[-1]
    assert put.json == {"mode": "delay", "delay_ms": 4000}


def test_a_refusal_shows_on_the_row_not_as_a_problem_document(
    admin: TestClient, world: World
) -> None:
    world.gateway.on(
        "PUT /api/admin/faults/qna/confirm-acceptance",
        problem(422, "mode 'delay' needs delay_ms > 0"),
    )
    page = _set(admin, service="qna", command="confirm-acceptance", mode="fail")
    assert page.status_code == 422
    assert page.headers["content-type"].startswith("text/html")
    assert page.text.count("delay_ms &gt; 0") == 1  # on the row, not above the table too


def test_a_delay_without_a_number_is_refused_before_the_api(
    admin: TestClient, world: World
) -> None:
    page = _set(admin, service="qna", command="confirm-acceptance", mode="delay", delay_ms="x")
    assert page.status_code == 422
    assert "Give the delay in milliseconds." in page.text
    assert not [call for call in world.gateway.calls if call.method == "PUT"]


def test_fault_injection_off_is_said_plainly(admin: TestClient, world: World) -> None:
    world.gateway.on("GET /api/admin/faults", problem(404, "not found"))
    page = admin.get("/admin/faults")
    assert page.status_code == 200
    assert "FAULT_INJECTION=false" in page.text


def test_a_member_who_is_not_an_admin_gets_a_403_page() -> None:
    world = World()
    world.gateway.on("GET /api/admin/faults", ok(LISTED))
    with TestClient(world.app, base_url="http://web.test", headers=EN) as client:
        log_in(client)
        token = csrf_of(client.get("/account").text)
        page = client.get("/admin/faults")
        refused = client.post(
            "/admin/faults",
            data={"csrf_token": token, "service": "qna", "command": "x", "mode": "fail"},
        )
    assert page.status_code == 403
    assert refused.status_code == 403
    assert not world.gateway.called("GET /api/admin/faults")
    assert not [call for call in world.gateway.calls if call.method == "PUT"]


@pytest.mark.parametrize("typed", ["²", "٣٠٠", "1_000", "-5", "1e3", " "])
def test_a_delay_that_is_not_ascii_digits_is_a_field_error_not_a_500(
    admin: TestClient, world: World, typed: str
) -> None:
    # "²".isdigit() is True and int("²") raises: the page must not trust isdigit()
    page = _set(admin, service="qna", command="confirm-acceptance", mode="delay", delay_ms=typed)
    assert page.status_code == 422
    assert "Give the delay in milliseconds." in page.text
    assert not [call for call in world.gateway.calls if call.method == "PUT"]


def test_a_refusal_for_a_command_not_listed_is_said_above_the_table(
    admin: TestClient, world: World
) -> None:
    world.gateway.on(
        "PUT /api/admin/faults/mail/send",
        problem(422, "service must be one of member, board, qna"),
    )
    page = admin.post(
        "/admin/faults",
        data={
            "csrf_token": csrf_of_form(admin.get("/admin/faults").text, "/admin/faults"),
            "service": "mail",
            "command": "send",
            "mode": "fail",
        },
    )
    assert page.status_code == 422
    assert page.text.count("The service must be one of: member, board, qna.") == 1
