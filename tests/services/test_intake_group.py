"""Group commit (`api.services.intake.group`): observers' new checklists that arrive while a
statement is in flight are stored together by the next, and each still gets its own
outcome: stored, replayed, refused, or the database's error for it alone.

Every test holds the first statement open until the others are queued behind it, so what
goes into which statement does not depend on the machine's speed."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import psycopg
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from api.config import Settings, get_settings
from api.db import get_engine, session_scope
from api.deps import Principal
from api.services import templates as template_service
from api.services.intake import Refused, group, intake, storage
from models import Answer, Checklist, ChecklistChange, Credential, Role
from models.checklist import ChecklistSubmit
from tests.factories import checklist_payload, make_mission, make_observer, make_station

pytestmark = pytest.mark.postgres_only


@pytest.fixture
def observer(session: Session) -> Principal:
    mission, _ = make_mission(session)
    for code in ("S-1", "S-2", "S-3"):
        make_station(session, mission.id, code)
    observer, _ = make_observer(session, mission.id, ["S-1", "S-2"])
    cred = session.scalar(select(Credential).where(Credential.observer_id == observer.id))
    assert cred is not None
    assert template_service.for_intake(session, mission.id, "default", 1) is not None
    session.commit()
    return Principal(cred.id, cred.mission_id, Role.observer, cred.observer_id)


class Statements:
    """What the writer sent: each statement's ids, and a gate that holds the first `held`
    statements until the test opens it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sent: list[list[uuid.UUID]] = []
        self.at: list[float] = []  # when each was sent (monotonic)
        self.gate = threading.Event()
        self.held = 1
        mutex = threading.Lock()
        real_one, real_many = storage.write_statement_committed, storage.write_batch_committed

        def hold() -> None:
            with mutex:
                wait, self.held = self.held > 0, self.held - 1
            if wait:
                assert self.gate.wait(10), "the test never opened the gate"

        def one(engine: Any, new: storage.NewVersion) -> bool:
            self.sent.append([new.row["id"]])
            self.at.append(time.monotonic())
            hold()
            return real_one(engine, new)

        def many(engine: Any, rows: list[dict[str, Any]]) -> set[uuid.UUID]:
            self.sent.append([r["id"] for r in rows])
            self.at.append(time.monotonic())
            hold()
            return real_many(engine, rows)

        monkeypatch.setattr(storage, "write_statement_committed", one)
        monkeypatch.setattr(storage, "write_batch_committed", many)


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Iterator[Statements]:
    s = Statements(monkeypatch)
    yield s
    s.gate.set()


def _post(who: Principal, item: dict[str, Any], settings: Settings) -> Callable[[], str]:
    """Start posting `item` on a thread of its own; the callable joins it and says how it
    went."""
    out: list[str] = []

    def run() -> None:
        body = ChecklistSubmit.model_validate(item)
        raw = orjson.dumps(item).decode()
        try:
            with session_scope() as s:
                done = intake(s, who, body, item, raw, settings)
        except Refused as exc:
            out.append(f"{exc.refusal.kind} {exc.refusal.code}")
        except DBAPIError as exc:
            out.append(f"database {type(exc).__name__}")
        except BaseException as exc:  # noqa: BLE001 - what the thread died of
            out.append(f"raised {type(exc).__name__}")
        else:
            out.append("created" if done.created else "replay")

    thread = threading.Thread(target=run)
    thread.start()

    def joined() -> str:
        thread.join(20)
        assert not thread.is_alive()
        return out[0]

    return joined


def _queued(settings: Settings, n: int) -> None:
    """Wait until `n` checklists wait behind the statement in flight."""
    writer = group.writer(get_engine(), settings.intake_group, settings.intake_group_writers)
    deadline = time.monotonic() + 10
    while len(writer._queue) < n:
        assert time.monotonic() < deadline, f"{len(writer._queue)} of {n} queued"
        time.sleep(0.005)


def _count(model: Any, *where: Any) -> int:
    with session_scope() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _three_behind_a_failing_statement(
    observer: Principal,
    statements: Statements,
    monkeypatch: pytest.MonkeyPatch,
    failure: Callable[[], BaseException],
) -> list[str]:
    """One checklist alone in the held statement, three queued behind it for a shared one
    that raises `failure()`: how the four went, once the gate opens."""

    def failing(engine: Any, rows: list[dict[str, Any]]) -> set[uuid.UUID]:
        statements.sent.append([r["id"] for r in rows])
        raise failure()

    monkeypatch.setattr(storage, "write_batch_committed", failing)
    settings = get_settings()
    first = _post(observer, checklist_payload("S-1"), settings)
    while not statements.sent:
        time.sleep(0.005)
    posts = [_post(observer, checklist_payload("S-2"), settings) for _ in range(3)]
    _queued(settings, 3)
    statements.gate.set()
    return [first(), *(p() for p in posts)]


@pytest.mark.parametrize("in_flight", [1, 2])
def test_checklists_that_arrive_together_share_a_statement_and_keep_their_own_outcomes(
    observer: Principal, statements: Statements, in_flight: int
) -> None:
    settings = get_settings().model_copy(update={"intake_group_writers": in_flight})
    statements.held = in_flight
    alone = [checklist_payload("S-1") for _ in range(in_flight)]
    firsts = [_post(observer, item, settings) for item in alone]
    while len(statements.sent) < in_flight:  # each in a statement of its own, held
        time.sleep(0.005)

    new = [checklist_payload("S-2", "opening") for _ in range(4)]
    unknown = checklist_payload("S-9")
    unassigned = checklist_payload("S-3")
    resend = dict(new[0])  # the same checklist again, racing the first
    later = [_post(observer, item, settings) for item in [*new, unknown, unassigned]]
    _queued(settings, 6)
    racing = _post(observer, resend, settings)
    _queued(settings, 7)
    statements.gate.set()

    assert [f() for f in firsts] == ["created"] * in_flight
    outcomes = [f() for f in later]
    assert outcomes[1:] == ["created"] * 3 + ["invalid invalid_checklist"] * 2
    # The checklist and its resend: stored once, the other answered as a replay. With one
    # statement in flight the resend goes in the next and finds the first stored; with two
    # in flight the two statements may race, and either wins.
    first_of_two = [outcomes[0], racing()]
    if in_flight == 1:
        assert first_of_two == ["created", "replay"]
    else:
        assert sorted(first_of_two) == ["created", "replay"]

    # The six behind the held statements went in one; the resend of one of them never
    # shares a statement with it.
    ids = [uuid.UUID(i["id"]) for i in [*new, unknown, unassigned]]
    after = statements.sent[in_flight:]
    expected = [ids, [uuid.UUID(resend["id"])]]
    if in_flight == 1:
        assert after == expected
    else:
        assert sorted(map(sorted, after)) == sorted(map(sorted, expected))
    stored = [uuid.UUID(i["id"]) for i in [*alone, *new]]
    assert _count(Checklist) == len(stored)
    assert _count(ChecklistChange, ChecklistChange.checklist_id.in_(stored)) == len(stored)
    for item in new:
        assert _count(Answer, Answer.checklist_id == uuid.UUID(item["id"])) == len(item["answers"])


def test_a_checklist_the_database_refuses_fails_alone(
    observer: Principal, statements: Statements, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A value no check before the database caught: the shared statement fails as a whole,
    each of its checklists is tried again alone, and only that one fails."""
    settings = get_settings()
    bad = checklist_payload("S-2")
    real_row = storage.checklist_row

    def row(body: ChecklistSubmit, *args: Any, **kw: Any) -> dict[str, Any]:
        built = real_row(body, *args, **kw)
        if str(body.id) == bad["id"]:
            built["observed_utc_offset_min"] = 40_000  # beyond the column's smallint
        return built

    monkeypatch.setattr(storage, "checklist_row", row)
    first = _post(observer, checklist_payload("S-1"), settings)
    while not statements.sent:
        time.sleep(0.005)
    good = [checklist_payload("S-1", "closing") for _ in range(3)]
    posts = [_post(observer, item, settings) for item in [good[0], bad, *good[1:]]]
    _queued(settings, 4)
    statements.gate.set()

    assert first() == "created"
    assert [p() for p in posts] == ["created", "database DataError", "created", "created"]
    # The shared statement, then each of its four alone.
    assert [len(ids) for ids in statements.sent] == [1, 4, 1, 1, 1, 1]
    assert _count(Checklist) == 4
    assert _count(Checklist, Checklist.id == uuid.UUID(bad["id"])) == 0


def test_one_checklist_at_a_time_when_grouping_is_off(
    observer: Principal, statements: Statements
) -> None:
    """While the first statement is held, the four others are sent too, each alone: none
    waits for it (grouped, they would wait and then share one)."""
    settings = get_settings().model_copy(update={"intake_group": 1})
    posts = [_post(observer, checklist_payload("S-1"), settings) for _ in range(5)]
    deadline = time.monotonic() + 10
    while len(statements.sent) < 5:
        assert time.monotonic() < deadline, f"{len(statements.sent)} of 5 statements sent"
        time.sleep(0.005)
    statements.gate.set()
    assert [p() for p in posts] == ["created"] * 5
    assert [len(ids) for ids in statements.sent] == [1] * 5


def test_a_deadlocks_victim_is_written_again_one_by_one(
    observer: Principal, statements: Statements, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database rolled the shared statement back to break a deadlock (another
    statement held some of its ids): it is worth a try per checklist, not a 503."""
    outcomes = _three_behind_a_failing_statement(
        observer,
        statements,
        monkeypatch,
        lambda: DBAPIError.instance(
            None, None, psycopg.errors.DeadlockDetected("deadlock detected"), psycopg.Error
        ),
    )
    assert outcomes == ["created"] * 4
    assert [len(ids) for ids in statements.sent] == [1, 3, 1, 1, 1]
    assert _count(Checklist) == 4


def test_if_the_writing_thread_itself_fails_the_others_are_written_alone(
    observer: Principal, statements: Statements, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not an error of the database's but of the thread writing the shared statement (the
    process stopping, say): the checklists it was writing for the others are written by
    their own threads, and nobody is left waiting."""

    class Stopping(BaseException):
        pass

    outcomes = _three_behind_a_failing_statement(observer, statements, monkeypatch, Stopping)
    # The thread that wrote the shared statement (the first of the three) stopped; the
    # other two were stored.
    assert outcomes == ["created", "raised Stopping", "created", "created"]
    assert _count(Checklist) == 3


def test_without_a_database_each_checklist_of_the_statement_is_told_so_at_once(
    observer: Principal, statements: Statements, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database gone (or no connection free): every checklist of the statement gets
    the error (a 503 for the phone to send again), none is tried again alone."""
    outcomes = _three_behind_a_failing_statement(
        observer,
        statements,
        monkeypatch,
        lambda: DBAPIError.instance(
            None,
            None,
            psycopg.OperationalError("server closed the connection"),
            psycopg.Error,
            connection_invalidated=True,
        ),  # fmt: skip
    )
    assert outcomes == ["created"] + ["database OperationalError"] * 3
    assert [len(ids) for ids in statements.sent] == [1, 3]
    assert _count(Checklist) == 1


def test_paced_statements_start_a_gap_apart_and_what_arrives_meanwhile_goes_together(
    observer: Principal, statements: Statements
) -> None:
    """`group.pace` (the intake's pacing, while the findings are behind): the next
    statement waits until a gap after the last began, and takes whatever arrived by then."""
    statements.held = 0
    settings = get_settings()
    gap = 1.0
    group.pace(gap)
    try:
        assert _post(observer, checklist_payload("S-1"), settings)() == "created"
        posts = [_post(observer, checklist_payload("S-2"), settings) for _ in range(3)]
        assert [p() for p in posts] == ["created"] * 3
    finally:
        group.pace(0.0)
    assert [len(ids) for ids in statements.sent] == [1, 3]
    assert statements.at[1] - statements.at[0] >= gap * 0.95
    assert _count(Checklist) == 4
    # Unpaced again: the next is written at once.
    before = time.monotonic()
    assert _post(observer, checklist_payload("S-1"), settings)() == "created"
    assert statements.at[2] - before < gap / 2
