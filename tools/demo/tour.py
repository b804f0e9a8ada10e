"""API gateway as the only door: a narrated tour of the public contract, both sagas run to their end.

Every call goes through the gateway with the public routes exactly as a client would make them
(docs/services/*.md, docs/sagas.md), so the tour is also a worked example of the contract: sign-up and
log-in (member), posts and comments (board), a question with a bounty, answers and comments
(qna), the answer-acceptance saga (ReserveAcceptance → TransferPoints, the pivot →
ConfirmAcceptance, docs/sagas.md) and the member-withdrawal saga of a throwaway member
(StartWithdrawal → AnonymizeAuthor → RetireAuthor → CompleteWithdrawal, the pivot).

Each run names its members with a suffix of its own, so the tour can run again and again on
the same stack; what it leaves behind (two members with posts, comments, questions answered and
accepted, points moved) is what the web front end then shows. A step that gets an answer other
than the contract's (a status, a saga ending other than COMPLETED, points that did not move)
raises ``DemoError``; an unreachable gateway raises ``StackUnreachable``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO, TypeVar
from urllib.parse import urlsplit

import httpx

#: Every demo member's password (docs/services/member.md: at least 8 characters); printed for the log-in page.
PASSWORD = "demo-password-1"  # noqa: S105 - a throwaway local account's, not a secret
#: What board and qna show for a withdrawn author (the AnonymizeAuthor / RetireAuthor steps).
WITHDRAWN_NICKNAME = "탈퇴한 회원"
#: What the asker offers for the first question; a new member has 100 points (docs/services/member.md).
BOUNTY = 30
SECOND_BOUNTY = 20
SAGA_TYPES = {"accept": "answer-acceptance", "withdraw": "member-withdrawal"}
TERMINAL = frozenset({"COMPLETED", "COMPENSATED", "FAILED"})
#: Seconds. A saga's steps are Kafka round trips (a few ms each when idle); the step timeout
#: under ``make run`` is 30 s, so a minute covers one timed-out, re-sent pivot as well.
SAGA_TIMEOUT = 60.0
#: Seconds for a read model (post list, activity) to show a write: normally well under one.
READ_MODEL_TIMEOUT = 30.0
POLL_INTERVAL = 0.2
#: Ports under ``make run`` (deploy/local/run.py): the saga worker serves its metrics here.
RUN_GATEWAY_PORT = 8000
RUN_SAGA_WORKER_PORT = 9104

T = TypeVar("T")


class DemoError(Exception):
    """A step got an answer the contract does not give for it; the message names the step."""


class StackUnreachable(DemoError):
    """Nothing answers at the gateway address, or the gateway is not ready."""


@dataclass(frozen=True)
class Member:
    """A member the tour signed up and logged in (``token`` is an access token, 15 minutes)."""

    id: str
    email: str
    nickname: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Result:
    """What one run left on the stack, by id, for a reader (or a test) to check afterwards."""

    run_id: str
    asker: Member
    answerer: Member
    withdrawn: Member
    post_ids: list[str] = field(default_factory=list)
    notice_id: str = ""
    question_id: str = ""
    accepted_answer_id: str = ""
    acceptance_saga_id: str = ""
    second_question_id: str = ""
    second_acceptance_saga_id: str = ""
    open_question_id: str = ""
    withdrawal_saga_id: str = ""
    #: Points after the tour, by nickname (each member started with 100).
    points: dict[str, int] = field(default_factory=dict)


class Narrator:
    """Prints the tour: a numbered title per step, its HTTP calls, where to look.

    ``quiet`` keeps only the closing summary (``summary``); errors are the caller's to print.
    """

    def __init__(self, out: TextIO, *, quiet: bool = False) -> None:
        self.out = out
        self.quiet = quiet
        self.number = 0

    def _print(self, text: str) -> None:
        if not self.quiet:
            print(text, file=self.out, flush=True)

    def step(self, title: str, why: str = "") -> None:
        self.number += 1
        self._print(f"\n{self.number:>2}. {title}")
        if why:
            self._print(f"    {why}")

    def call(self, method: str, path: str, status: int, elapsed_ms: float) -> None:
        self._print(f"    {method:<6} {path} → {status}  ({elapsed_ms:.0f} ms)")

    def look(self, where: str, what: str) -> None:
        """Where to look: ``page``, ``log``, ``saga``, ``metric`` or ``read model``."""
        self._print(f"      look · {where:<10} {what}")

    def note(self, text: str) -> None:
        self._print(f"    {text}")

    def summary(self, text: str) -> None:
        print(text, file=self.out, flush=True)


def log_line(process: str, **fields: object) -> str:
    """A log line of ``make run``'s terminal as it appears there (``name | {json}``), abridged."""
    body = ", ".join(
        f'"{k}": {v}' if isinstance(v, int) else f'"{k}": "{v}"' for k, v in fields.items()
    )
    return f"{process:<14} | {{{body}, …}}"


class Tour:
    """The tour itself: ``run()`` makes every call in order and returns what it left behind.

    ``http`` has the gateway as its ``base_url``. ``admin_email`` / ``admin_password`` are the
    seeded admin's (``ADMIN_EMAIL`` / ``ADMIN_PASSWORD``, deploy/local/local.env): the admin
    writes the notice (the notice board takes posts from admins only) and reads the withdrawal
    saga once it has completed, when the withdrawn member's own token is refused everywhere.
    """

    def __init__(
        self,
        http: httpx.Client,
        narrator: Narrator,
        *,
        admin_email: str,
        admin_password: str,
        run_id: str | None = None,
        zipkin: str | None = None,
    ) -> None:
        self.http = http
        #: Zipkin's base URL while ``make observe`` exports the traces (None: no trace links).
        self.zipkin = zipkin.rstrip("/") if zipkin else None
        self.say = narrator
        self.admin_email = admin_email
        self.admin_password = admin_password
        self.run_id = run_id or uuid.uuid4().hex[:6]
        self.gateway = str(http.base_url).rstrip("/")
        self.boards: dict[str, dict[str, Any]] = {}
        self._admin_token = ""

    # --- plumbing ---------------------------------------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        *,
        expect: int,
        who: Member | None = None,
        body: Mapping[str, object] | None = None,
        quiet: bool = False,
        trace_id: str | None = None,
    ) -> Any:
        """One request through the gateway; the decoded JSON body (None when empty).

        With ``trace_id`` (32 hex digits, :meth:`new_trace`) the request carries a sampled W3C
        ``traceparent`` of that trace: the gateway continues the caller's trace, so the whole
        saga it starts is that trace in Zipkin.

        Raises ``StackUnreachable`` when nothing answers and ``DemoError`` when the status is
        not ``expect`` (with the problem document's title and detail, RFC 9457).
        """
        started = time.perf_counter()
        headers = dict(who.headers) if who else {}
        if trace_id:
            headers["traceparent"] = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"
        try:
            response = self.http.request(method, path, json=body, headers=headers or None)
        except httpx.TransportError as exc:
            raise StackUnreachable(
                f"{method} {self.gateway}{path}: no answer ({type(exc).__name__}: {exc}); "
                "is the stack running? Start it with `make run`, or pass --gateway URL"
            ) from exc
        if not quiet:
            self.say.call(
                method, path, response.status_code, (time.perf_counter() - started) * 1000
            )
        if response.status_code != expect:
            raise DemoError(
                f"{method} {path}: expected {expect}, got {response.status_code}: "
                f"{describe(response)}"
            )
        return response.json() if response.content else None

    def eventually(self, what: str, probe: Callable[[], T | None], timeout: float) -> T:
        """Poll ``probe`` until it returns something; ``DemoError`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            found = probe()
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise DemoError(f"{what}: not seen within {timeout:.0f} s")
            time.sleep(POLL_INTERVAL)

    def page(self, path: str) -> str:
        return f"{self.gateway}{path}"

    def saga_worker_metrics(self) -> str:
        """The saga worker's /metrics under ``make run`` (its port follows RUN_PORT_OFFSET)."""
        parts = urlsplit(self.gateway)
        offset = (parts.port or 80) - RUN_GATEWAY_PORT
        return f"http://{parts.hostname}:{RUN_SAGA_WORKER_PORT + offset}/metrics"

    # --- the tour ---------------------------------------------------------------------------

    def run(self) -> Result:
        self.check_stack()
        admin = self.log_in_admin()
        asker = self.sign_up("하늘", "haneul")
        answerer = self.sign_up("바다", "bada")
        asker, answerer = self.log_in(asker), self.log_in(answerer)
        result = Result(self.run_id, asker, answerer, asker)
        self.write_posts(result, admin)
        self.ask_and_answer(result)
        self.accept(result)
        self.more_questions(result)
        self.show_points(result)
        self.withdraw(result)
        self.print_summary(result)
        return result

    def check_stack(self) -> None:
        self.say.step(
            "Is the stack up?",
            "The gateway answers /readyz with 200 only when it can serve; /api/boards goes through "
            "it to board-api.",
        )
        started = time.perf_counter()
        try:
            ready = self.http.get("/readyz")
        except httpx.TransportError as exc:
            raise StackUnreachable(
                f"nothing answers at {self.gateway} ({type(exc).__name__}); start the stack with "
                "`make run` (or pass --gateway URL)"
            ) from exc
        self.say.call("GET", "/readyz", ready.status_code, (time.perf_counter() - started) * 1000)
        if ready.status_code != 200:
            raise StackUnreachable(
                f"the gateway at {self.gateway} is not ready ({ready.status_code}: "
                f"{describe(ready)}); wait for `run.py | all ready` in `make run`'s terminal"
            )
        self.boards = {b["slug"]: b for b in self.call("GET", "/api/boards", expect=200)}
        for slug in ("notice", "free"):
            if slug not in self.boards:
                raise DemoError(f"GET /api/boards: no '{slug}' board (member seeds it on migrate)")
        self.say.look("page", self.page("/"))

    def log_in_admin(self) -> Member:
        self.say.step(
            "Log in as the seeded admin",
            "The admin writes the notice (admins only) and reads the withdrawal saga at the end.",
        )
        try:
            tokens = self.call(
                "POST",
                "/api/auth/login",
                expect=200,
                body={"email": self.admin_email, "password": self.admin_password},
            )
        except StackUnreachable:
            raise
        except DemoError as exc:
            raise DemoError(
                f"{exc}\n  the admin is the one member seeded on its first migration: set "
                "ADMIN_EMAIL and ADMIN_PASSWORD as the stack has them (local.env's by default)"
            ) from exc
        self._admin_token = tokens["access_token"]
        return Member("", self.admin_email, "admin", tokens["access_token"])

    def sign_up(self, korean: str, latin: str) -> Member:
        nickname = f"{korean}-{self.run_id}"
        email = f"{latin}.{self.run_id}@example.com"
        self.say.step(
            f"Sign up {nickname} (회원 가입)",
            "member writes the account and its MemberRegistered event in one transaction "
            "(transactional outbox); the relay publishes it to member.events.",
        )
        created = self.call(
            "POST",
            "/api/members",
            expect=201,
            body={"email": email, "password": PASSWORD, "nickname": nickname},
        )
        self.say.note(f"id {created['id']}, status {created['status']}, points {created['points']}")
        self.say.look(
            "log", log_line("member-api", event="http.request", path="/api/members", status=201)
        )
        return Member(created["id"], email, nickname, "")

    def log_in(self, member: Member) -> Member:
        self.say.step(
            f"Log in as {member.nickname}",
            "member signs an access token (JWT, 15 minutes) with its private key; the gateway "
            "and every service check it against member's JWKS.",
        )
        tokens = self.call(
            "POST",
            "/api/auth/login",
            expect=200,
            body={"email": member.email, "password": PASSWORD},
        )
        self.say.look("page", f"{self.page('/login')} (email {member.email}, password {PASSWORD})")
        return Member(member.id, member.email, member.nickname, tokens["access_token"])

    def write_posts(self, result: Result, admin: Member) -> None:
        asker, answerer = result.asker, result.answerer
        free, notice = self.boards["free"]["id"], self.boards["notice"]["id"]
        self.say.step(
            "Write posts and comments on two boards (게시글 관리, 댓글 관리)",
            "board-api writes each post with its event (board.events); board-worker projects the "
            "events into post_summaries, the read model the post lists come from (CQRS).",
        )
        writes = [
            (
                asker,
                free,
                "사가 패턴, 오늘 처음 돌려 봤어요",
                "답변 채택 한 번에 세 서비스가 움직이네요.",
            ),
            (
                answerer,
                free,
                "아웃박스 릴레이가 멈추면 어떻게 되나요?",
                "커밋된 이벤트는 그대로 남아 있다가 다시 나갑니다.",
            ),
        ]
        for author, board_id, title, content in writes:
            post = self.call(
                "POST",
                f"/api/boards/{board_id}/posts",
                expect=201,
                who=author,
                body={"title": f"{title} ({self.run_id})", "content": content},
            )
            result.post_ids.append(post["id"])
        first, second = result.post_ids
        for author, post_id, content in [
            (answerer, first, "보상 트랜잭션까지 보셨어요?"),
            (asker, first, "네, 포인트가 모자라면 COMPENSATED로 끝나요."),
            (asker, second, "릴레이가 돌아오면 순서대로 다시 발행돼요."),
        ]:
            self.call(
                "POST",
                f"/api/posts/{post_id}/comments",
                expect=201,
                who=author,
                body={"content": content},
            )
        notice_post = self.call(
            "POST",
            f"/api/boards/{notice}/posts",
            expect=201,
            who=admin,
            body={
                "title": f"데모 둘러보기에 오신 것을 환영합니다 ({self.run_id})",
                "content": "`make demo`가 남긴 글입니다. 게시판, Q&A, 마이페이지를 둘러보세요.",
            },
        )
        result.notice_id = notice_post["id"]
        self.say.look(
            "log",
            log_line(
                "board-api", event="http.request", path=f"/api/boards/{free}/posts", status=201
            ),
        )

        def listed() -> int | None:
            page = self.call("GET", f"/api/boards/{free}/posts?size=50", expect=200, quiet=True)
            item = next((p for p in page["items"] if p["id"] == first), None)
            return item["comment_count"] if item and item["comment_count"] == 2 else None

        started = time.perf_counter()
        self.eventually(
            "the first post with 2 comments in the post list", listed, READ_MODEL_TIMEOUT
        )
        self.say.note(
            f"the post list (read model) showed the post and its 2 comments after "
            f"{(time.perf_counter() - started) * 1000:.0f} ms (eventual consistency)"
        )
        self.say.look("read model", f"GET /api/boards/{free}/posts (post_summaries)")
        self.say.look("page", self.page(f"/boards/{free}"))
        self.say.look("page", self.page(f"/posts/{first}"))
        self.say.look("page", self.page(f"/boards/{notice}"))

    def ask_and_answer(self, result: Result) -> None:
        asker, answerer = result.asker, result.answerer
        self.say.step(
            f"{asker.nickname} asks a question with a bounty of {BOUNTY} points; "
            f"{answerer.nickname} answers (Q&A 관리)",
            "The bounty is checked only when an answer is accepted: a bounty the asker cannot pay "
            "ends the saga COMPENSATED.",
        )
        question = self.call(
            "POST",
            "/api/questions",
            expect=201,
            who=asker,
            body={
                "title": f"피벗 단계가 타임아웃되면 보상되나요? ({self.run_id})",
                "content": "TransferPoints가 응답하지 않으면 어떻게 되는지 궁금합니다.",
                "bounty": BOUNTY,
            },
        )
        result.question_id = question["id"]
        answer = self.call(
            "POST",
            f"/api/questions/{result.question_id}/answers",
            expect=201,
            who=answerer,
            body={
                "content": "아니요. 피벗 이후의 타임아웃은 같은 시도 키로 다시 보냅니다. "
                "이미 했을지도 모르는 일을 보상했다고 말하지 않기 위해서죠.",
            },
        )
        result.accepted_answer_id = answer["id"]
        self.call(
            "POST",
            f"/api/questions/{result.question_id}/comments",
            expect=201,
            who=asker,
            body={"content": "docs/sagas.md 의 순서도를 같이 보면 좋겠네요."},
        )
        self.say.look("page", self.page(f"/questions/{result.question_id}"))

    def accept(self, result: Result) -> None:
        asker = result.asker
        self.say.step(
            f"{asker.nickname} accepts the answer: the answer-acceptance saga (답변 채택)",
            "saga-api checks the request with qna first (403/409 refused at once), then the "
            "orchestrator sends ReserveAcceptance (compensatable) → TransferPoints (the pivot) → "
            "ConfirmAcceptance (retriable), one command and one reply at a time over Kafka.",
        )
        path = f"/api/questions/{result.question_id}/answers/{result.accepted_answer_id}/accept"
        trace_id = self.new_trace()
        started = self.call("POST", path, expect=202, who=asker, trace_id=trace_id)
        result.acceptance_saga_id = started["saga_id"]
        saga = self.follow_saga(started["saga_id"], asker)
        self.expect_saga(saga, "COMPLETED")
        self.look_at_saga(saga, asker)
        self.look_at_trace(trace_id)
        self.say.look(
            "log", log_line("member-worker", event="saga.command_handled", command="TransferPoints")
        )
        question = self.call("GET", f"/api/questions/{result.question_id}", expect=200, who=asker)
        accepted = [a["id"] for a in question["answers"] if a["accepted"]]
        if question["status"] != "RESOLVED" or accepted != [result.accepted_answer_id]:
            raise DemoError(
                f"question {result.question_id}: status {question['status']}, accepted "
                f"{accepted} after the saga COMPLETED (expected RESOLVED, the answer accepted)"
            )
        self.say.note("the question is RESOLVED and the answer is marked accepted")
        self.say.look("page", self.page(f"/questions/{result.question_id}"))

    def more_questions(self, result: Result) -> None:
        asker, answerer = result.asker, result.answerer
        self.say.step(
            "More Q&A for the front end: one more accepted answer, one question left open",
            f"{answerer.nickname} asks (bounty {SECOND_BOUNTY}), {asker.nickname} answers and is "
            "accepted; a third question stays OPEN with an answer.",
        )
        second = self.call(
            "POST",
            "/api/questions",
            expect=201,
            who=answerer,
            body={
                "title": f"읽기 모델은 어떻게 다시 만드나요? ({self.run_id})",
                "content": "post_summaries 가 틀어졌을 때 복구하는 방법이 궁금해요.",
                "bounty": SECOND_BOUNTY,
            },
        )
        result.second_question_id = second["id"]
        answer = self.call(
            "POST",
            f"/api/questions/{second['id']}/answers",
            expect=201,
            who=asker,
            body={
                "content": "rebuild-read-model 명령이 토픽을 처음부터 다시 읽어 새 테이블을 채웁니다."
            },
        )
        started = self.call(
            "POST",
            f"/api/questions/{second['id']}/answers/{answer['id']}/accept",
            expect=202,
            who=answerer,
        )
        result.second_acceptance_saga_id = started["saga_id"]
        self.expect_saga(self.follow_saga(started["saga_id"], answerer, quiet=True), "COMPLETED")
        self.say.note(f"saga {started['saga_id']} COMPLETED")
        third = self.call(
            "POST",
            "/api/questions",
            expect=201,
            who=asker,
            body={
                "title": f"게이트웨이의 서킷 브레이커는 언제 열리나요? ({self.run_id})",
                "content": "업스트림 오류를 몇 번 세는지 궁금합니다.",
            },
        )
        result.open_question_id = third["id"]
        self.call(
            "POST",
            f"/api/questions/{third['id']}/answers",
            expect=201,
            who=answerer,
            body={
                "content": "연결 오류, 타임아웃, 502/503/504 만 셉니다. 요청 하나가 일으킨 4xx는 세지 않아요."
            },
        )
        self.say.look("page", self.page("/questions"))

    def show_points(self, result: Result) -> None:
        asker, answerer = result.asker, result.answerer
        self.say.step(
            "Points moved (TransferPoints, the pivot of each acceptance)",
            f"{asker.nickname}: 100 - {BOUNTY} + {SECOND_BOUNTY}; "
            f"{answerer.nickname}: 100 + {BOUNTY} - {SECOND_BOUNTY}.",
        )
        expected = {
            asker.nickname: 100 - BOUNTY + SECOND_BOUNTY,
            answerer.nickname: 100 + BOUNTY - SECOND_BOUNTY,
        }
        for member in (asker, answerer):
            me = self.call("GET", "/api/members/me", expect=200, who=member)
            result.points[member.nickname] = me["points"]
            self.say.note(f"{member.nickname}: {me['points']} points")
        if result.points != expected:
            raise DemoError(f"points after both acceptances: {result.points}, expected {expected}")

        def caught_up() -> dict[str, Any] | None:
            activity = self.call(
                "GET", "/api/members/me/activity", expect=200, who=answerer, quiet=True
            )
            return activity if activity["accepted_answers"] >= 1 else None

        activity = self.eventually(
            f"{answerer.nickname}'s accepted answer in member_activity",
            caught_up,
            READ_MODEL_TIMEOUT,
        )
        self.say.note(
            f"member_activity of {answerer.nickname}: posts {activity['posts']}, comments "
            f"{activity['comments']}, questions {activity['questions']}, answers "
            f"{activity['answers']}, accepted {activity['accepted_answers']}"
        )
        self.say.look(
            "read model", "GET /api/members/me/activity (member_activity, from the topics)"
        )
        self.say.look("page", f"{self.page('/me')} (my page, logged in as {answerer.email})")

    def withdraw(self, result: Result) -> None:
        leaver = self.log_in(self.sign_up("구름", "gureum"))
        result.withdrawn = leaver
        first_post = result.post_ids[0]
        self.say.step(
            f"{leaver.nickname} writes, then withdraws: the member-withdrawal saga (회원 탈퇴)",
            "StartWithdrawal (ACTIVE → WITHDRAWING, a semantic lock) → AnonymizeAuthor (board) → "
            "RetireAuthor (qna) → CompleteWithdrawal (the pivot: PII erased, tokens revoked).",
        )
        comment = self.call(
            "POST",
            f"/api/posts/{first_post}/comments",
            expect=201,
            who=leaver,
            body={"content": "저는 오늘까지만 있어요. 좋은 글 고마워요."},
        )
        self.call(
            "POST",
            f"/api/questions/{result.open_question_id}/answers",
            expect=201,
            who=leaver,
            body={"content": "브레이커가 열린 동안에는 503 이 바로 돌아옵니다."},
        )
        trace_id = self.new_trace()
        started = self.call("DELETE", "/api/members/me", expect=202, who=leaver, trace_id=trace_id)
        result.withdrawal_saga_id = started["saga_id"]
        saga = self.follow_saga(started["saga_id"], leaver)
        self.expect_saga(saga, "COMPLETED")
        self.look_at_saga(saga, None)
        self.look_at_trace(trace_id)
        self.say.look(
            "log", log_line("board-worker", event="saga.command_handled", command="AnonymizeAuthor")
        )
        comments = self.call("GET", f"/api/posts/{first_post}/comments", expect=200)
        items = comments["items"] if isinstance(comments, dict) else comments
        mine = next((c for c in items if c["id"] == comment["id"]), None)
        if mine is None or mine["author"]["id"] is not None:
            raise DemoError(f"comment {comment['id']} after the withdrawal: {mine}")
        self.say.note(f'the comment\'s author is now "{mine["author"]["nickname"]}", id null')
        self.call(
            "POST",
            "/api/auth/login",
            expect=401,
            body={"email": leaver.email, "password": PASSWORD},
        )
        self.say.note("the withdrawn member's log-in is refused (401); the account's PII is erased")
        self.say.look("page", self.page(f"/posts/{first_post}"))

    # --- sagas ------------------------------------------------------------------------------

    def follow_saga(
        self, saga_id: str, initiator: Member, *, quiet: bool = False
    ) -> dict[str, Any]:
        """Poll ``GET /api/sagas/{id}`` as the initiator until the saga ends; each change of its
        steps is printed. Once a withdrawal completes, the member's token is refused (401): the
        admin reads the saga from then on, as an operator would.
        """
        path = f"/api/sagas/{saga_id}"
        if not quiet:
            self.say.note(f"saga {saga_id}: polling GET {path} until it ends")
        seen: list[str] = []
        reader: Member | None = initiator

        def poll() -> dict[str, Any] | None:
            nonlocal reader
            response = self.http.get(
                path, headers=reader.headers if reader else self.admin_headers()
            )
            if response.status_code == 401 and reader is not None:
                if not quiet:
                    self.say.note(
                        f"GET {path} → 401: the initiator's token is refused now (the withdrawal "
                        "revoked it); reading on as the admin"
                    )
                reader = None
                return None
            if response.status_code != 200:
                raise DemoError(f"GET {path}: {response.status_code}: {describe(response)}")
            saga: dict[str, Any] = response.json()
            state = f"{saga['status']}: " + ", ".join(
                f"{s['name']} {s['status']}" for s in saga["steps"]
            )
            if not seen or seen[-1] != state:
                seen.append(state)
                if not quiet:
                    self.say.note(f"  {state}")
            return saga if saga["status"] in TERMINAL else None

        return self.eventually(f"saga {saga_id} to end", poll, SAGA_TIMEOUT)

    def admin_headers(self) -> dict[str, str]:
        """The admin's bearer header (``log_in_admin`` ran first)."""
        return {"Authorization": f"Bearer {self._admin_token}"}

    @staticmethod
    def expect_saga(saga: dict[str, Any], status: str) -> None:
        if saga["status"] != status:
            raise DemoError(
                f"saga {saga['id']} ({saga['type']}) ended {saga['status']}, expected {status}: "
                f"{saga.get('failure_reason') or 'no failure reason'}; steps: "
                + ", ".join(f"{s['name']} {s['status']}" for s in saga["steps"])
            )

    def new_trace(self) -> str | None:
        """A fresh trace id for a saga's first request while observing, else None."""
        return uuid.uuid4().hex if self.zipkin else None

    def look_at_trace(self, trace_id: str | None) -> None:
        """The saga's trace in Zipkin's UI (its spans arrive within ``OTEL_BSP_SCHEDULE_DELAY``,
        5 s, of each step)."""
        if self.zipkin and trace_id:
            self.say.look("trace", f"{self.zipkin}/zipkin/traces/{trace_id} (Zipkin)")

    def look_at_saga(self, saga: dict[str, Any], initiator: Member | None) -> None:
        for number, s in enumerate(saga["steps"], 1):
            kind = s.get("kind", "")
            self.say.look("saga", f"{number}. {s['name']:<20} {kind:<14} {s['status']}")
        who = f"logged in as {initiator.email}" if initiator else "logged in as the admin"
        saga_page = self.page(f"/sagas/{saga['id']}")
        self.say.look("page", f"{saga_page} (the saga's live page, {who})")
        self.say.look(
            "log",
            f'`make run`\'s lines with "saga_id": "{saga["id"]}", e.g. '
            + log_line("saga-worker", event="saga.completed", saga_id=saga["id"]),
        )
        self.say.look(
            "metric",
            f'saga_completed_total{{type="{saga["type"]}"}} at {self.saga_worker_metrics()}',
        )

    def print_summary(self, result: Result) -> None:
        free = self.boards["free"]["id"]
        self.say.summary(
            f"\ndemo {result.run_id}: done. Open {self.page('/')} and log in as "
            f"{result.asker.email} or {result.answerer.email} (password {PASSWORD}):\n"
            f"  posts      {self.page(f'/boards/{free}')}\n"
            f"  question   {self.page(f'/questions/{result.question_id}')} (answer accepted)\n"
            f"  my page    {self.page('/me')}\n"
            f"  sagas      {result.acceptance_saga_id} answer-acceptance COMPLETED, "
            f"{result.withdrawal_saga_id} member-withdrawal COMPLETED\n"
            f"  points     "
            + ", ".join(f"{name} {points}" for name, points in result.points.items())
        )


def describe(response: httpx.Response) -> str:
    """A problem document's title and detail (RFC 9457), or the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or "(empty body)"
    if isinstance(body, dict) and ("title" in body or "detail" in body):
        return " - ".join(str(body[k]) for k in ("title", "detail") if body.get(k))
    return str(body)[:300]
