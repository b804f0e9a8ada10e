"""Unit tests of the Member aggregate, refresh tokens, point transfers and activity rules."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from member.domain import errors
from member.domain.activity import Item, MalformedEvent, items_for
from member.domain.events import (
    MemberProfileChanged,
    MemberRegistered,
    MemberWithdrawalCancelled,
    MemberWithdrawalStarted,
    MemberWithdrawn,
)
from member.domain.model import (
    SIGNUP_POINTS,
    Member,
    Role,
    Status,
    check_password_policy,
    normalize_email,
)
from member.domain.points import refund_points, transfer_points
from member.domain.sessions import RefreshToken, hash_token


def new_member(nickname: str = "alice", email: str = "alice@example.com") -> Member:
    member = Member.register(email=email, nickname=nickname, password_hash="h")
    member.pull_events()
    return member


def status(member: Member) -> Status:
    """Read the status afresh (mypy would otherwise keep its narrowed value across calls)."""
    return member.status


def test_registration_normalizes_and_grants_signup_points() -> None:
    member = Member.register(email="  Alice@Example.COM ", nickname="  앨리스 ", password_hash="h")

    assert member.email == "Alice@Example.COM"  # shown as typed, trimmed
    assert member.email_canonical == "alice@example.com"  # compared by text identity
    assert member.nickname == "앨리스"
    assert member.points == SIGNUP_POINTS == 100
    assert member.role is Role.USER
    assert member.status is Status.ACTIVE
    [event] = member.pull_events()
    assert isinstance(event, MemberRegistered)
    assert (event.member_id, event.nickname, event.role) == (member.id, "앨리스", "USER")
    assert event.profile_version == member.profile_version == 1
    assert member.pull_events() == []


@pytest.mark.parametrize(
    "email",
    [
        "plain",
        "a@b",
        "a@@example.com",
        "a b@example.com",
        "a@exam_ple.com",
        ".a@example.com",
        "a..b@example.com",
        "a@-example.com",
        "a@example.c",
        "a\n@example.com",
        f"{'a' * 65}@example.com",
        f"a@{'b' * 250}.com",
        "",
    ],
)
def test_malformed_emails_are_refused(email: str) -> None:
    with pytest.raises(errors.InvalidInput):
        normalize_email(email)


@pytest.mark.parametrize(
    "email", ["a@example.com", "first.last+tag@sub.example.co.kr", "X_Y-Z@Example.ORG"]
)
def test_wellformed_emails_are_accepted(email: str) -> None:
    assert normalize_email(email) == email


@pytest.mark.parametrize("nickname", ["a", " a ", "x" * 21, "", "bad\x00name", "탈퇴회원-abc"])
def test_nickname_rules(nickname: str) -> None:
    with pytest.raises(errors.InvalidInput):
        Member.register(email="a@example.com", nickname=nickname, password_hash="h")


@pytest.mark.parametrize("nickname", ["ab", "x" * 20, "한글닉네임"])
def test_nickname_bounds_accepted(nickname: str) -> None:
    assert Member.register(email="a@example.com", nickname=nickname, password_hash="h").nickname


@pytest.mark.parametrize("password", ["short7!", "x" * 129, "한" * 129])
def test_password_policy_refuses(password: str) -> None:
    with pytest.raises(errors.InvalidInput):
        check_password_policy(password)


@pytest.mark.parametrize("password", ["12345678", "x" * 128, "한" * 128])
def test_password_policy_accepts(password: str) -> None:
    check_password_policy(password)


def test_nickname_change_records_event_only_when_it_changes() -> None:
    member = new_member()
    member.change_nickname("alice")
    assert member.pull_events() == []

    member.change_nickname(" bob ")

    assert member.nickname == "bob"
    [event] = member.pull_events()
    assert isinstance(event, MemberProfileChanged)
    assert (event.nickname, event.profile_version) == ("bob", 2)
    member.change_nickname("carol")
    member.change_nickname("bob")  # a name used before still gets a new version
    assert [e.profile_version for e in member.pull_events()] == [3, 4]  # type: ignore[attr-defined]


def test_profile_is_frozen_outside_active() -> None:
    member = new_member()
    member.start_withdrawal("saga-1")
    with pytest.raises(errors.InvalidStateTransition):
        member.change_nickname("bob")
    with pytest.raises(errors.InvalidStateTransition):
        member.change_password_hash("other")


def test_withdrawal_life_cycle_erases_personal_data() -> None:
    member = new_member()
    member.start_withdrawal("saga-1")
    member.start_withdrawal("saga-1")  # a retried attempt of the same saga
    assert member.status is Status.WITHDRAWING
    with pytest.raises(errors.InvalidStateTransition):
        member.start_withdrawal("saga-2")

    assert member.complete_withdrawal("saga-1") is True

    assert status(member) is Status.WITHDRAWN
    assert member.email == f"withdrawn+{member.id.hex}@invalid"
    assert member.nickname.startswith("탈퇴회원-")
    assert len(member.nickname) <= 20
    assert member.password_hash is None
    # one started event however often step 1 is retried, then the pivot's
    assert [type(e) for e in member.pull_events()] == [MemberWithdrawalStarted, MemberWithdrawn]
    assert member.complete_withdrawal("saga-1") is False
    assert member.pull_events() == []


def test_cancel_only_undoes_its_own_saga() -> None:
    member = new_member()
    assert member.cancel_withdrawal("saga-1") is False  # nothing to undo
    member.start_withdrawal("saga-1")
    assert member.cancel_withdrawal("saga-other") is False
    assert member.status is Status.WITHDRAWING
    assert member.cancel_withdrawal("saga-1") is True
    assert status(member) is Status.ACTIVE
    events = member.pull_events()
    assert [type(e) for e in events] == [MemberWithdrawalStarted, MemberWithdrawalCancelled]
    assert {e.saga_id for e in events if isinstance(e, MemberWithdrawalCancelled)} == {"saga-1"}
    assert {e.key for e in events} == {str(member.id)}  # one partition: the order holds


def test_complete_needs_a_started_withdrawal() -> None:
    with pytest.raises(errors.InvalidStateTransition):
        new_member().complete_withdrawal("saga-1")


def test_points_never_go_negative() -> None:
    member = new_member()
    with pytest.raises(errors.InsufficientPoints):
        member.debit(101)
    with pytest.raises(errors.InvalidTransfer):
        member.debit(-1)
    with pytest.raises(errors.InvalidTransfer):
        member.credit(-1)
    member.debit(100)
    assert member.points == 0


def test_transfer_and_refund() -> None:
    asker, answerer = new_member("asker", "q@example.com"), new_member("answerer", "a@example.com")

    record, event = transfer_points(
        saga_id="s1", payer=asker, payee=answerer, amount=30, question_id="q1"
    )

    assert (asker.points, answerer.points) == (70, 130)
    assert (event.from_member_id, event.to_member_id, event.amount) == (asker.id, answerer.id, 30)
    refunded = refund_points(record, payer=asker, payee=answerer)
    assert refunded is not None
    assert refunded.amount == 30
    assert (asker.points, answerer.points) == (100, 100)
    assert refund_points(record, payer=asker, payee=answerer) is None
    assert (asker.points, answerer.points) == (100, 100)


def test_transfer_refusals() -> None:
    asker, answerer = new_member("asker", "q@example.com"), new_member("answerer", "a@example.com")
    with pytest.raises(errors.InsufficientPoints):
        transfer_points(saga_id="s", payer=asker, payee=answerer, amount=101, question_id="q")
    with pytest.raises(errors.InvalidTransfer):
        transfer_points(saga_id="s", payer=asker, payee=asker, amount=1, question_id="q")
    with pytest.raises(errors.InvalidTransfer):
        transfer_points(saga_id="s", payer=asker, payee=answerer, amount=-1, question_id="q")
    answerer.start_withdrawal("w")
    with pytest.raises(errors.InvalidStateTransition):
        transfer_points(saga_id="s", payer=asker, payee=answerer, amount=1, question_id="q")
    assert (asker.points, answerer.points) == (100, 100)


def test_refund_refused_when_the_points_were_spent() -> None:
    asker, answerer = new_member("asker", "q@example.com"), new_member("answerer", "a@example.com")
    record, _ = transfer_points(
        saga_id="s", payer=asker, payee=answerer, amount=50, question_id="q"
    )
    answerer.debit(140)
    with pytest.raises(errors.InsufficientPoints):
        refund_points(record, payer=asker, payee=answerer)
    assert not record.is_refunded


def test_refresh_token_stores_only_a_hash_and_rotates_in_family() -> None:
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    token, raw = RefreshToken.issue(uuid.uuid4(), ttl=dt.timedelta(days=14), now=now)
    assert token.token_hash == hash_token(raw) != raw
    assert len(raw) >= 43

    child, child_raw = token.rotate(ttl=dt.timedelta(days=14), now=now)

    assert token.was_used
    assert child.family_id == token.family_id
    assert child.parent_id == token.id
    assert child_raw != raw
    assert not child.is_expired(now)
    assert child.is_expired(now + dt.timedelta(days=14))


def test_activity_items_name_the_child_and_its_owner() -> None:
    author, child = uuid.uuid4(), uuid.uuid4()
    a, c = str(author), str(child)
    cases = {
        "PostCreated": ("posts", "post_id", True),
        "PostDeleted": ("posts", "post_id", False),
        "CommentAdded": ("comments", "comment_id", True),
        "CommentDeleted": ("comments", "comment_id", False),
        "QuestionAsked": ("questions", "question_id", True),
        "QuestionDeleted": ("questions", "question_id", False),
        "AnswerPosted": ("answers", "answer_id", True),
        "AnswerDeleted": ("answers", "answer_id", False),
    }
    for event_type, (counter, field, present) in cases.items():
        assert items_for(event_type, {field: c, "author_id": a}) == [
            Item(counter, c, author, present)
        ]
    assert items_for("AnswerAccepted", {"answer_id": c, "answer_author_id": a}) == [
        Item("accepted_answers", c, author, True)
    ]
    assert items_for("MemberRegistered", {"member_id": a}) == [
        Item("points", f"signup:{a}", author, True, 100)
    ]
    assert items_for("PostUpdated", {"post_id": c, "author_id": a}) == []
    # an anonymized author: the item is still known, its owner comes from another event
    assert items_for("PostDeleted", {"post_id": c, "author_id": None}) == [
        Item("posts", c, None, False)
    ]


def test_activity_points_are_one_pair_of_items_per_transfer() -> None:
    payer, payee = uuid.uuid4(), uuid.uuid4()
    body = {
        "saga_id": "s1",
        "from_member_id": str(payer),
        "to_member_id": str(payee),
        "amount": 40,
    }
    assert items_for("PointsTransferred", body) == [
        Item("points", "s1:payer", payer, True, -40),
        Item("points", "s1:payee", payee, True, 40),
    ]
    assert items_for("PointsRefunded", body) == [
        Item("points", "s1:payer", payer, False, -40),
        Item("points", "s1:payee", payee, False, 40),
    ]


@pytest.mark.parametrize(
    ("event_type", "data"),
    [
        ("PostCreated", {"post_id": str(uuid.uuid4()), "author_id": "not-a-uuid"}),
        ("PostCreated", {"author_id": str(uuid.uuid4())}),
        (
            "PointsTransferred",
            {"saga_id": "s", "from_member_id": str(uuid.uuid4()), "amount": "40"},
        ),
        ("PointsTransferred", {"from_member_id": str(uuid.uuid4()), "amount": 40}),
        ("PointsRefunded", {"saga_id": "s", "amount": True}),
    ],
)
def test_activity_malformed_events(event_type: str, data: dict[str, object]) -> None:
    with pytest.raises(MalformedEvent):
        items_for(event_type, data)
