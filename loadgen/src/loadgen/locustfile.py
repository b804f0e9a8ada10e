"""Locust users, one class per persona, driving realistic traffic through the gateway's public API (Online Boutique's load-generator pattern).

Run headless until Ctrl-C (``make loadgen`` does this)::

    locust -f loadgen/src/loadgen/locustfile.py --headless --host http://127.0.0.1:8000 --rate 5

``--rate`` (or ``LOADGEN_RATE``) is the total in requests per second; ``mix.plan`` splits it
between the personas and sets the number of users, so ``--users`` is not needed. Every
request goes through the gateway (its routes: docs/gateway.md), is named
``<persona> <METHOD> <path template>`` in Locust's statistics, and counts as a failure unless
its status is one the contract gives for what the persona did. Sagas show as ``SAGA`` entries
whose time is start-to-terminal-state. Importing Locust lets gevent patch the standard
library (so ``time.sleep`` here yields to the other users): only the ``locust`` process
imports this module, never a service or a test.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlencode

import gevent  # type: ignore[import-untyped]  # (no stubs; Locust's own dependency)
from locust import events, task
from locust.argument_parser import LocustArgumentParser
from locust.contrib.fasthttp import FastHttpUser
from locust.env import Environment

from loadgen import data, mix, retry
from loadgen.pacing import Pacer
from loadgen.tokens import REFRESH_MARGIN_SECONDS, Refresh, Tokens

logger = logging.getLogger("loadgen")

DEFAULT_RATE = 5.0
#: How often a persona looks at a saga it started, and for how long (seconds).
SAGA_POLL_SECONDS = 0.25
SAGA_TIMEOUT_SECONDS = 60.0
SAGA_TERMINAL = frozenset({"COMPLETED", "COMPENSATED", "FAILED"})
#: An accepter keeps at most this many questions open while it waits for answers.
ACCEPTER_OPEN_QUESTIONS = 3
#: Users started per second unless ``--spawn-rate`` says otherwise: most personas sign up as
#: they start, and one at a time spares member's password hashing a burst.
SPAWN_RATE = 1.0
#: Bookkeeping caps: the ids a persona remembers to come back to.
REMEMBERED = 20


# Locust's EventHook.add_listener carries no annotations.
@events.init_command_line_parser.add_listener  # type: ignore[untyped-decorator]
def _add_arguments(parser: LocustArgumentParser) -> None:
    parser.add_argument(
        "--rate",
        type=float,
        env_var="LOADGEN_RATE",
        default=DEFAULT_RATE,
        help="requests per second in total, over every persona (default %(default)s)",
    )
    parser.add_argument(
        "--refresh-margin",
        type=float,
        env_var="LOADGEN_REFRESH_MARGIN",
        default=REFRESH_MARGIN_SECONDS,
        help="refresh a token this many seconds before it expires (default %(default)s)",
    )


@events.init.add_listener  # type: ignore[untyped-decorator]
def _plan(environment: Environment, **_: Any) -> None:
    """Size the run from ``--rate``: users per persona (``fixed_count``) and their pace."""
    # gevent's loop caches its clock: after a slow start (imports on a busy machine) a timer
    # such as Locust's --run-time would count from the stale time and fire at once.
    gevent.get_hub().loop.update_now()
    options = environment.parsed_options
    rate = float(getattr(options, "rate", DEFAULT_RATE))
    allocations = mix.plan(rate)
    for persona in PERSONAS:
        allocation = allocations[persona.persona]
        persona.fixed_count = allocation.users
        persona.rate_per_user = allocation.rate_per_user
        persona.refresh_margin = float(getattr(options, "refresh_margin", REFRESH_MARGIN_SECONDS))
    users = mix.total_users(allocations)
    if options is not None:
        if options.num_users not in (None, users):
            logger.warning(
                "--users %s ignored: --rate %s needs %d users", options.num_users, rate, users
            )
        options.num_users = users
        options.spawn_rate = options.spawn_rate or SPAWN_RATE
    logger.info(
        "loadgen: %.1f requests/s over %d users: %s",
        rate,
        users,
        ", ".join(f"{name} {a.users}x{a.rate_per_user:.2f}/s" for name, a in allocations.items()),
    )


@dataclass(frozen=True)
class Answer:
    """What a request got: its status, its JSON body (None when it has none), its headers,
    and whether the status was one the persona expected."""

    status: int
    body: Any
    headers: Mapping[str, str]
    ok: bool


class Persona(FastHttpUser):
    """A visitor of one kind: paced requests through the gateway, each checked against the
    statuses the contract allows for it. Logged-in personas sign up as ``loadgen-`` members."""

    abstract = True
    persona: ClassVar[str] = ""
    #: Set from ``--rate`` by ``_plan`` before any user starts.
    rate_per_user: ClassVar[float] = 1.0
    refresh_margin: ClassVar[float] = REFRESH_MARGIN_SECONDS
    connection_timeout = 10.0
    network_timeout = 30.0

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.rng = random.Random()
        self.pacer = Pacer(self.rate_per_user)
        self.member: data.Identity | None = None
        self.member_id: str | None = None
        self.tokens: Tokens | None = None
        self.boards: list[dict[str, Any]] = []

    def wait_time(self) -> float:
        return self.pacer.wait()

    # ------------------------------------------------------------------ HTTP

    def call(
        self,
        method: str,
        template: str,
        *,
        path: str | None = None,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        expect: Iterable[int] = (200,),
        auth: bool = True,
        fresh: bool = True,
        attempts: int = retry.MAX_ATTEMPTS,
    ) -> Answer:
        """One request, named ``<persona> <method> <template>``: sent to ``path`` (default the
        template itself) with ``query``, a JSON ``body``, the bearer token when ``auth`` and
        logged in (refreshed first when due, unless not ``fresh``), and an ``Idempotency-Key``
        on every write, the same on each retry of a transient failure (``retry``)."""
        expected = frozenset(expect)
        if auth and fresh:
            self.keep_fresh()
        url = (path or template) + (f"?{urlencode(query)}" if query else "")
        key = str(uuid.uuid4()) if method != "GET" else None
        attempt = 0
        while True:
            attempt += 1
            headers = dict(self.tokens.header) if auth and self.tokens else {}
            if key:
                headers["Idempotency-Key"] = key
            self.pacer.spend()
            with self.client.request(
                method,
                url,
                name=f"{self.persona} {method} {template}",
                json=body,
                headers=headers,
                catch_response=True,
            ) as response:
                status = response.status_code or 0
                answer = Answer(status, _json(response), response.headers or {}, status in expected)
                if answer.ok:
                    response.success()
                    return answer
                # Status 0 is Locust's for "no answer": the reason is the connection error.
                reason = (
                    (response.text or "")[:300]
                    if status
                    else repr(getattr(response, "error", None))
                )
                response.failure(f"{status}: {reason}")
            if retry.should_retry(status, attempt, attempts):
                time.sleep(retry.backoff(attempt))
                continue
            if status == 429:
                time.sleep(retry.retry_after(answer.headers.get("Retry-After")))
            elif status == 401 and auth and self.member is not None:
                self.tokens = None  # refused: log in again before the next request
            return answer

    # ------------------------------------------------------------------ members

    def join(self) -> bool:
        """Sign up a new ``loadgen-`` member and log in; False when either was refused."""
        member = data.identity(self.rng)
        signed_up = self.call(
            "POST",
            "/api/members",
            body={"email": member.email, "password": member.password, "nickname": member.nickname},
            expect=(201,),
            auth=False,
        )
        if not signed_up.ok:
            return False
        self.member, self.member_id = member, str(signed_up.body["id"])
        return self.log_in()

    def log_in(self) -> bool:
        assert self.member is not None
        answer = self.call(
            "POST",
            "/api/auth/login",
            body={"email": self.member.email, "password": self.member.password},
            auth=False,
        )
        self.tokens = Tokens.from_response(answer.body, time.monotonic()) if answer.ok else None
        return self.tokens is not None

    def keep_fresh(self) -> None:
        """Rotate the token pair when the access token is about to expire (``tokens``)."""
        if self.tokens is None:
            if self.member is not None:
                self.log_in()
            return
        if not self.tokens.due(time.monotonic(), self.refresh_margin):
            return
        # One attempt only: a refresh token that was rotated on the way must not be reused.
        answer = self.call(
            "POST",
            "/api/auth/refresh",
            body={"refresh_token": self.tokens.refresh},
            auth=False,
            attempts=1,
        )
        decision = Refresh.decide(answer.status)
        if decision == Refresh.ROTATE:
            self.tokens.rotate(answer.body, time.monotonic())
        elif decision == Refresh.LOG_IN:
            self.tokens = None
            self.log_in()

    def signed_in(self) -> bool:
        """Whether the persona has a member and a token, joining or logging in if not."""
        if self.member is None:
            return self.join()
        if self.tokens is None:
            return self.log_in()
        return True

    # ------------------------------------------------------------------ reading

    def board_list(self) -> list[dict[str, Any]]:
        """``GET /api/boards``, as a visitor's first page; looked at again now and then."""
        if not self.boards or self.rng.random() < 0.1:
            answer = self.call("GET", "/api/boards", auth=False)
            if answer.ok:
                self.boards = list(answer.body)
        return self.boards

    def writable_board(self) -> dict[str, Any] | None:
        """A board any member may post on (``notice`` is for admins only)."""
        boards = [b for b in self.board_list() if b.get("slug") != "notice"]
        return self.rng.choice(boards) if boards else None

    def posts(self, board_id: str, **query: Any) -> list[dict[str, Any]]:
        answer = self.call(
            "GET",
            "/api/boards/{id}/posts",
            path=f"/api/boards/{board_id}/posts",
            query={"size": 20, **query},
            auth=bool(self.tokens),
        )
        return list(answer.body["items"]) if answer.ok else []

    def questions(self, **query: Any) -> list[dict[str, Any]]:
        answer = self.call(
            "GET", "/api/questions", query={"size": 20, **query}, auth=bool(self.tokens)
        )
        return list(answer.body["items"]) if answer.ok else []

    def question(self, qid: str) -> dict[str, Any] | None:
        answer = self.call(
            "GET", "/api/questions/{id}", path=f"/api/questions/{qid}", auth=bool(self.tokens)
        )
        return dict(answer.body) if answer.ok else None

    # ------------------------------------------------------------------ sagas

    def follow_saga(self, saga_id: str, kind: str, *, withdrawal: bool = False) -> str | None:
        """Poll ``GET /api/sagas/{id}`` until the saga ends; report it as a ``SAGA`` entry named
        ``<persona> <kind> <status>`` whose time is start to end (a failure when it ended
        FAILED or did not end within ``SAGA_TIMEOUT_SECONDS``). Returns the terminal status.

        For the member's own ``withdrawal`` a 401 *is* the COMPLETED outcome: once the saga
        completes, member revokes the member's tokens everywhere (docs/sagas.md), so the
        initiator cannot read the end of it; its token is not refreshed meanwhile."""
        started = time.perf_counter()
        status: str | None = None
        while time.perf_counter() - started < SAGA_TIMEOUT_SECONDS:
            answer = self.call(
                "GET",
                "/api/sagas/{id}",
                path=f"/api/sagas/{saga_id}",
                expect=(200, 401) if withdrawal else (200,),
                fresh=not withdrawal,
            )
            if withdrawal and answer.status == 401:
                status = "COMPLETED"
                break
            if answer.ok and answer.body.get("status") in SAGA_TERMINAL:
                status = str(answer.body["status"])
                break
            if answer.status in (401, 403, 404):
                break  # not ours to see (or gone): nothing more to learn by asking again
            time.sleep(SAGA_POLL_SECONDS)
        elapsed_ms = (time.perf_counter() - started) * 1000
        failed = status in (None, "FAILED")
        self.environment.events.request.fire(
            request_type="SAGA",
            name=f"{self.persona} {kind} {status or 'UNFINISHED'}",
            response_time=elapsed_ms,
            response_length=0,
            exception=RuntimeError(f"saga {saga_id} ended {status}") if failed else None,
            context={},
        )
        return status


def _json(response: Any) -> Any:
    try:
        return response.json() if response.content else None
    except ValueError:
        return None


def _first(items: Iterable[dict[str, Any]], keep: Callable[[dict[str, Any]], bool]) -> Any:
    return next((item for item in items if keep(item)), None)


# ====================================================================== personas


class Reader(Persona):
    """Anonymous browsing, most of the traffic: boards, post lists and posts with their
    comments, the Q&A list and questions, now and then a search."""

    persona = "reader"

    @task(5)
    def browse_board(self) -> None:
        boards = self.board_list()
        if not boards:
            return
        board = self.rng.choice(boards)
        page = self.rng.choices((1, 2, 3), weights=(8, 3, 1))[0]
        items = self.posts(board["id"], page=page)
        if items and self.rng.random() < 0.7:
            self.read_post(self.rng.choice(items)["id"])

    def read_post(self, post_id: str) -> None:
        self.call("GET", "/api/posts/{id}", path=f"/api/posts/{post_id}", auth=False)
        self.call(
            "GET", "/api/posts/{id}/comments", path=f"/api/posts/{post_id}/comments", auth=False
        )

    @task(4)
    def browse_questions(self) -> None:
        status = self.rng.choice((None, "OPEN", "OPEN", "RESOLVED"))
        items = self.questions(**({"status": status} if status else {}))
        if items and self.rng.random() < 0.7:
            self.question(self.rng.choice(items)["id"])

    @task(1)
    def search(self) -> None:
        term = data.search_term(self.rng)
        if self.rng.random() < 0.5:
            board = self.writable_board()
            if board:
                self.posts(board["id"], q=term)
        else:
            self.questions(q=term)


class Poster(Persona):
    """A member who writes posts, edits one now and then, and looks at their dashboard."""

    persona = "poster"

    def on_start(self) -> None:
        self.own_posts: list[str] = []
        self.join()

    @task(4)
    def write(self) -> None:
        board = self.writable_board()
        if not self.signed_in() or board is None:
            return
        answer = self.call(
            "POST",
            "/api/boards/{id}/posts",
            path=f"/api/boards/{board['id']}/posts",
            body={"title": data.title(self.rng), "content": data.paragraph(self.rng, (2, 6))},
            expect=(201,),
        )
        if answer.ok:
            self.own_posts = [*self.own_posts, str(answer.body["id"])][-REMEMBERED:]

    @task(1)
    def edit(self) -> None:
        if not self.own_posts or not self.signed_in():
            return
        post_id = self.rng.choice(self.own_posts)
        self.call(
            "PATCH",
            "/api/posts/{id}",
            path=f"/api/posts/{post_id}",
            body={"content": data.paragraph(self.rng, (2, 6))},
        )

    @task(2)
    def dashboard(self) -> None:
        if self.signed_in():
            self.call("GET", "/api/me/dashboard")

    @task(1)
    def activity(self) -> None:
        if self.signed_in():
            self.call("GET", "/api/members/me/activity")


class Commenter(Persona):
    """A member who reads the newest posts and questions of other ``loadgen-`` members and
    comments on them (never on a person's content)."""

    persona = "commenter"

    def on_start(self) -> None:
        self.join()

    def others(self, item: dict[str, Any]) -> bool:
        author = item.get("author") or {}
        return data.is_own(author.get("nickname")) and author.get("id") != self.member_id

    @task(3)
    def comment_post(self) -> None:
        board = self.writable_board()
        if not self.signed_in() or board is None:
            return
        post = _first(self.posts(board["id"], page=1), self.others)
        if post is None:
            return
        self.call("GET", "/api/posts/{id}", path=f"/api/posts/{post['id']}")
        self.call(
            "POST",
            "/api/posts/{id}/comments",
            path=f"/api/posts/{post['id']}/comments",
            body={"content": data.paragraph(self.rng, (1, 2))},
            expect=(201,),
        )

    @task(1)
    def comment_question(self) -> None:
        if not self.signed_in():
            return
        question = _first(self.questions(status="OPEN"), self.others)
        if question is None:
            return
        self.call(
            "POST",
            "/api/questions/{id}/comments",
            path=f"/api/questions/{question['id']}/comments",
            body={"content": data.paragraph(self.rng, (1, 2))},
            expect=(201,),
        )


class Asker(Persona):
    """A member who asks questions (mostly without a bounty) and comes back to read the answers."""

    persona = "asker"

    def on_start(self) -> None:
        self.own_questions: list[str] = []
        self.join()

    @task(3)
    def ask(self) -> None:
        if not self.signed_in():
            return
        bounty = 0 if self.rng.random() < 0.7 else data.bounty(self.rng, 100, 1)
        answer = self.call(
            "POST",
            "/api/questions",
            body={
                "title": data.title(self.rng),
                "content": data.paragraph(self.rng, (2, 5)),
                "bounty": bounty,
            },
            expect=(201,),
        )
        if answer.ok:
            self.own_questions = [*self.own_questions, str(answer.body["id"])][-REMEMBERED:]

    @task(2)
    def read_answers(self) -> None:
        if self.own_questions and self.signed_in():
            self.question(self.rng.choice(self.own_questions))


class Answerer(Persona):
    """A member who answers open questions of other ``loadgen-`` members: unanswered first,
    the highest bounty first among those (answerers chase points)."""

    persona = "answerer"

    def on_start(self) -> None:
        self.join()

    @task
    def answer(self) -> None:
        if not self.signed_in():
            return
        candidates = [
            q
            for q in self.questions(status="OPEN")
            if data.is_own((q.get("author") or {}).get("nickname"))
            and (q.get("author") or {}).get("id") != self.member_id
        ]
        if not candidates:
            return
        self.rng.shuffle(candidates)
        chosen = min(candidates, key=lambda q: (q.get("answer_count", 0), -q.get("bounty", 0)))
        # 409: the list is a read model, so the question may have been accepted (or closed)
        # since; the contract refuses an answer to a question that is not OPEN.
        self.call(
            "POST",
            "/api/questions/{id}/answers",
            path=f"/api/questions/{chosen['id']}/answers",
            body={"content": data.paragraph(self.rng, (2, 4))},
            expect=(201, 409),
        )


class Accepter(Persona):
    """A member who asks questions with a bounty it can pay and accepts the first answer by
    someone else: each acceptance is an answer-acceptance saga, followed to its end."""

    persona = "accepter"

    def on_start(self) -> None:
        self.waiting: list[str] = []
        self.join()

    @task
    def accept_or_ask(self) -> None:
        if not self.signed_in():
            return
        if self.waiting and self.accept(self.waiting[0]):
            return
        if len(self.waiting) < ACCEPTER_OPEN_QUESTIONS:
            self.ask()
        elif self.waiting:
            self.waiting.append(self.waiting.pop(0))  # look at the next one next time

    def accept(self, qid: str) -> bool:
        """Accept an answer on ``qid`` if it has one by someone else; True when a saga ran."""
        question = self.question(qid)
        if question is None or question.get("status") != "OPEN":
            self.waiting.remove(qid)
            return False
        answer = _first(
            question.get("answers") or [],
            lambda a: (a.get("author") or {}).get("id") not in (None, self.member_id),
        )
        if answer is None:
            return False
        started = self.call(
            "POST",
            "/api/questions/{id}/answers/{aid}/accept",
            path=f"/api/questions/{qid}/answers/{answer['id']}/accept",
            expect=(202,),
        )
        self.waiting.remove(qid)
        if started.ok:
            self.follow_saga(str(started.body["saga_id"]), "answer-acceptance")
        return True

    def ask(self) -> None:
        me = self.call("GET", "/api/members/me")
        if not me.ok:
            return
        points = int(me.body.get("points", 0))
        bounty = data.bounty(self.rng, points, len(self.waiting) + 1, minimum=1)
        answer = self.call(
            "POST",
            "/api/questions",
            body={
                "title": data.title(self.rng),
                "content": data.paragraph(self.rng, (2, 5)),
                "bounty": bounty,
            },
            expect=(201,),
        )
        if answer.ok:
            self.waiting.append(str(answer.body["id"]))


class Withdrawer(Persona):
    """Rare: a member this generator has just created writes a post and withdraws, a
    member-withdrawal saga followed to its end. Never the admin, never a person's account:
    the member is signed up in the same task (``data.ensure_own`` checks it again)."""

    persona = "withdrawer"

    @task
    def withdraw(self) -> None:
        self.member, self.member_id, self.tokens = None, None, None
        if not self.join() or self.member is None:
            return
        board = self.writable_board()
        if board is not None:
            self.call(
                "POST",
                "/api/boards/{id}/posts",
                path=f"/api/boards/{board['id']}/posts",
                body={"title": data.title(self.rng), "content": data.paragraph(self.rng)},
                expect=(201,),
            )
        data.ensure_own(self.member)
        started = self.call("DELETE", "/api/members/me", expect=(202,))
        if started.ok:
            self.follow_saga(str(started.body["saga_id"]), "member-withdrawal", withdrawal=True)
        self.member, self.member_id, self.tokens = None, None, None


PERSONAS: tuple[type[Persona], ...] = (
    Reader,
    Poster,
    Commenter,
    Asker,
    Answerer,
    Accepter,
    Withdrawer,
)
