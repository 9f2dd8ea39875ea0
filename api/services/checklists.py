"""Checklist intake: idempotent by the phone's UUID, validated, versioned, set-based.

The database guarantees exactly-once storage (primary key on the client UUID with
`ON CONFLICT DO NOTHING`, unique `replaces_id` and `(root_id, version)`), so several API
processes may receive the same checklist at once and still store it once.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    Row,
    Uuid,
    and_,
    bindparam,
    false,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.checklist_schema import AnswerError
from api.config import Settings
from api.db import driver_autocommit, driver_sql
from api.deps import Principal
from api.errors import Conflict, Invalid, NotFound
from api.services import attachments as attachment_service
from api.services import audit, changes, review
from api.services import templates as template_service
from models import Answer, Assignment, Checklist, ChecklistTemplate, Role, Station
from models.base import table_of, utcnow
from models.checklist import ChecklistDetail, ChecklistPublic, ChecklistSubmit

CL = table_of(Checklist)
AN = table_of(Answer)
ST = table_of(Station)
TPL = table_of(ChecklistTemplate)
ASG = table_of(Assignment)


def content_hash(item: Any) -> str:
    """Same content, same hash, whatever the key order or white space."""
    return hashlib.sha256(orjson.dumps(item, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _sent_content(item: Any) -> Any:
    """The checklist without its send time: a phone stamps `sent_at` anew on every attempt,
    and a resend after a dropped answer must still be a replay, not a conflict."""
    if isinstance(item, dict) and "sent_at" in item:
        return {k: v for k, v in item.items() if k != "sent_at"}
    return item


@dataclass(slots=True)
class Outcome:
    checklist: ChecklistPublic
    created: bool


_PUBLIC_COLUMNS = (
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


def _public_query() -> Any:
    return select(*_PUBLIC_COLUMNS).select_from(
        CL.join(ST, ST.c.id == CL.c.station_id).join(TPL, TPL.c.id == CL.c.template_id)
    )


def _public(row: Row[Any]) -> ChecklistPublic:
    data = dict(row._mapping)
    # Show the observation time as the phone gave it: in its own UTC offset.
    offset = timezone(timedelta(minutes=data["observed_utc_offset_min"]))
    data["observed_at"] = data["observed_at"].astimezone(offset)
    return ChecklistPublic.model_validate(data)


def _stored(
    session: Session, checklist_id: uuid.UUID
) -> tuple[ChecklistPublic, str, uuid.UUID] | None:
    row = session.execute(
        _public_query()
        .add_columns(CL.c.payload_sha256, CL.c.mission_id)
        .where(CL.c.id == checklist_id)
    ).first()
    if row is None:
        return None
    return _public(row), row.payload_sha256, row.mission_id


def _replay(
    stored: tuple[ChecklistPublic, str, uuid.UUID], digest: str, principal: Principal
) -> Outcome:
    public, stored_digest, mission_id = stored
    if mission_id != principal.mission_id or (
        principal.role == Role.observer and public.observer_id != principal.observer_id
    ):
        # Never reveal another mission's or observer's checklist, even by its id.
        raise Conflict(
            "this checklist id is already used; make a new id for a new checklist", code="id_taken"
        )
    if stored_digest != digest:
        raise Conflict(
            f"checklist {public.id} was already received with other content; "
            "send a correction with a new id and `replaces` to change it",
            code="id_reused_with_other_content",
        )
    return Outcome(public, created=False)


@dataclass(frozen=True, slots=True)
class _IntakeSQL:
    lookup: Any
    insert_checklist: Any
    one_statement: bool  # PostgreSQL: `_STORE_PG` stores a checklist in one statement


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
    insert_checklist = insert(CL).on_conflict_do_nothing().returning(CL.c.id)
    return _IntakeSQL(lookup, insert_checklist, one_statement=dialect == "postgresql")


# Every column of the checklist row, named as in the `values` that `_values` builds.
_CL_COLUMNS = tuple(c.name for c in CL.columns)


def _store_sql() -> Any:
    """PostgreSQL stores a checklist in one statement: it finds the station (and, for an
    observer, their assignment to it), then writes the row, its answers, the correction's
    flip of the version it replaces, and the outbox rows. Each statement costs a round trip
    and 100 to 150 µs of CPU in the driver and SQLAlchemy; this saves three or four of them.
    The answers travel as one JSON array of [code, position, value, number, critical, kind]:
    the driver dumps it in C, where array parameters are dumped element by element in
    Python. The row's insert does nothing on a clash (a resend racing itself, or two
    corrections of one version), or when the station is unknown or not the observer's, and
    then nothing else in the statement writes either. Each parameter is cast to its column's
    type: an INSERT … SELECT does not lend the columns' types to its parameters."""
    pg = postgresql.dialect()
    row = ", ".join(
        "s.id" if c.name == "station_id" else f"CAST(:{c.name} AS {c.type.compile(dialect=pg)})"
        for c in CL.columns
    )
    return text(
        "WITH s AS (SELECT station.id FROM station WHERE station.mission_id = CAST(:mission_id"
        " AS uuid) AND station.code = :station_code AND (NOT :must_be_assigned OR EXISTS"
        " (SELECT 1 FROM assignment WHERE assignment.station_id = station.id"
        " AND assignment.observer_id = CAST(:observer_id AS uuid)))), "
        f"c AS (INSERT INTO checklist ({', '.join(_CL_COLUMNS)}) SELECT {row} FROM s"
        " ON CONFLICT DO NOTHING RETURNING id), "
        "a AS (INSERT INTO answer (checklist_id, question_code, position, value, number,"
        " critical, kind) SELECT c.id, e->>0, CAST(e->>1 AS smallint), e->>2,"
        " CAST(e->>3 AS bigint), CAST(e->>4 AS boolean), e->>5"
        " FROM c, json_array_elements(CAST(:answers AS json)) AS e), "
        "f AS (UPDATE checklist SET is_latest = false WHERE id = CAST(:flip AS uuid)"
        " AND is_latest AND EXISTS (SELECT 1 FROM c) RETURNING id), "
        "g AS (INSERT INTO checklist_change (mission_id, checklist_id, created_at, kind)"
        " SELECT CAST(:mission_id AS uuid), x.id, CAST(:received_at AS timestamptz), x.kind"
        " FROM c, unnest(ARRAY[c.id, CAST(:flip AS uuid)], ARRAY['stored', 'replaced'])"
        " AS x(id, kind) WHERE x.id IS NOT NULL) "
        "SELECT (SELECT id FROM c) AS id, (SELECT count(*) FROM f) AS flipped"
    ).columns(id=Uuid(), flipped=Integer())


_STORE_PG = _store_sql()
_STORE_PG_DRIVER = driver_sql(_STORE_PG)  # the same, for psycopg directly


def _store_params(
    values: dict[str, Any], rows: list[Any], station: str, must_be_assigned: bool
) -> dict[str, Any]:
    answers = orjson.dumps(
        [[r.question_code, r.position, r.value, r.number, r.critical, r.kind] for r in rows]
    )
    return values | {
        "answers": answers.decode(),
        "flip": values["replaces_id"],
        "station_code": station,
        "must_be_assigned": must_be_assigned,
    }


def _store_pg(
    conn: Connection, values: dict[str, Any], rows: list[Any], station: str, must_be_assigned: bool
) -> tuple[bool, int]:
    """(stored, versions flipped) for one checklist, in one statement, in the caller's
    transaction."""
    row = conn.execute(_STORE_PG, _store_params(values, rows, station, must_be_assigned)).one()
    return row.id is not None, row.flipped


def _store_pg_committed(
    engine: Engine, values: dict[str, Any], rows: list[Any], station: str
) -> bool:
    """Whether an observer's new checklist was stored, by one statement that commits on its
    own, sent to the driver directly (`driver_autocommit`)."""
    params = _store_params(values, rows, station, True)
    with driver_autocommit(engine) as conn, conn.cursor() as cur:
        row = cur.execute(_STORE_PG_DRIVER, params).fetchone()
    return row is not None and row[0] is not None


def insert_answers(session: Session, checklist_id: uuid.UUID, rows: list[Any]) -> None:
    """Store one checklist's typed answers (`AnswerRow`s from the template's validation)."""
    session.connection().execute(
        AN.insert(),
        [
            {
                "checklist_id": checklist_id,
                "question_code": r.question_code,
                "position": r.position,
                "value": r.value,
                "number": r.number,
                "critical": r.critical,
                "kind": r.kind,
            }
            for r in rows
        ],
    )


# What `checklist.clock_skew_s` (a 4-byte INTEGER) holds: about 68 years either way. A
# phone clock further off than that (a `sent_at` in 2099) is no clock to correct by; the
# checklist is that item's `invalid`, where it used to overflow the column and fail its batch.
MAX_CLOCK_SKEW_S = 2**31 - 1


def clock_skew_error(skew_s: int) -> dict[str, Any] | None:
    """The problem with a phone clock this many seconds behind the server's, if any."""
    if abs(skew_s) <= MAX_CLOCK_SKEW_S:
        return None
    return _err(
        ["sent_at"],
        "implausible_clock",
        f"the phone's clock is {abs(skew_s) // 31_557_600} years off; set its date and send again",
    )


@dataclass(slots=True)
class _Content:
    """What the checks of the content found: the template, the typed answers, the clock."""

    tpl: Any
    rows: list[Any]
    skew_s: int | None
    errors: list[dict[str, Any]]


def _check_content(
    session: Session,
    mission_id: uuid.UUID,
    body: ChecklistSubmit,
    settings: Settings,
    received_at: datetime,
) -> _Content:
    """The checks that need neither the station nor the version chain: the template and the
    answers, the phone's clock, the declared attachments."""
    errors: list[dict[str, Any]] = []
    tpl = template_service.for_intake(session, mission_id, body.template, body.template_version)
    rows: list[Any] = []
    if tpl is None:
        errors.append(
            _err(
                ["template"],
                "unknown_template",
                f"no template {body.template} version {body.template_version}",
            )
        )
    elif tpl.compiled is None:
        errors.append(
            _err(
                ["template_version"],
                "template_not_published",
                f"template {body.template} version {body.template_version} is not published",
            )
        )
    else:
        rows, answer_errors = tpl.compiled.validate(body.phase.value, body.answers)
        errors.extend(e.as_dict() for e in answer_errors)

    skew_s: int | None = None
    if body.sent_at is not None:
        skew_s = round((received_at - body.sent_at).total_seconds())
        problem = clock_skew_error(skew_s)
        if problem is not None:
            errors.append(problem)
            skew_s = None
    corrected = body.observed_at + timedelta(seconds=skew_s or 0)
    if corrected > received_at + timedelta(seconds=settings.future_tolerance_s):
        errors.append(
            _err(
                ["observed_at"],
                "in_future",
                "the observation time is in the future; check the phone's clock",
            )
        )

    errors.extend(attachment_service.check_declared(body.attachments, settings))
    return _Content(tpl, rows, skew_s, errors)


def _values(
    body: ChecklistSubmit,
    principal: Principal,
    observer_id: uuid.UUID,
    station_id: uuid.UUID | None,
    content: _Content,
    replaced: Any,
    received_at: datetime,
    raw: str,
    digest: str,
    settings: Settings,
) -> dict[str, Any]:
    """The checklist row. `station_id` may be None where `_STORE_PG` finds the station."""
    offset = body.observed_at.utcoffset() or timedelta(0)
    skew_s = content.skew_s
    return {
        "id": body.id,
        "root_id": replaced.root_id if replaced else body.id,
        "version": replaced.version + 1 if replaced else 1,
        "replaces_id": body.replaces,
        "is_latest": True,
        "mission_id": principal.mission_id,
        "observer_id": observer_id,
        "station_id": station_id,
        "template_id": content.tpl.id,
        "phase": body.phase.value,
        "observed_at": body.observed_at,
        "observed_utc_offset_min": int(offset.total_seconds() // 60),
        "device_sent_at": body.sent_at,
        "clock_skew_s": skew_s,
        "clock_flagged": skew_s is not None and abs(skew_s) > settings.clock_skew_flag_s,
        "received_at": received_at,
        "credential_id": principal.credential_id,
        "payload": raw,
        "payload_sha256": digest,
        "review_state": "received",
        # A quarantine holds the whole chain out of the findings until an analyst lifts it;
        # a correction must not be a way around it. The review state starts afresh, but a
        # correction of a rejected or quarantined version waits for an analyst (`hold`).
        "quarantined": bool(replaced.quarantined) if replaced else False,
        "hold": review.hold_for_correction(
            replaced.review_state, bool(replaced.quarantined), replaced.hold
        )
        if replaced
        else None,
    }


def _created(values: dict[str, Any], body: ChecklistSubmit) -> Outcome:
    public = ChecklistPublic(
        **{k: v for k, v in values.items() if k in ChecklistPublic.model_fields},
        station=body.station,
        template=body.template,
        template_version=body.template_version,
    )
    return Outcome(public, created=True)


def submit(
    session: Session,
    principal: Principal,
    body: ChecklistSubmit,
    item: Any,
    raw: str,
    settings: Settings,
    savepoint: bool = False,
) -> Outcome:
    """Store one checklist exactly once, or raise with every problem found.

    On PostgreSQL, when `session` has no transaction open yet and `savepoint` is false, an
    observer's new checklist is committed by its own statement at once: the caller must
    write nothing else that should commit or roll back with it (the intake route writes
    nothing else; a batch passes `savepoint`)."""
    digest = content_hash(_sent_content(item))
    sql = _intake_sql(session.get_bind().dialect.name)
    checked: tuple[datetime, _Content] | None = None
    if (
        sql.one_statement
        and principal.role == Role.observer
        and body.replaces is None
        and not body.attachments
    ):
        # Nearly every checklist is an observer's new one: checked, then stored in one round
        # trip by a statement that finds the station and the assignment itself. When that
        # statement stores nothing (an unknown or unassigned station, a resend) or a check
        # failed, the full path below looks everything up and says what is wrong or replays.
        received_at = utcnow()
        content = _check_content(session, principal.mission_id, body, settings, received_at)
        checked = (received_at, content)
        if not content.errors:
            assert principal.observer_id is not None
            values = _values(
                body,
                principal,
                principal.observer_id,
                None,
                content,
                None,
                received_at,
                raw,
                digest,
                settings,
            )
            nested = session.begin_nested() if savepoint else None
            try:
                bind = session.get_bind()
                if nested is None and not session.in_transaction() and isinstance(bind, Engine):
                    # Nothing else of this request writes (a new checklist is its own audit
                    # record), so the statement commits on its own: no BEGIN and no COMMIT,
                    # two round trips fewer. Durable all the same before the answer leaves.
                    written = _store_pg_committed(bind, values, content.rows, body.station)
                else:
                    written, _ = _store_pg(
                        session.connection(), values, content.rows, body.station, True
                    )
            except IntegrityError:
                if nested:  # a batch goes on with its other checklists
                    nested.rollback()
                raise
            if nested:
                nested.commit()
            if written:
                changes.announce(session)
                return _created(values, body)
    outcome = _submit_checked(
        session, principal, body, raw, digest, settings, savepoint, sql, checked
    )
    if outcome.created:
        changes.announce(session)  # PostgreSQL's statement wrote the outbox rows itself
    return outcome


def _submit_checked(
    session: Session,
    principal: Principal,
    body: ChecklistSubmit,
    raw: str,
    digest: str,
    settings: Settings,
    savepoint: bool,
    sql: _IntakeSQL,
    checked: tuple[datetime, _Content] | None,
) -> Outcome:
    """Every case: the station, a resend, a correction's version chain, then the content
    (`checked`: the content's checks where `submit` already made them, and when)."""
    mission_id = principal.mission_id
    observer_id = principal.observer_id

    # One round trip for the common case: the station, the observer's assignment to it,
    # and whether this id is already stored (a resend).
    station = (
        session.connection()
        .execute(
            sql.lookup,
            {"cid": body.id, "oid": observer_id, "mid": mission_id, "code": body.station},
        )
        .first()
    )
    if station is None or station.already is not None:
        stored = _stored(session, body.id)
        if stored is not None:
            return _replay(stored, digest, principal)

    received_at = checked[0] if checked else utcnow()
    errors: list[dict[str, Any]] = []
    if station is None:
        errors.append(
            _err(["station"], "unknown_station", f"no station {body.station!r} in this mission")
        )

    replaced = None
    if body.replaces is not None:
        replaced = session.execute(
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
            ).where(CL.c.id == body.replaces)
        ).first()
        if (
            replaced is None
            or replaced.mission_id != mission_id
            or (principal.role == Role.observer and replaced.observer_id != observer_id)
        ):
            errors.append(
                _err(
                    ["replaces"],
                    "unknown_checklist",
                    f"no checklist {body.replaces} of yours to correct",
                )
            )
            replaced = None
        elif not replaced.is_latest:
            raise Conflict(
                f"checklist {body.replaces} was already corrected; correct its latest version",
                code="not_latest_version",
            )
        else:
            observer_id = replaced.observer_id  # an analyst's correction stays the observer's
    elif principal.role != Role.observer:
        errors.append(
            _err(
                ["replaces"],
                "observer_only",
                "only observers post new checklists; analysts post corrections",
            )
        )

    if station is not None and principal.role == Role.observer and station.assigned is None:
        errors.append(
            _err(["station"], "not_assigned", f"station {body.station} is not assigned to you")
        )

    content = (
        checked[1] if checked else _check_content(session, mission_id, body, settings, received_at)
    )
    errors.extend(content.errors)
    if errors:
        raise Invalid(
            f"the checklist has {len(errors)} problem(s); nothing was stored",
            code="invalid_checklist",
            errors=errors,
        )
    assert station is not None and content.tpl is not None and observer_id is not None

    values = _values(
        body,
        principal,
        observer_id,
        station.id,
        content,
        replaced,
        received_at,
        raw,
        digest,
        settings,
    )
    rows = content.rows
    nested = session.begin_nested() if savepoint else None
    pg_store = sql.one_statement and not body.attachments
    flipped = 0
    try:
        if pg_store:
            # The station was checked above; the statement finds it again by its code.
            written, flipped = _store_pg(session.connection(), values, rows, body.station, False)
        else:
            # No conflict target: a clash on the id (a resend racing itself) or on the
            # version chain (two corrections of one version) both leave the row unwritten.
            written = session.connection().execute(sql.insert_checklist, values).first() is not None
        if not written:
            if nested:
                nested.rollback()
            again = _stored(session, body.id)
            if again is None:
                raise Conflict(
                    f"checklist {body.replaces} was corrected meanwhile", code="not_latest_version"
                )
            return _replay(again, digest, principal)
        if replaced is not None and not pg_store:
            flipped = (
                session.connection()
                .execute(
                    update(CL)
                    .where(CL.c.id == replaced.id, CL.c.is_latest.is_(True))
                    .values(is_latest=False)
                )
                .rowcount
            )
        if replaced is not None and flipped != 1:
            raise Conflict(
                f"checklist {replaced.id} was corrected meanwhile", code="not_latest_version"
            )
        if not pg_store:
            if rows:
                insert_answers(session, body.id, rows)
            attachment_service.record_declared(
                session, settings, mission_id, body.id, body.attachments
            )
            changes.record(
                session, mission_id, [body.id], changes.STORED, [replaced.id] if replaced else []
            )
        if nested:
            nested.commit()
    except IntegrityError as exc:
        if nested:
            nested.rollback()
        raise Conflict(
            "this version was corrected meanwhile by another request", code="not_latest_version"
        ) from exc
    except Conflict:
        if nested:
            nested.rollback()
        raise
    if replaced is not None:
        audit.record_correction(session, replaced.id, body.id, body.answers)
        if values["hold"] is not None:
            review.record_hold(
                session, principal, body.id, replaced.version, values["hold"], values["quarantined"]
            )
    return _created(values, body)


def _err(path: list[str | int], code: str, message: str) -> dict[str, Any]:
    return AnswerError(path, code, message).as_dict()


def _visible(principal: Principal) -> Any:
    if principal.role == Role.viewer:
        return false()  # dashboards get findings and exports, never a single checklist
    cond = CL.c.mission_id == principal.mission_id
    if principal.role == Role.observer:
        cond = and_(cond, CL.c.observer_id == principal.observer_id)
    return cond


def get_detail(session: Session, principal: Principal, checklist_id: uuid.UUID) -> ChecklistDetail:
    row = session.execute(
        _public_query()
        .add_columns(CL.c.payload)
        .where(CL.c.id == checklist_id, _visible(principal))
    ).first()
    if row is None:
        raise NotFound(f"no checklist {checklist_id} that you may read", code="checklist_not_found")
    answers = orjson.loads(row.payload).get("answers", {})
    return ChecklistDetail(**_public(row).model_dump(), answers=answers)


def versions(
    session: Session, principal: Principal, checklist_id: uuid.UUID
) -> list[ChecklistPublic]:
    root = session.scalar(select(CL.c.root_id).where(CL.c.id == checklist_id, _visible(principal)))
    if root is None:
        raise NotFound(f"no checklist {checklist_id} that you may read", code="checklist_not_found")
    rows = session.execute(_public_query().where(CL.c.root_id == root).order_by(CL.c.version))
    return [_public(r) for r in rows]


def encode_cursor(received_at: datetime, checklist_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{received_at.isoformat()}|{checklist_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        at, cid = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(at), uuid.UUID(cid)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_cursor() from exc


def bad_cursor() -> Invalid:
    return Invalid(
        "the cursor is not one this server gave out",
        code="bad_cursor",
        errors=[
            {
                "path": ["query", "cursor"],
                "code": "bad_cursor",
                "message": "use next_cursor from the previous page",
            }
        ],
    )


def list_checklists(
    session: Session,
    principal: Principal,
    *,
    station: str | None = None,
    observer_id: uuid.UUID | None = None,
    phase: str | None = None,
    latest_only: bool = False,
    held: bool | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> tuple[list[ChecklistPublic], str | None]:
    """A page in the order the server received them (oldest first), for lists and sync."""
    q = _public_query().where(_visible(principal))
    if station:
        q = q.where(ST.c.code == station)
    if observer_id:
        q = q.where(CL.c.observer_id == observer_id)
    if phase:
        q = q.where(CL.c.phase == phase)
    if latest_only:
        q = q.where(CL.c.is_latest.is_(True))
    if held is not None:
        # The review queue: the latest versions still waiting (an older version keeps the
        # hold it had when it was corrected, as history).
        q = q.where(and_(CL.c.hold.is_not(None), CL.c.is_latest) if held else CL.c.hold.is_(None))
    if cursor:
        at, cid = decode_cursor(cursor)
        q = q.where(or_(CL.c.received_at > at, and_(CL.c.received_at == at, CL.c.id > cid)))
    rows = session.execute(q.order_by(CL.c.received_at, CL.c.id).limit(limit + 1)).all()
    page = [_public(r) for r in rows[:limit]]
    next_cursor = encode_cursor(page[-1].received_at, page[-1].id) if len(rows) > limit else None
    return page, next_cursor
