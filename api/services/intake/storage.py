"""Where intake meets the database: the look-ups the rules need, and the two writers.

What a stored checklist is, is defined once: `checklist_row` builds every column of the
version's row and `ANSWER_FIELDS` names the columns of its answers, and both writers store
exactly those values. `tests/services/test_intake_writers.py` stores the same checklists
through each and compares the rows column by column.

- The portable writer (`write_portable`, any database): the row with `ON CONFLICT DO
  NOTHING`, the flip of the version a correction replaces, the answers in one executemany,
  the declared attachments and the change outbox rows.
- The one-statement writer (`write_statement`, PostgreSQL): the same rows in one statement
  (`_store_sql`), which also finds the station and, for an observer, the assignment itself.
  `write_statement_committed` sends it to the driver in autocommit: an observer's new
  checklist, the commonest post by far, then costs one round trip.

Both leave the row unwritten on a clash (a resend racing itself, or two corrections of one
version), and then write nothing else; the core decides whether that is a replay or a
conflict. The database's constraints guarantee exactly-once storage, so several API
processes may receive the same checklist at once and still store it once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from operator import attrgetter
from typing import Any, Literal

import orjson
from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    Row,
    String,
    Uuid,
    and_,
    bindparam,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from api.checklist_schema import AnswerRow
from api.config import Settings
from api.db import driver_autocommit, driver_sql
from api.deps import Principal
from api.services import attachments as attachment_service
from api.services import changes
from api.services.intake import rules
from models import Answer, Assignment, Checklist, ChecklistTemplate, Station
from models.attachment import AttachmentDeclared
from models.base import table_of
from models.checklist import ChecklistPublic, ChecklistSubmit

CL = table_of(Checklist)
AN = table_of(Answer)
ST = table_of(Station)
TPL = table_of(ChecklistTemplate)
ASG = table_of(Assignment)

Writer = Literal["statement", "portable"]
STATEMENT: Writer = "statement"
PORTABLE: Writer = "portable"


def writer_for(dialect: str) -> Writer:
    """The writer intake uses on this database unless told otherwise."""
    return STATEMENT if dialect == "postgresql" else PORTABLE


# --- what a stored checklist is ------------------------------------------------------------


def checklist_row(
    body: ChecklistSubmit,
    caller: Principal,
    observer_id: uuid.UUID,
    station_id: uuid.UUID | None,
    template_id: uuid.UUID,
    answers: list[AnswerRow],
    chain: rules.Chain,
    skew_s: int | None,
    received_at: datetime,
    raw: str,
    digest: str,
    settings: Settings,
) -> dict[str, Any]:
    """Every column of the version's row. `station_id` may be None where the one-statement
    writer finds the station by its code."""
    return {
        "id": body.id,
        "root_id": chain.root_id,
        "version": chain.version,
        "replaces_id": body.replaces,
        "is_latest": True,
        "mission_id": caller.mission_id,
        "observer_id": observer_id,
        "station_id": station_id,
        "template_id": template_id,
        "phase": body.phase.value,
        "observed_at": body.observed_at,
        "observed_utc_offset_min": rules.utc_offset_min(body.observed_at),
        "device_sent_at": body.sent_at,
        "clock_skew_s": skew_s,
        "clock_flagged": rules.clock_flagged(skew_s, settings.clock_skew_flag_s),
        "critical": any(a.critical for a in answers),
        "received_at": received_at,
        "credential_id": caller.credential_id,
        "payload": raw,
        "payload_sha256": digest,
        "review_state": "received",
        "quarantined": chain.quarantined,
        "hold": chain.hold,
    }


# The answer columns besides `checklist_id`, in the order the one-statement writer's JSON
# array carries them.
ANSWER_FIELDS = ("question_code", "position", "value", "number", "critical", "kind")
_answer_values = attrgetter(*ANSWER_FIELDS)


@dataclass(slots=True)
class NewVersion:
    """A checklist version as the writers take it."""

    row: dict[str, Any]  # `checklist_row`
    answers: list[AnswerRow]
    station_code: str
    attachments: list[AttachmentDeclared] | None


@dataclass(frozen=True, slots=True)
class Written:
    stored: bool  # False: the id or the version chain clashed, and nothing was written
    flipped: int  # versions marked no longer latest (1 for a stored correction)


# --- reading back --------------------------------------------------------------------------

PUBLIC_COLUMNS = (
    CL.c.id,
    CL.c.root_id,
    CL.c.version,
    CL.c.replaces_id,
    CL.c.is_latest,
    CL.c.observer_id,
    CL.c.phase,
    CL.c.observed_at,
    CL.c.observed_utc_offset_min,
    CL.c.clock_skew_s,
    CL.c.clock_flagged,
    CL.c.received_at,
    CL.c.review_state,
    CL.c.quarantined,
    CL.c.hold,
    ST.c.code.label("station"),
    TPL.c.code.label("template"),
    TPL.c.version.label("template_version"),
)


def public_query() -> Any:
    return select(*PUBLIC_COLUMNS).select_from(
        CL.join(ST, ST.c.id == CL.c.station_id).join(TPL, TPL.c.id == CL.c.template_id)
    )


def public(row: Row[Any]) -> ChecklistPublic:
    data = dict(row._mapping)
    # Show the observation time as the phone gave it: in its own UTC offset.
    offset = timezone(timedelta(minutes=data["observed_utc_offset_min"]))
    data["observed_at"] = data["observed_at"].astimezone(offset)
    return ChecklistPublic.model_validate(data)


def public_of_new(row: dict[str, Any], body: ChecklistSubmit) -> ChecklistPublic:
    """What a just-stored row reads back as, without reading it back."""
    return ChecklistPublic(
        **{k: v for k, v in row.items() if k in ChecklistPublic.model_fields},
        station=body.station,
        template=body.template,
        template_version=body.template_version,
    )


@dataclass(frozen=True, slots=True)
class AlreadyStored:
    checklist: ChecklistPublic
    digest: str
    mission_id: uuid.UUID


def already_stored(session: Session, checklist_id: uuid.UUID) -> AlreadyStored | None:
    row = session.execute(
        public_query()
        .add_columns(CL.c.payload_sha256, CL.c.mission_id)
        .where(CL.c.id == checklist_id)
    ).first()
    if row is None:
        return None
    return AlreadyStored(public(row), row.payload_sha256, row.mission_id)


def replaced(session: Session, checklist_id: uuid.UUID) -> rules.Replaced | None:
    """The version a correction names, as the rules take it."""
    row = session.execute(
        select(
            CL.c.id,
            CL.c.root_id,
            CL.c.version,
            CL.c.is_latest,
            CL.c.observer_id,
            CL.c.mission_id,
            CL.c.quarantined,
            CL.c.review_state,
            CL.c.hold,
        ).where(CL.c.id == checklist_id)
    ).first()
    if row is None:
        return None
    return rules.Replaced(
        row.id,
        row.root_id,
        row.version,
        bool(row.is_latest),
        row.observer_id,
        row.mission_id,
        bool(row.quarantined),
        row.review_state,
        row.hold,
    )


@dataclass(frozen=True, slots=True)
class _IntakeSQL:
    lookup: Any
    insert_checklist: Any


@lru_cache(maxsize=4)
def _intake_sql(dialect: str) -> _IntakeSQL:
    """The intake's statements, built once: SQLAlchemy memoises a statement object's cache
    key, so executing a prebuilt one with parameters skips building and hashing a new
    expression tree on every request (a third of the intake's CPU when built per call).
    They run on the session's connection (Core), which skips the ORM's execution layer:
    about 50 µs of CPU per statement."""
    already = select(CL.c.id).where(CL.c.id == bindparam("cid")).scalar_subquery()
    lookup = (
        select(ST.c.id, ASG.c.observer_id.label("assigned"), already.label("already"))
        .select_from(
            ST.outerjoin(
                ASG, and_(ASG.c.station_id == ST.c.id, ASG.c.observer_id == bindparam("oid"))
            )
        )
        .where(ST.c.mission_id == bindparam("mid"), ST.c.code == bindparam("code"))
    )
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # No conflict target: a clash on the id (a resend racing itself) or on the version
    # chain (two corrections of one version) both leave the row unwritten.
    insert_checklist = insert(CL).on_conflict_do_nothing().returning(CL.c.id)
    return _IntakeSQL(lookup, insert_checklist)


@dataclass(frozen=True, slots=True)
class StationSeen:
    id: uuid.UUID
    assigned: bool  # to the observer who sends
    already: bool  # the checklist id is stored already (a resend)


def station_and_resend(
    session: Session,
    mission_id: uuid.UUID,
    code: str,
    observer_id: uuid.UUID | None,
    cid: uuid.UUID,
) -> StationSeen | None:
    """One round trip for the common case: the station, the observer's assignment to it,
    and whether this id is already stored. None: no such station in the mission."""
    sql = _intake_sql(session.get_bind().dialect.name)
    row = (
        session.connection()
        .execute(sql.lookup, {"cid": cid, "oid": observer_id, "mid": mission_id, "code": code})
        .first()
    )
    if row is None:
        return None
    return StationSeen(row.id, row.assigned is not None, row.already is not None)


# --- the portable writer -----------------------------------------------------------------


def write_portable(session: Session, new: NewVersion, settings: Settings) -> Written:
    """Store a version with plain statements, in the session's transaction."""
    conn = session.connection()
    row = new.row
    sql = _intake_sql(conn.dialect.name)
    if conn.execute(sql.insert_checklist, row).first() is None:
        return Written(stored=False, flipped=0)
    flipped = 0
    replaces = row["replaces_id"]
    if replaces is not None:
        flipped = conn.execute(
            update(CL).where(CL.c.id == replaces, CL.c.is_latest.is_(True)).values(is_latest=False)
        ).rowcount
    if new.answers:
        insert_answers(session, row["id"], new.answers)
    attachment_service.record_declared(
        session, settings, row["mission_id"], row["id"], new.attachments
    )
    changes.record(
        session,
        row["mission_id"],
        [row["id"]],
        changes.STORED,
        [replaces] if replaces is not None else [],
        at=row["received_at"],
    )
    return Written(stored=True, flipped=flipped)


def insert_answers(session: Session, checklist_id: uuid.UUID, rows: list[AnswerRow]) -> None:
    """Store one checklist's typed answers (`AnswerRow`s from the template's validation)."""
    session.connection().execute(
        AN.insert(),
        [
            dict(zip(ANSWER_FIELDS, _answer_values(r), strict=True), checklist_id=checklist_id)
            for r in rows
        ],
    )


# --- the one-statement writer (PostgreSQL) -------------------------------------------------

# Every column of the checklist row, named as in the row `checklist_row` builds.
_CL_COLUMNS = tuple(c.name for c in CL.columns)
_PG = postgresql.dialect()
# An answer's columns from its JSON array `e` (`ANSWER_FIELDS`), each of its column's type.
_ANSWER = ", ".join(
    f"e->>{i}"
    if isinstance(AN.c[name].type, String)
    else f"CAST(e->>{i} AS {AN.c[name].type.compile(dialect=_PG)})"
    for i, name in enumerate(ANSWER_FIELDS)
)


def _store_sql() -> Any:
    """PostgreSQL stores a checklist in one statement: it finds the station (and, for an
    observer, their assignment to it), then writes the row, its answers, the correction's
    flip of the version it replaces, and the outbox rows. Each statement costs a round trip
    and 100 to 150 µs of CPU in the driver and SQLAlchemy; this saves three or four of them.
    The answers travel as one JSON array of `ANSWER_FIELDS` per answer: the driver dumps it
    in C, where array parameters are dumped element by element in Python. The row's insert
    does nothing on a clash (a resend racing itself, or two corrections of one version), or
    when the station is unknown or not the observer's, and then nothing else in the
    statement writes either. Each parameter is cast to its column's type: an INSERT …
    SELECT does not lend the columns' types to its parameters. (A cast to `varchar(n)`
    cuts an over-long text where an assignment would refuse it; the row's text columns
    hold the server's own codes and digest, never that long.)"""
    row = ", ".join(
        "s.id" if c.name == "station_id" else f"CAST(:{c.name} AS {c.type.compile(dialect=_PG)})"
        for c in CL.columns
    )
    return text(
        "WITH s AS (SELECT station.id FROM station WHERE station.mission_id = CAST(:mission_id"
        " AS uuid) AND station.code = :station_code AND (NOT :must_be_assigned OR EXISTS"
        " (SELECT 1 FROM assignment WHERE assignment.station_id = station.id"
        " AND assignment.observer_id = CAST(:observer_id AS uuid)))), "
        f"c AS (INSERT INTO checklist ({', '.join(_CL_COLUMNS)}) SELECT {row} FROM s"
        " ON CONFLICT DO NOTHING RETURNING id), "
        f"a AS (INSERT INTO answer (checklist_id, {', '.join(ANSWER_FIELDS)})"
        f" SELECT c.id, {_ANSWER} FROM c, json_array_elements(CAST(:answers AS json)) AS e), "
        "f AS (UPDATE checklist SET is_latest = false WHERE id = CAST(:replaces_id AS uuid)"
        " AND is_latest AND EXISTS (SELECT 1 FROM c) RETURNING id), "
        "g AS (INSERT INTO checklist_change (mission_id, checklist_id, created_at, kind)"
        " SELECT CAST(:mission_id AS uuid), x.id, CAST(:received_at AS timestamptz), x.kind"
        f" FROM c, unnest(ARRAY[c.id, CAST(:replaces_id AS uuid)], ARRAY['{changes.STORED}',"
        f" '{changes.REPLACED}']) AS x(id, kind) WHERE x.id IS NOT NULL) "
        "SELECT (SELECT id FROM c) AS id, (SELECT count(*) FROM f) AS flipped"
    ).columns(id=Uuid(), flipped=Integer())


_STORE_PG = _store_sql()
_STORE_PG_DRIVER = driver_sql(_STORE_PG)  # the same, for psycopg directly


def _statement_params(new: NewVersion, must_be_assigned: bool) -> dict[str, Any]:
    answers = orjson.dumps([_answer_values(r) for r in new.answers])
    return new.row | {
        "answers": answers.decode(),
        "station_code": new.station_code,
        "must_be_assigned": must_be_assigned,
    }


def write_statement(
    session: Session, new: NewVersion, settings: Settings, must_be_assigned: bool
) -> Written:
    """Store a version in one statement, in the session's transaction; with
    `must_be_assigned`, only at a station assigned to the row's observer."""
    conn: Connection = session.connection()
    result = conn.execute(_STORE_PG, _statement_params(new, must_be_assigned)).one()
    if result.id is None:
        return Written(stored=False, flipped=0)
    # The statement has no room for the declared files; they are rare, and the same
    # function as the portable writer's records them in the same transaction.
    attachment_service.record_declared(
        session, settings, new.row["mission_id"], new.row["id"], new.attachments
    )
    return Written(stored=True, flipped=result.flipped)


def _batch_sql() -> str:
    """The one-statement writer for many observers' new checklists at once (`group`): the
    same rows as `_store_sql` with `must_be_assigned`, for every checklist of one JSON
    array (`batch_row`), committed together. A checklist whose station is unknown or not
    its observer's, or whose id is stored already, is left out, and the others stored;
    the statement returns the ids it stored. The ids in one array must differ, and rows
    are inserted in the order of their ids: two such statements sharing ids (a resend
    racing itself through two processes) wait for each other in one order, never in a
    deadlock. Text is read as text and cast to its column's type as `_store_sql` casts its
    parameters (a `varchar(n)` in the record would refuse an over-long value where the
    CAST cuts it), so that both store the same values."""

    def text_(c: Any) -> bool:  # String, or sqlmodel's AutoString that wraps one
        return isinstance(getattr(c.type, "impl_instance", c.type), String)

    record = ", ".join(
        f"{c.name} {'text' if text_(c) else c.type.compile(dialect=_PG)}"
        for c in CL.columns
        if c.name != "station_id"
    )
    row = ", ".join(
        "s.station_id"
        if c.name == "station_id"
        else f"CAST(r.{c.name} AS {c.type.compile(dialect=_PG)})"
        if text_(c)
        else f"r.{c.name}"
        for c in CL.columns
    )
    return (
        f"WITH r AS (SELECT * FROM json_to_recordset(%(rows)s::json) AS x({record},"
        " station_code text, answers json)), "
        "s AS (SELECT r.id, station.id AS station_id FROM r JOIN station"
        " ON station.mission_id = r.mission_id AND station.code = r.station_code"
        " WHERE EXISTS (SELECT 1 FROM assignment WHERE assignment.station_id = station.id"
        " AND assignment.observer_id = r.observer_id)), "
        f"c AS (INSERT INTO checklist ({', '.join(_CL_COLUMNS)}) SELECT {row}"
        " FROM r JOIN s ON s.id = r.id ORDER BY r.id"
        " ON CONFLICT DO NOTHING RETURNING id), "
        f"a AS (INSERT INTO answer (checklist_id, {', '.join(ANSWER_FIELDS)})"
        f" SELECT c.id, {_ANSWER} FROM c JOIN r ON r.id = c.id,"
        " json_array_elements(r.answers) AS e), "
        "g AS (INSERT INTO checklist_change (mission_id, checklist_id, created_at, kind)"
        f" SELECT r.mission_id, c.id, r.received_at, '{changes.STORED}' FROM c"
        " JOIN r ON r.id = c.id) "
        "SELECT id FROM c"
    )


_BATCH_PG_DRIVER = _batch_sql()


def batch_row(new: NewVersion) -> dict[str, Any]:
    """An observer's new checklist without attachments as `write_batch_committed` takes
    it: its row, its station's code and its answers."""
    assert new.row["replaces_id"] is None and not new.attachments
    return new.row | {
        "station_code": new.station_code,
        "answers": [_answer_values(r) for r in new.answers],
    }


def write_batch_committed(engine: Engine, rows: list[dict[str, Any]]) -> set[uuid.UUID]:
    """The ids stored of observers' new checklists (`batch_row`s, no two with one id), by
    one statement that commits them together, sent to the driver directly."""
    params = {"rows": orjson.dumps(rows).decode()}
    with driver_autocommit(engine) as conn, conn.cursor() as cur:
        return {row[0] for row in cur.execute(_BATCH_PG_DRIVER, params)}


def write_statement_committed(engine: Engine, new: NewVersion) -> bool:
    """Whether an observer's new checklist without attachments was stored, by one statement
    that commits on its own, sent to the driver directly (`driver_autocommit`)."""
    assert new.row["replaces_id"] is None and not new.attachments
    params = _statement_params(new, True)
    with driver_autocommit(engine) as conn, conn.cursor() as cur:
        row = cur.execute(_STORE_PG_DRIVER, params).fetchone()
    return row is not None and row[0] is not None
