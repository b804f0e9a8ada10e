"""The load generator's pure parts: the traffic mix, the pacing, the generated data, token refresh and retries.

None of these modules imports Locust (an import contract says so), so they are tested here
without gevent patching the test process.
"""

from __future__ import annotations

import importlib
import math
import random
import sys

import pytest

from loadgen import cli, data, mix, retry
from loadgen.pacing import Pacer
from loadgen.tokens import Refresh, Tokens

DEPLOYABLES = ("chassis", "member", "board", "qna", "saga", "gateway", "web")

# ------------------------------------------------------------------ traffic mix


def test_the_shares_add_up_and_readers_send_most_of_the_traffic() -> None:
    assert math.isclose(sum(mix.SHARES.values()), 1.0)
    assert mix.SHARES["reader"] == max(mix.SHARES.values())
    assert mix.SHARES["reader"] >= 0.5
    assert mix.SHARES["withdrawer"] == min(mix.SHARES.values())
    assert set(mix.SHARES) == {
        "reader",
        "poster",
        "commenter",
        "asker",
        "answerer",
        "accepter",
        "withdrawer",
    }


@pytest.mark.parametrize("rate", [0.5, 1, 5, 20, 99, 400])
def test_the_plan_sends_the_rate_split_by_the_shares(rate: float) -> None:
    plan = mix.plan(rate)

    assert set(plan) == set(mix.SHARES)
    assert math.isclose(sum(a.rate for a in plan.values()), rate)
    for persona, allocation in plan.items():
        assert math.isclose(allocation.rate, mix.SHARES[persona] * rate)
        assert allocation.users >= 1, "every kind of traffic shows, however low the rate"
        assert allocation.rate_per_user <= mix.MAX_RATE_PER_USER + 1e-9
    assert mix.total_users(plan) == sum(a.users for a in plan.values())


def test_a_busy_persona_gets_more_users_and_a_rare_one_stays_at_one() -> None:
    plan = mix.plan(100)

    assert plan["reader"].users == math.ceil(70 / mix.MAX_RATE_PER_USER)
    assert plan["withdrawer"].users == 1
    assert mix.plan(5)["reader"].users == 1


@pytest.mark.parametrize("rate", [0, -1, float("nan")])
def test_the_plan_refuses_a_rate_that_is_not_positive(rate: float) -> None:
    with pytest.raises(ValueError, match="rate"):
        mix.plan(rate)


def test_the_plan_refuses_shares_that_do_not_add_up() -> None:
    with pytest.raises(ValueError, match="add up"):
        mix.plan(5, {"reader": 0.5, "poster": 0.2})


# ------------------------------------------------------------------ pacing


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_pacer_books_one_interval_per_request() -> None:
    clock = Clock()
    pacer = Pacer(2.0, clock)  # 0.5 s per request

    pacer.spend(3)
    clock.now += 0.4  # the task took 0.4 s

    assert pacer.wait() == pytest.approx(1.1)


def test_the_pacer_holds_the_rate_over_many_tasks() -> None:
    clock, rng = Clock(), random.Random(7)
    pacer = Pacer(4.0, clock)
    start, sent = clock.now, 0
    for _ in range(200):
        requests = rng.randint(1, 5)
        pacer.spend(requests)
        sent += requests
        clock.now += rng.uniform(0, 0.05) * requests  # each request takes a little while
        clock.now += pacer.wait()

    assert sent / (clock.now - start) == pytest.approx(4.0, rel=0.02)


def test_a_user_that_fell_behind_does_not_burst_to_catch_up() -> None:
    clock = Clock()
    pacer = Pacer(1.0, clock)
    pacer.spend(1)
    clock.now += 10  # the stack was slow: ten intervals passed in one request

    pacer.spend(1)

    assert pacer.wait() == pytest.approx(1.0), "the schedule restarts from now"


def test_the_pacer_refuses_a_rate_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Pacer(0)


# ------------------------------------------------------------------ generated data


def test_identities_carry_the_prefix_and_fit_the_contract() -> None:
    rng = random.Random(1)
    people = [data.identity(rng) for _ in range(500)]

    assert len({p.email for p in people}) == len({p.nickname for p in people}) == 500
    for person in people:
        assert person.email.startswith("loadgen-")
        assert person.email.endswith("@example.com")
        assert person.nickname.startswith("loadgen-")
        assert 2 <= len(person.nickname) <= data.NICKNAME_MAX
        assert len(person.password) >= 8


def test_a_seeded_generator_repeats_itself() -> None:
    assert data.identity(random.Random(3)) == data.identity(random.Random(3))
    assert data.title(random.Random(3)) == data.title(random.Random(3))


def test_titles_and_text_fit_the_contract() -> None:
    rng = random.Random(2)
    for _ in range(200):
        assert 1 <= len(data.title(rng)) <= data.TITLE_MAX
        text = data.paragraph(rng, (1, 4))
        assert text.strip()
        assert len(text) <= 20_000
        assert data.search_term(rng)


def test_only_loadgen_content_counts_as_its_own() -> None:
    assert data.is_own("loadgen-1a2b3c4d")
    assert not data.is_own("admin")
    assert not data.is_own("탈퇴한 회원")
    assert not data.is_own(None)
    assert not data.is_own("someone-loadgen-")


def test_a_withdrawal_is_refused_for_anyone_the_generator_did_not_create() -> None:
    data.ensure_own(data.identity(random.Random(4)))
    for email, nickname in [
        ("admin@example.com", "admin"),
        ("loadgen-x@example.com", "admin"),
        ("person@example.com", "loadgen-x"),
    ]:
        with pytest.raises(ValueError, match="not created by the load generator"):
            data.ensure_own(data.Identity(email, nickname, "password1"))


@pytest.mark.parametrize(
    ("points", "open_questions", "top"),
    [(100, 1, data.BOUNTY_CAP), (100, 3, data.BOUNTY_CAP), (12, 3, 4), (2, 3, 0), (0, 1, 0)],
)
def test_a_bounty_is_one_the_asker_can_pay(points: int, open_questions: int, top: int) -> None:
    rng = random.Random(5)
    bounties = {data.bounty(rng, points, open_questions) for _ in range(300)}
    with_minimum = {data.bounty(rng, points, open_questions, minimum=1) for _ in range(300)}

    assert bounties == set(range(top + 1))
    assert with_minimum == (set(range(1, top + 1)) or {0})
    assert top * open_questions <= points


# ------------------------------------------------------------------ tokens


LOGIN = {"access_token": "a1", "refresh_token": "r1", "token_type": "bearer", "expires_in": 900}


def test_a_token_is_refreshed_a_margin_before_it_expires() -> None:
    tokens = Tokens.from_response(LOGIN, now=100.0)

    assert tokens.expires_at == 1000.0
    assert not tokens.due(100.0, margin=60)
    assert not tokens.due(939.9, margin=60)
    assert tokens.due(940.0, margin=60)
    assert tokens.due(2000.0, margin=60)
    assert tokens.header == {"Authorization": "Bearer a1"}


def test_a_refresh_replaces_both_tokens_and_the_expiry() -> None:
    tokens = Tokens.from_response(LOGIN, now=0.0)

    tokens.rotate({"access_token": "a2", "refresh_token": "r2", "expires_in": 900}, now=950.0)

    assert (tokens.access, tokens.refresh, tokens.expires_at) == ("a2", "r2", 1850.0)
    assert not tokens.due(950.0, margin=60)


def test_an_answer_that_is_not_a_token_pair_is_refused() -> None:
    with pytest.raises(KeyError):
        Tokens.from_response({"detail": "nope"}, now=0.0)


@pytest.mark.parametrize(
    ("status", "decision"),
    [
        (200, Refresh.ROTATE),
        (401, Refresh.LOG_IN),
        (403, Refresh.LOG_IN),
        (422, Refresh.LOG_IN),
        (429, Refresh.LATER),
        (503, Refresh.LATER),
        (0, Refresh.LATER),
    ],
)
def test_what_a_refresh_answer_leads_to(status: int, decision: str) -> None:
    assert Refresh.decide(status) == decision


# ------------------------------------------------------------------ retries


@pytest.mark.parametrize(
    ("status", "attempt", "again"),
    [
        (0, 1, True),
        (502, 1, True),
        (503, 2, True),
        (504, 3, False),
        (500, 1, False),
        (429, 1, False),
        (409, 1, False),
        (201, 1, False),
    ],
)
def test_only_transient_failures_are_retried_and_only_a_few_times(
    status: int, attempt: int, again: bool
) -> None:
    assert retry.should_retry(status, attempt) is again


def test_backoff_doubles_and_retry_after_is_bounded() -> None:
    assert [retry.backoff(n, base=0.5) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert retry.retry_after("7") == 7.0
    assert retry.retry_after("3600") == retry.MAX_RETRY_AFTER_SECONDS
    assert retry.retry_after("-2") == 0.0
    assert retry.retry_after(None, default=1.5) == 1.5
    assert retry.retry_after("Wed, 21 Oct 2015 07:28:00 GMT", default=2.0) == 2.0


# ------------------------------------------------------------------ the launcher


def test_the_launcher_runs_locust_headless_at_the_rate_and_passes_other_flags() -> None:
    argv = cli.locust_argv(["--rate", "12", "--run-time", "10s", "--csv", "out"], environ={})

    assert argv[:3] == [sys.executable, "-m", "locust"]
    assert argv[argv.index("-f") + 1] == str(cli.LOCUSTFILE)
    assert cli.LOCUSTFILE.is_file()
    assert "--headless" in argv
    assert argv[argv.index("--host") + 1] == cli.DEFAULT_GATEWAY_URL
    assert argv[argv.index("--rate") + 1] == "12.0"
    assert argv[-4:] == ["--run-time", "10s", "--csv", "out"]


def test_the_launcher_reads_the_gateway_and_rate_from_the_environment() -> None:
    argv = cli.locust_argv([], environ={"GATEWAY_URL": "http://gw:8000", "LOADGEN_RATE": "3"})

    assert argv[argv.index("--host") + 1] == "http://gw:8000"
    assert argv[argv.index("--rate") + 1] == "3.0"


def test_the_launcher_refuses_a_rate_that_is_not_positive() -> None:
    with pytest.raises(SystemExit):
        cli.locust_argv(["--rate", "0"], environ={})


def test_importing_the_services_and_the_pure_parts_loads_neither_locust_nor_gevent() -> None:
    """Locust shares the development virtualenv with the services: importing any deployable's
    CLI (and so all its processes) or the generator's pure modules must load neither Locust nor
    gevent, not even through a third-party library (which the import contracts do not follow).
    In this process, which runs the rest of the suite too, gevent would patch the tests' I/O."""
    for module in (
        *(f"{deployable}.cli" for deployable in DEPLOYABLES),
        "loadgen.cli",
        "loadgen.mix",
        "loadgen.pacing",
        "loadgen.data",
        "loadgen.tokens",
        "loadgen.retry",
    ):
        importlib.import_module(module)

    assert not {"gevent", "locust", "geventhttpclient"} & set(sys.modules)
