"""The two intake writers store the same rows: the same checklists (new ones, resends,
corrections of accepted, rejected and quarantined versions, files declared, refusals) go
through each, and every stored row is compared column by column with the portable writer's.

Each way runs the same scenario from empty checklist tables, with the intake's clock stopped
at the same instant for each step, so even `received_at` must match."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from api.config import get_settings
from api.db import session_scope
from api.deps import Principal
from api.services import attachments, audit, changes, review
from api.services import templates as template_service
from api.services.intake import Refused, core, intake, storage
from models import Credential, Role
from models.checklist import ChecklistSubmit
from models.review import ReviewCreate
from tests.factories import (
    answers_for,
    checklist_payload,
    make_mission,
    make_observer,
    make_station,
    make_token,
)

pytestmark = pytest.mark.postgres_only

# (writer, savepoint): the one-statement writer committing on its own (the JSON route's
# new checklists) and inside a transaction (a batch), and the portable writer both ways.
WAYS = [
    ("statement", False),
    ("statement", True),
    ("portable", False),
    ("portable", True),
]
START = datetime(2026, 3, 15, 3, 0, tzinfo=UTC)

# Keys that differ by nature between two runs: serial and random ones.
NOT_COMPARED = {
    "checklist_change": {"id"},
    "attachment": {"id"},
    "review_event": {"id"},
    "audit_event": {"id"},
}
ORDER = {
    "checklist": "received_at, id",
    "answer": "checklist_id, question_code, position",
    "checklist_change": "checklist_id, kind",
    "attachment": "checklist_id, name",
    "review_event": "checklist_id, hold_after, state_after",
    "audit_event": "target",
}


def _principal(session: Session, credential_id: uuid.UUID) -> Principal:
    cred = session.get(Credential, credential_id)
    assert cred is not None
    return Principal(cred.id, cred.mission_id, Role(cred.role), cred.observer_id)


def _credential_id(session: Session, **where: Any) -> uuid.UUID:
    q = select(Credential.id).filter_by(**where)  # type: ignore[call-overload]
    found = session.scalar(q)
    assert found is not None
    return found


@pytest.fixture
def world(session: Session) -> dict[str, Any]:
    mission, _ = make_mission(session)
    for code in ("S-1", "S-2", "S-3"):
        make_station(session, mission.id, code)
    observer, _ = make_observer(session, mission.id, ["S-1", "S-2"])
    make_token(session, mission.id, Role.analyst)
    obs = _principal(session, _credential_id(session, observer_id=observer.id))
    analyst = _principal(session, _credential_id(session, mission_id=mission.id, role="analyst"))
    # The template is in the process's cache before the first post, as in a running server:
    # an observer's new checklist then meets a session with no transaction open yet.
    assert template_service.for_intake(session, mission.id, "default", 1) is not None
    session.commit()
    return {"observer": obs, "analyst": analyst, "scenario": _scenario()}


def _declared(name: str, data: bytes) -> dict[str, Any]:
    return {
        "name": name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "content_type": "image/jpeg",
    }


Step = tuple[str, Any]  # ("post", (who, item)) or ("review", (who, checklist id, decision))


def _scenario() -> list[Step]:
    """The same items for every way; ids made once."""
    almaty = timezone(timedelta(hours=5))
    observed = (START - timedelta(minutes=20)).astimezone(almaty).isoformat()
    sent = (START - timedelta(seconds=45)).isoformat()
    a = checklist_payload("S-1", "voting", observed_at=observed, sent_at=sent)
    b = checklist_payload(
        "S-2",
        "closing",
        observed_at=observed,
        attachments=[_declared("protocol.jpg", b"p"), _declared("queue.jpg", b"q")],
    )
    c = checklist_payload("S-1", "opening", observed_at=observed)
    a_fix = checklist_payload(
        "S-1",
        "voting",
        answers_for("voting", {"D9": "very_bad"}),
        observed_at=observed,
        replaces=a["id"],
    )
    b_fix = checklist_payload(
        "S-2", "closing", observed_at=observed, replaces=b["id"], answers=answers_for("closing")
    )
    phone_ahead = (START + timedelta(hours=2)).isoformat()  # a clock to flag
    c_fix = checklist_payload(
        "S-1", "opening", observed_at=observed, replaces=c["id"], sent_at=phone_ahead
    )
    c_fix_again = checklist_payload(
        "S-1",
        "opening",
        observed_at=observed,
        replaces=c_fix["id"],
        attachments=[_declared("fixed.jpg", b"f")],
    )
    return [
        ("post", ("observer", a)),
        ("post", ("observer", b)),
        ("post", ("observer", c)),
        ("post", ("observer", a | {"sent_at": START.isoformat()})),  # a resend: replay
        ("post", ("observer", b)),  # a resend with files: replay
        ("post", ("observer", a | {"phase": "opening", "answers": answers_for("opening")})),
        ("post", ("observer", a_fix)),
        ("post", ("observer", a_fix | {"id": str(uuid.uuid4())})),  # a already corrected
        ("post", ("analyst", checklist_payload("S-1", observed_at=observed))),  # observer only
        ("post", ("observer", checklist_payload("S-3", observed_at=observed))),  # not assigned
        ("review", ("analyst", b["id"], {"state": "rejected", "comment": "stamp missing"})),
        ("post", ("analyst", b_fix)),  # on hold: correction of a rejected version
        ("review", ("analyst", c["id"], {"quarantined": True, "comment": "observer unsure"})),
        ("post", ("observer", c_fix)),  # quarantined and on hold, like its version
        ("post", ("observer", c_fix_again)),  # still held: its version was waiting
        ("post", ("observer", c_fix_again)),  # a resend of a correction: replay
    ]


def _run(
    world: dict[str, Any], clock: list[datetime], writer: storage.Writer, savepoint: bool
) -> list[str]:
    """Each step in its own unit of work, as requests are, a second after the one before;
    what each post came to."""
    settings = get_settings()
    outcomes: list[str] = []
    for n, (kind, step) in enumerate(world["scenario"]):
        clock[0] = START + timedelta(seconds=n)
        who = world[step[0]]
        with session_scope() as s:
            if kind == "review":
                _, checklist_id, decision = step
                review.set_review(s, who, uuid.UUID(checklist_id), ReviewCreate(**decision))
                continue
            item = step[1]
            body = ChecklistSubmit.model_validate(item)
            raw = orjson.dumps(item).decode()
            try:
                out = intake(s, who, body, item, raw, settings, savepoint=savepoint, writer=writer)
            except Refused as exc:
                outcomes.append(f"{exc.refusal.kind} {exc.refusal.code}")
            else:
                outcomes.append("created" if out.created else "replay")
    return outcomes


def _rows() -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    with session_scope() as s:
        for table, order in ORDER.items():
            rows = s.execute(text(f"SELECT * FROM {table} ORDER BY {order}")).mappings().all()
            skip = NOT_COMPARED.get(table, set())
            out[table] = [{k: v for k, v in r.items() if k not in skip} for r in rows]
    return out


def _wipe() -> None:
    with session_scope() as s:
        s.execute(
            text(
                "TRUNCATE checklist, answer, checklist_change, attachment, review_event,"
                " audit_event CASCADE"
            )
        )


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """The clock of the intake and of what it writes through, stopped: it reads `clock[0]`,
    which `_run` sets for each step (the two writers' paths read it a different number of
    times)."""
    now = [START]
    for module in (core, changes, review, audit, attachments):
        monkeypatch.setattr(module, "utcnow", lambda: now[0])
    return now


@pytest.fixture
def writers_called(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How often each writer stored something, to be sure each way took its writer."""
    calls = {
        "write_statement_committed": 0,
        "write_batch_committed": 0,
        "write_statement": 0,
        "write_portable": 0,
    }
    for name in calls:
        real = getattr(storage, name)

        def counted(*args: Any, _real: Any = real, _name: str = name, **kw: Any) -> Any:
            calls[_name] += 1
            return _real(*args, **kw)

        monkeypatch.setattr(storage, name, counted)
    return calls


def _grouped(engine: Any, new: storage.NewVersion) -> bool:
    """An observer's new checklist stored by the statement that stores several at once
    (`group`), as the only one of its array."""
    return new.row["id"] in storage.write_batch_committed(engine, [storage.batch_row(new)])


def test_each_writer_stores_the_same_rows_column_by_column(
    world: dict[str, Any],
    clock: list[datetime],
    writers_called: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stored: dict[tuple[str, bool], dict[str, list[dict[str, Any]]]] = {}
    outcomes: dict[tuple[str, bool], list[str]] = {}
    used: dict[tuple[str, bool], dict[str, int]] = {}
    for writer, savepoint in [*WAYS, ("grouped", False)]:
        _wipe()
        before = dict(writers_called)
        with monkeypatch.context() as m:
            if writer == "grouped":
                m.setattr(storage, "write_statement_committed", _grouped)
            way = "statement" if writer == "grouped" else writer
            outcomes[writer, savepoint] = _run(world, clock, way, savepoint)  # type: ignore[arg-type]
        stored[writer, savepoint] = _rows()
        used[writer, savepoint] = {k: writers_called[k] - before[k] for k in writers_called}

    reference = ("portable", False)
    assert outcomes[reference] == [
        "created",
        "created",
        "created",
        "replay",
        "replay",
        "conflict id_reused_with_other_content",
        "created",
        "conflict not_latest_version",
        "invalid invalid_checklist",
        "invalid invalid_checklist",
        "created",
        "created",
        "created",
        "replay",
    ]
    ref = stored[reference]
    assert {t: len(r) for t, r in ref.items() if t != "answer"} == {
        "checklist": 7,
        "checklist_change": 7 + 4 + 2,  # seven versions stored, four replaced, two decisions
        "attachment": 3,
        "review_event": 2 + 3,  # two decisions, three holds recorded by the intake
        "audit_event": 4,  # four corrections, recorded by the intake itself
    }
    assert len(ref["answer"]) > 7
    posted = [step[1] for kind, step in world["scenario"] if kind == "post"]
    a, b, c, a_fix, b_fix, c_fix, c_fix_again = (
        uuid.UUID(posted[i]["id"]) for i in (0, 1, 2, 6, 10, 11, 12)
    )
    chains = {
        r["id"]: (r["root_id"], r["version"], r["is_latest"], r["hold"], r["quarantined"])
        for r in ref["checklist"]
    }
    assert chains == {
        a: (a, 1, False, None, False),
        a_fix: (a, 2, True, None, False),
        b: (b, 1, False, None, False),
        b_fix: (b, 2, True, "correction_of_rejected", False),
        c: (c, 1, False, None, True),
        c_fix: (c, 2, False, "correction_of_quarantined", True),
        c_fix_again: (c, 3, True, "correction_of_quarantined", True),
    }
    assert [r["clock_flagged"] for r in ref["checklist"] if r["id"] == c_fix] == [True]
    corrections = {r["target"]: r["after"]["answers"] for r in ref["audit_event"]}
    assert corrections[f"checklist/{a_fix}"] == {"D9": "very_bad"}
    for way in [*WAYS, ("grouped", False)]:
        assert outcomes[way] == outcomes[reference], way
        for table, rows in ref.items():
            assert stored[way][table] == rows, (way, table)

    # Each way went through its own writer. The JSON route's way tries every observer's new
    # checklist without files in one autocommit statement first: two new ones, two resends
    # of one of them, one at a station not the observer's (the statement stores nothing for
    # those three, and the full path says why).
    assert used["statement", False]["write_statement_committed"] == 5
    assert used["grouped", False]["write_batch_committed"] == 5
    for way in WAYS:
        assert used[way]["write_batch_committed"] == 0, way
    assert used["statement", True]["write_statement_committed"] == 0
    for savepoint in (False, True):
        assert used["statement", savepoint]["write_portable"] == 0
        assert used["statement", savepoint]["write_statement"] > 0
        assert used["portable", savepoint]["write_portable"] > 0
        assert used["portable", savepoint]["write_statement"] == 0
        assert used["portable", savepoint]["write_statement_committed"] == 0
