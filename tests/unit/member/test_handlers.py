"""Unit tests of the member use cases with in-memory fakes of the ports."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import cast

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.messaging.envelope import Envelope
from chassis.messaging.failures import Failure, PermanentFailure, classify
from member.domain import commands, errors
from member.domain.model import Member, Status
from member.domain.sessions import hash_token
from member.service_layer import handlers, projector, saga_steps
from member.service_layer.projector import READ_MODEL
from tests.unit.member.fakes import (
    FakeDenyList,
    FakeMembers,
    FakePasswords,
    FakeThrottle,
    FakeTokens,
    FakeUnitOfWork,
)

TTL = dt.timedelta(days=14)
PASSWORD = "password-1"


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork()


@pytest.fixture
def passwords() -> FakePasswords:
    return FakePasswords()


async def sign_up(
    uow: FakeUnitOfWork,
    passwords: FakePasswords,
    email: str = "alice@example.com",
    nickname: str = "alice",
    password: str = PASSWORD,
) -> uuid.UUID:
    return await handlers.register(
        commands.RegisterMember(email=email, password=password, nickname=nickname), uow, passwords
    )


async def log_in(
    uow: FakeUnitOfWork,
    passwords: FakePasswords,
    throttle: FakeThrottle | None = None,
    email: str = "alice@example.com",
    password: str = PASSWORD,
) -> handlers.TokenPair:
    return await handlers.log_in(
        commands.LogIn(email=email, password=password),
        uow,
        passwords=passwords,
        tokens=FakeTokens(),
        throttle=throttle or FakeThrottle(),
        refresh_ttl=TTL,
    )


def member(uow: FakeUnitOfWork, member_id: uuid.UUID) -> Member:
    return uow.store.members[member_id]


# --- sign-up and profile ---------------------------------------------------------------------


async def test_sign_up_stores_member_and_publishes_registration(
    uow: FakeUnitOfWork, passwords: FakePasswords
) -> None:
    member_id = await sign_up(uow, passwords, email="Alice@Example.com")

    stored = member(uow, member_id)
    assert (stored.email, stored.email_canonical) == ("Alice@Example.com", "alice@example.com")
    assert stored.password_hash == "hashed:password-1"
    [body] = uow.events("MemberRegistered")
    assert body["member_id"] == str(member_id)
    assert (body["nickname"], body["role"], body["profile_version"]) == ("alice", "USER", 1)
    assert set(body) == {"member_id", "nickname", "role", "profile_version", "occurred_at"}


async def test_duplicates_are_case_insensitive(
    uow: FakeUnitOfWork, passwords: FakePasswords
) -> None:
    await sign_up(uow, passwords)
    with pytest.raises(errors.DuplicateEmail):
        await sign_up(uow, passwords, email="ALICE@example.com", nickname="other")
    with pytest.raises(errors.DuplicateNickname):
        await sign_up(uow, passwords, email="other@example.com", nickname="ALICE")
    assert len(uow.store.members) == 1
    assert len(uow.events()) == 1


async def test_sign_up_with_idempotency_key_returns_the_first_member(
    uow: FakeUnitOfWork, passwords: FakePasswords
) -> None:
    cmd = commands.RegisterMember(email="a@example.com", password="password-1", nickname="ann")
    first = await handlers.register(cmd, uow, passwords, idempotency_key="k1")
    again = await handlers.register(cmd, uow, passwords, idempotency_key="k1")

    assert again == first
    assert len(uow.store.members) == 1


async def test_huge_password_is_refused_before_hashing(uow: FakeUnitOfWork) -> None:
    class CountingPasswords(FakePasswords):
        hashed = 0

        async def hash(self, password: str) -> str:
            self.hashed += 1
            return await super().hash(password)

    passwords = CountingPasswords()
    with pytest.raises(errors.InvalidInput):
        await sign_up(uow, passwords, password="x" * 100_000)
    assert passwords.hashed == 0
    assert uow.store.members == {}


async def test_nickname_change_publishes_profile_changed(
    uow: FakeUnitOfWork, passwords: FakePasswords
) -> None:
    member_id = await sign_up(uow, passwords)
    await sign_up(uow, passwords, email="bob@example.com", nickname="bob")

    await handlers.change_profile(
        commands.ChangeProfile(member_id=member_id, nickname="alicia"),
        uow,
        passwords,
        throttle=FakeThrottle(),
    )
    with pytest.raises(errors.DuplicateNickname):
        await handlers.change_profile(
            commands.ChangeProfile(member_id=member_id, nickname="BOB"),
            uow,
            passwords,
            throttle=FakeThrottle(),
        )

    assert member(uow, member_id).nickname == "alicia"
    assert uow.events("MemberProfileChanged") == [
        {
            "member_id": str(member_id),
            "nickname": "alicia",
            "profile_version": 2,
            "occurred_at": uow.events("MemberProfileChanged")[0]["occurred_at"],
        }
    ]


async def test_password_change_needs_the_current_password(
    uow: FakeUnitOfWork, passwords: FakePasswords
) -> None:
    member_id = await sign_up(uow, passwords)
    pair = await log_in(uow, passwords)

    with pytest.raises(errors.CurrentPasswordRequired):
        await handlers.change_profile(
            commands.ChangeProfile(member_id=member_id, password="new-password"),
            uow,
            passwords,
            throttle=FakeThrottle(),
        )
    with pytest.raises(errors.WrongCurrentPassword):
        await handlers.change_profile(
            commands.ChangeProfile(
                member_id=member_id, password="new-password", current_password="wrong-pass"
            ),
            uow,
            passwords,
            throttle=FakeThrottle(),
        )
    assert member(uow, member_id).password_hash == "hashed:password-1"

    await handlers.change_profile(
        commands.ChangeProfile(
            member_id=member_id, password="new-password", current_password="password-1"
        ),
        uow,
        passwords,
        throttle=FakeThrottle(),
    )

    assert member(uow, member_id).password_hash == "hashed:new-password"
    with pytest.raises(errors.InvalidRefreshToken):  # other sessions ended with the old password
        await handlers.refresh(
            commands.RefreshSession(pair.refresh_token), uow, tokens=FakeTokens(), refresh_ttl=TTL
        )


async def test_current_password_checks_are_reserved_per_member_before_the_hash_check(
    uow: FakeUnitOfWork, passwords: FakePasswords
) -> None:
    """Brute force through a stolen access token: past the limit a ``current_password`` is
    refused (429) without a hash check, and the right one clears the count."""
    member_id = await sign_up(uow, passwords)
    throttle = FakeThrottle(limit=3)

    async def change(current: str) -> None:
        await handlers.change_profile(
            commands.ChangeProfile(
                member_id=member_id, password="new-password", current_password=current
            ),
            uow,
            passwords,
            throttle=throttle,
        )

    await change("password-1")
    assert throttle.attempts == {}
    for _ in range(3):
        with pytest.raises(errors.WrongCurrentPassword):
            await change("wrong-pass")
    checks = len(passwords.verified)
    with pytest.raises(errors.LoginLocked) as locked:
        await change("new-password")  # even the right one
    assert locked.value.retry_after == 60
    assert len(passwords.verified) == checks
    assert throttle.attempts == {str(member_id): 4}


async def test_an_attempt_that_never_reached_the_check_is_handed_back(
    uow: FakeUnitOfWork, passwords: FakePasswords, monkeypatch: pytest.MonkeyPatch
) -> None:
    await sign_up(uow, passwords)
    throttle = FakeThrottle()

    async def unavailable(*_: object) -> None:
        raise ConnectionError("database unavailable")

    monkeypatch.setattr(FakeMembers, "get_by_email", unavailable)
    with pytest.raises(ConnectionError):
        await log_in(uow, passwords, throttle)
    assert throttle.attempts == {"alice@example.com": 0}
    assert passwords.verified == []


async def test_seed_admin_is_idempotent(uow: FakeUnitOfWork, passwords: FakePasswords) -> None:
    first = await handlers.seed_admin(
        uow, passwords, email="Admin@Example.com", password="admin-pass", nickname="admin"
    )
    second = await handlers.seed_admin(
        uow, passwords, email="admin@example.com", password="admin-pass", nickname="admin"
    )

    assert first is not None
    assert second is None
    assert member(uow, first).role == "ADMIN"
    assert len(uow.events("MemberRegistered")) == 1


# --- sessions --------------------------------------------------------------------------------


async def test_login_issues_tokens_and_stores_only_the_hash(
    uow: FakeUnitOfWork, passwords: FakePasswords
) -> None:
    await sign_up(uow, passwords)

    pair = await log_in(uow, passwords, email=" ALICE@example.com ")

    [stored] = uow.store.tokens.values()
    assert stored.token_hash == hash_token(pair.refresh_token)
    assert pair.refresh_token not in {stored.token_hash, str(stored.id)}
    assert pair.expires_in == 900
    assert pair.token_type == "bearer"


async def test_login_failures_lock_the_email_before_the_password_is_checked(
    uow: FakeUnitOfWork, passwords: FakePasswords
) -> None:
    await sign_up(uow, passwords)
    throttle = FakeThrottle(limit=5)
    for _ in range(5):
        with pytest.raises(errors.InvalidCredentials):
            await log_in(uow, passwords, throttle, password="wrong-password")
    checks = len(passwords.verified)

    with pytest.raises(errors.LoginLocked) as locked:
        await log_in(uow, passwords, throttle)  # even the right password

    assert locked.value.retry_after == 60
    assert len(passwords.verified) == checks


async def test_successful_login_resets_failures(
    uow: FakeUnitOfWork, passwords: FakePasswords
) -> None:
    await sign_up(uow, passwords)
    throttle = FakeThrottle()
    with pytest.raises(errors.InvalidCredentials):
        await log_in(uow, passwords, throttle, password="wrong-password")
    await log_in(uow, passwords, throttle)
    assert throttle.attempts == {}


async def test_unknown_email_still_runs_a_password_check(
    uow: FakeUnitOfWork, passwords: FakePasswords
) -> None:
    throttle = FakeThrottle()
    with pytest.raises(errors.InvalidCredentials):
        await log_in(uow, passwords, throttle, email="ghost@example.com")
    assert passwords.verified == [None]
    assert throttle.attempts == {"ghost@example.com": 1}


async def test_login_refused_while_withdrawing(
    uow: FakeUnitOfWork, passwords: FakePasswords
) -> None:
    member_id = await sign_up(uow, passwords)
    member(uow, member_id).start_withdrawal("saga")
    with pytest.raises(errors.AccountNotActive):
        await log_in(uow, passwords)


async def test_login_rehashes_outdated_hashes(
    uow: FakeUnitOfWork, passwords: FakePasswords
) -> None:
    member_id = await sign_up(uow, passwords)
    member(uow, member_id).password_hash = "old-format"
    passwords.outdated.add("old-format")

    class AcceptOld(FakePasswords):
        async def verify(self, password_hash: str | None, password: str) -> bool:
            return password_hash == "old-format"

    upgrading = AcceptOld()
    upgrading.outdated = passwords.outdated
    await log_in(uow, upgrading)
    assert member(uow, member_id).password_hash == "hashed:password-1"


async def test_refresh_rotates_and_reuse_revokes_the_family(
    uow: FakeUnitOfWork, passwords: FakePasswords
) -> None:
    await sign_up(uow, passwords)
    first = await log_in(uow, passwords)

    async def refresh(raw: str) -> handlers.TokenPair:
        return await handlers.refresh(
            commands.RefreshSession(raw), uow, tokens=FakeTokens(), refresh_ttl=TTL
        )

    second = await refresh(first.refresh_token)
    assert second.refresh_token != first.refresh_token

    with pytest.raises(errors.InvalidRefreshToken):
        await refresh(first.refresh_token)  # replayed: the family is revoked
    with pytest.raises(errors.InvalidRefreshToken):
        await refresh(second.refresh_token)  # so the legitimate successor dies too
    assert all(t.revoked_at is not None for t in uow.store.tokens.values())


async def test_refresh_refuses_expired_and_inactive(
    uow: FakeUnitOfWork, passwords: FakePasswords
) -> None:
    member_id = await sign_up(uow, passwords)
    pair = await log_in(uow, passwords)
    later = dt.datetime.now(dt.UTC) + TTL + dt.timedelta(seconds=1)
    with pytest.raises(errors.InvalidRefreshToken):
        await handlers.refresh(
            commands.RefreshSession(pair.refresh_token),
            uow,
            tokens=FakeTokens(),
            refresh_ttl=TTL,
            now=later,
        )
    member(uow, member_id).start_withdrawal("saga")
    with pytest.raises(errors.InvalidRefreshToken):
        await handlers.refresh(
            commands.RefreshSession(pair.refresh_token), uow, tokens=FakeTokens(), refresh_ttl=TTL
        )
    [token] = uow.store.tokens.values()
    assert token.used_at is None  # refused without being used up


async def test_logout_revokes_and_is_repeatable(
    uow: FakeUnitOfWork, passwords: FakePasswords
) -> None:
    await sign_up(uow, passwords)
    pair = await log_in(uow, passwords)

    await handlers.log_out(commands.LogOut(pair.refresh_token), uow)
    await handlers.log_out(commands.LogOut(pair.refresh_token), uow)
    await handlers.log_out(commands.LogOut("never-issued"), uow)

    with pytest.raises(errors.InvalidRefreshToken):
        await handlers.refresh(
            commands.RefreshSession(pair.refresh_token), uow, tokens=FakeTokens(), refresh_ttl=TTL
        )


# --- saga participant ------------------------------------------------------------------------


async def two_members(uow: FakeUnitOfWork, passwords: FakePasswords) -> tuple[uuid.UUID, uuid.UUID]:
    asker = await sign_up(uow, passwords, email="asker@example.com", nickname="asker")
    answerer = await sign_up(uow, passwords, email="answerer@example.com", nickname="answerer")
    return asker, answerer


async def test_transfer_moves_points_once_per_saga(
    uow: FakeUnitOfWork, passwords: FakePasswords
) -> None:
    asker, answerer = await two_members(uow, passwords)
    cmd = commands.TransferPoints("saga-1", asker, answerer, 30, "q-1")

    for _ in range(2):  # a retried attempt of the same saga
        async with uow:
            assert await saga_steps.transfer(uow, cmd) == {"transferred": 30}
            await uow.commit()

    assert (member(uow, asker).points, member(uow, answerer).points) == (70, 130)
    [event] = uow.events("PointsTransferred")
    assert event["saga_id"] == "saga-1"
    assert (event["from_member_id"], event["to_member_id"]) == (str(asker), str(answerer))
    assert (event["amount"], event["question_id"]) == (30, "q-1")


async def test_transfer_refusals_change_nothing(
    uow: FakeUnitOfWork, passwords: FakePasswords
) -> None:
    asker, answerer = await two_members(uow, passwords)
    refusals: list[tuple[commands.TransferPoints, type[errors.MemberError]]] = [
        (commands.TransferPoints("s1", asker, answerer, 101, "q"), errors.InsufficientPoints),
        (commands.TransferPoints("s2", asker, answerer, -1, "q"), errors.InvalidTransfer),
        (commands.TransferPoints("s3", asker, uuid.uuid4(), 1, "q"), errors.MemberNotFound),
    ]
    for cmd, error in refusals:
        async with uow:
            with pytest.raises(error):
                await saga_steps.transfer(uow, cmd)
    member(uow, answerer).start_withdrawal("w")
    async with uow:
        with pytest.raises(errors.InvalidStateTransition):
            await saga_steps.transfer(uow, commands.TransferPoints("s4", asker, answerer, 1, "q"))

    assert member(uow, asker).points == 100
    assert uow.store.transfers == {}


async def test_zero_transfer_is_a_noop(uow: FakeUnitOfWork, passwords: FakePasswords) -> None:
    asker, answerer = await two_members(uow, passwords)
    async with uow:
        result = await saga_steps.transfer(
            uow, commands.TransferPoints("s", asker, answerer, 0, "q")
        )
        await uow.commit()
    assert result == {"transferred": 0}
    assert uow.events("PointsTransferred") == []


async def test_refund_undoes_exactly_its_saga(
    uow: FakeUnitOfWork, passwords: FakePasswords
) -> None:
    asker, answerer = await two_members(uow, passwords)
    async with uow:
        await saga_steps.transfer(uow, commands.TransferPoints("s1", asker, answerer, 30, "q"))
        await saga_steps.transfer(uow, commands.TransferPoints("s2", asker, answerer, 20, "q"))
        await uow.commit()

    for _ in range(2):
        async with uow:
            result = await saga_steps.refund(
                uow, commands.RefundPoints("s1", asker, answerer, 30, "q")
            )
            await uow.commit()
        assert result == {"refunded": 30}
    async with uow:
        nothing = await saga_steps.refund(
            uow, commands.RefundPoints("never-transferred", asker, answerer, 30, "q")
        )

    assert nothing == {"refunded": 0}
    assert (member(uow, asker).points, member(uow, answerer).points) == (80, 120)
    assert len(uow.events("PointsRefunded")) == 1


async def test_withdrawal_steps(uow: FakeUnitOfWork, passwords: FakePasswords) -> None:
    member_id = await sign_up(uow, passwords)
    await log_in(uow, passwords)

    async with uow:
        await saga_steps.start_withdrawal(uow, commands.StartWithdrawal("w1", member_id))
        await uow.commit()
    assert member(uow, member_id).status is Status.WITHDRAWING
    async with uow:
        with pytest.raises(errors.InvalidStateTransition):
            await saga_steps.start_withdrawal(uow, commands.StartWithdrawal("w2", member_id))
    deny_list = FakeDenyList()
    async with uow:
        complete = commands.CompleteWithdrawal("w1", member_id)
        await saga_steps.complete_withdrawal(uow, complete, deny_list)
        await saga_steps.complete_withdrawal(uow, complete, deny_list)
        await uow.commit()

    withdrawn = member(uow, member_id)
    assert withdrawn.status is Status.WITHDRAWN
    # the access tokens already issued are refused at the gateway from the withdrawal on
    assert deny_list.denied == {member_id: withdrawn.updated_at}
    assert [e["member_id"] for e in uow.events("MemberWithdrawalStarted")] == [str(member_id)]
    assert [e["saga_id"] for e in uow.events("MemberWithdrawalStarted")] == ["w1"]
    assert withdrawn.email.endswith("@invalid")
    assert all(t.revoked_at is not None for t in uow.store.tokens.values())
    assert uow.events("MemberWithdrawn") == [
        {
            "member_id": str(member_id),
            "occurred_at": uow.events("MemberWithdrawn")[0]["occurred_at"],
        }
    ]


async def test_cancel_withdrawal_restores_or_does_nothing(
    uow: FakeUnitOfWork, passwords: FakePasswords
) -> None:
    member_id = await sign_up(uow, passwords)
    async with uow:
        nothing = await saga_steps.cancel_withdrawal(
            uow, commands.CancelWithdrawal("w1", member_id)
        )
        await saga_steps.start_withdrawal(uow, commands.StartWithdrawal("w1", member_id))
        undone = await saga_steps.cancel_withdrawal(uow, commands.CancelWithdrawal("w1", member_id))
        await uow.commit()
    assert (nothing, undone) == ({"cancelled": False}, {"cancelled": True})
    assert member(uow, member_id).status is Status.ACTIVE
    # board and qna lift the refusal the started event set: one cancelled event per real undo
    assert [e["saga_id"] for e in uow.events("MemberWithdrawalCancelled")] == ["w1"]


async def test_a_withdrawing_member_cannot_change_the_profile(
    uow: FakeUnitOfWork, passwords: FakePasswords
) -> None:
    """While WITHDRAWING (and once WITHDRAWN) every profile change is refused (409), even an
    empty one, so the saga's semantic lock covers the member's own service too."""
    member_id = await sign_up(uow, passwords)
    async with uow:
        await saga_steps.start_withdrawal(uow, commands.StartWithdrawal("w1", member_id))
        await uow.commit()
    for change in (
        commands.ChangeProfile(member_id, nickname="another-name"),
        commands.ChangeProfile(member_id),
    ):
        with pytest.raises(errors.InvalidStateTransition):
            await handlers.change_profile(change, uow, passwords, throttle=FakeThrottle())
    assert uow.events("MemberProfileChanged") == []


# --- activity projection ---------------------------------------------------------------------
# Its merge rules are SQL, proved against PostgreSQL (tests/integration/member/
# test_projection_convergence.py); only the refusal of an unreadable body needs no database.


async def test_an_unreadable_activity_event_is_a_permanent_failure() -> None:
    """No retry can make a malformed body readable: the consumer must dead-letter it at once
    (and a rebuild skip it). It is refused before any SQL: the session passed is None."""
    env = Envelope.new(
        "PostCreated", "board", {"post_id": "not-a-uuid", "author_id": "also-not"}, key="k"
    )
    with pytest.raises(PermanentFailure) as raised:
        await projector.apply(cast(AsyncSession, None), READ_MODEL.live, env)
    assert classify(raised.value) is Failure.PERMANENT
