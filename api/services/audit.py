"""The audit trail: every successful write, with who, when, which credential and what changed.

How writes reach it:
- Every write route (POST, PUT, PATCH, DELETE) that succeeds gets one row written by the
  `audit_writes` dependency in the request's own transaction: the route and the concrete
  path, and the request body (or its digest and size when it is large or not JSON).
- Services that know more add notes (`note`) with the state before and after, e.g. review
  decisions; the notes replace the generic row.
- An operation that records itself says so (`recorded_by_operation`), whichever route or
  channel calls it, and then the generic row is left out. Checklist intake does: each
  version row is append-only and names who sent it, when, and with which credential, so a
  second row per checklist would double the cost of the hottest write for nothing. Only
  corrections, where before and after matter, also get a row, written by the intake
  itself (`record_correction`). The export can merge the versions in.
"""

from __future__ import annotations

import csv
import hashlib
import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from api.kit.spreadsheet import safe_row
from models import AuditEvent, Checklist, Credential, Station
from models.audit import AuditEventPublic
from models.base import table_of, utcnow

AUD = table_of(AuditEvent)
CL = table_of(Checklist)
CRED = table_of(Credential)
ST = table_of(Station)

NOTES = "pollcheck.audit_notes"
SELF_RECORDED = "pollcheck.audit_self_recorded"
MAX_BODY_IN_TRAIL = 8_000  # bytes of JSON body kept verbatim; larger ones by digest

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True, slots=True)
class Actor:
    mission_id: uuid.UUID | None
    credential_id: uuid.UUID | None
    role: str


def note(
    session: Session,
    action: str,
    target: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Add a detailed record of this unit of work; written with the request's actor."""
    session.info.setdefault(NOTES, []).append(
        {"action": action, "target": target, "before": before, "after": after}
    )


def recorded_by_operation(session: Session) -> None:
    """This unit of work's writes are in the trail already, by the operation that made them:
    no generic row for the request (its notes, if any, are still written)."""
    session.info[SELF_RECORDED] = True


def write(session: Session, actor: Actor, rows: list[dict[str, Any]]) -> None:
    now = utcnow()
    session.execute(
        AUD.insert(),
        [
            {
                "mission_id": actor.mission_id,
                "at": now,
                "credential_id": actor.credential_id,
                "role": actor.role,
                "action": r["action"][:200],
                "target": (r.get("target") or "")[:400] or None,
                "before": _jsonable(r.get("before")),
                "after": _jsonable(r.get("after")),
            }
            for r in rows
        ],
    )


def _jsonable(value: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else orjson.loads(orjson.dumps(value, default=str))


def body_summary(body: bytes, content_type: str) -> dict[str, Any] | None:
    """What a write sent: small JSON verbatim, anything else by SHA-256 and size."""
    if not body:
        return None
    if len(body) <= MAX_BODY_IN_TRAIL and "json" in content_type:
        try:
            return {"body": orjson.loads(body)}
        except orjson.JSONDecodeError:
            pass
    return {
        "content_type": content_type[:100],
        "bytes": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
    }


def needs_request_record(session: Session) -> bool:
    """Whether `record_request` would write anything for this successful request."""
    return bool(session.info.get(NOTES)) or not session.info.get(SELF_RECORDED)


def record_request(
    session: Session,
    actor: Actor,
    method: str,
    route: str,
    path: str,
    body: bytes,
    content_type: str,
) -> None:
    """Called once per successful write request, inside its transaction."""
    notes = session.info.pop(NOTES, None)
    self_recorded = session.info.pop(SELF_RECORDED, False)
    if notes:
        write(session, actor, notes)
        return
    if self_recorded:
        return
    write(
        session,
        actor,
        [
            {
                "action": f"{method} {route}",
                "target": path,
                "after": body_summary(body, content_type),
            }
        ],
    )


def record_cli(
    session: Session,
    mission_id: uuid.UUID,
    action: str,
    target: str | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """A write made with the `pollcheck` command (server access, no token): role `cli`."""
    write(
        session,
        Actor(mission_id, None, "cli"),
        [{"action": f"cli {action}", "target": target, "after": after}],
    )


def record_correction(
    session: Session,
    actor: Actor,
    replaced_id: uuid.UUID,
    new_id: uuid.UUID,
    answers: dict[str, Any],
) -> None:
    """A stored correction, with the answers it changed as they were and as they are now;
    written by the intake that stored it, in the same transaction."""
    old_payload = session.scalar(select(CL.c.payload).where(CL.c.id == replaced_id)) or "{}"
    old = orjson.loads(old_payload).get("answers", {})
    changed = sorted(k for k in set(old) | set(answers) if old.get(k) != answers.get(k))
    write(
        session,
        actor,
        [
            {
                "action": "checklist.correct",
                "target": f"checklist/{new_id}",
                "before": {
                    "checklist_id": str(replaced_id),
                    "answers": {k: old.get(k) for k in changed},
                },
                "after": {
                    "checklist_id": str(new_id),
                    "answers": {k: answers.get(k) for k in changed},
                },
            }
        ],
    )


def list_events(
    session: Session,
    mission_id: uuid.UUID,
    *,
    after_id: int = 0,
    action: str | None = None,
    credential_id: uuid.UUID | None = None,
    limit: int = 100,
) -> tuple[list[AuditEventPublic], int | None]:
    """A page of the mission's trail, oldest first; the second value is the next cursor."""
    q = select(AUD).where(AUD.c.mission_id == mission_id, AUD.c.id > after_id)
    if action:
        q = q.where(AUD.c.action.startswith(action, autoescape=True))
    if credential_id:
        q = q.where(AUD.c.credential_id == credential_id)
    rows = session.execute(q.order_by(AUD.c.id).limit(limit + 1)).all()
    page = [AuditEventPublic.model_validate(r._mapping) for r in rows[:limit]]
    return page, (page[-1].id if len(rows) > limit else None)


CSV_HEADER = (
    "id",
    "at",
    "credential_id",
    "credential_label",
    "role",
    "action",
    "target",
    "before",
    "after",
)


def export_csv(
    session: Session, mission_id: uuid.UUID, include_intake: bool = False, batch: int = 1000
) -> Iterator[str]:
    """The trail as CSV, safe to open in a spreadsheet; with `include_intake`, every checklist
    version is merged in (as `checklist.submit`) in time order."""
    yield _csv_line(CSV_HEADER)
    events = _events(session, mission_id, batch)
    intake = _intake(session, mission_id, batch) if include_intake else iter(())
    yield from (_csv_line(r) for r in _merge(events, intake))


def _events(session: Session, mission_id: uuid.UUID, batch: int) -> Iterator[tuple[Any, ...]]:
    last = 0
    while True:
        rows = session.execute(
            select(AUD, CRED.c.label)
            .select_from(AUD.outerjoin(CRED, CRED.c.id == AUD.c.credential_id))
            .where(AUD.c.mission_id == mission_id, AUD.c.id > last)
            .order_by(AUD.c.id)
            .limit(batch)
        ).all()
        for r in rows:
            yield (
                r.id,
                r.at,
                r.credential_id,
                r.label,
                r.role,
                r.action,
                r.target,
                _dump(r.before),
                _dump(r.after),
            )
        if len(rows) < batch:
            return
        last = rows[-1].id


def _intake(session: Session, mission_id: uuid.UUID, batch: int) -> Iterator[tuple[Any, ...]]:
    cursor: tuple[datetime, uuid.UUID] | None = None
    while True:
        q = (
            select(
                CL.c.id,
                CL.c.version,
                CL.c.received_at,
                CL.c.credential_id,
                CL.c.payload_sha256,
                CRED.c.label,
                CRED.c.role,
                ST.c.code,
            )
            .select_from(
                CL.join(CRED, CRED.c.id == CL.c.credential_id).join(ST, ST.c.id == CL.c.station_id)
            )
            .where(CL.c.mission_id == mission_id)
        )
        if cursor is not None:
            at, cid = cursor
            q = q.where((CL.c.received_at > at) | and_(CL.c.received_at == at, CL.c.id > cid))
        rows = session.execute(q.order_by(CL.c.received_at, CL.c.id).limit(batch)).all()
        for r in rows:
            after = {"station": r.code, "version": r.version, "sha256": r.payload_sha256}
            yield (
                "",
                r.received_at,
                r.credential_id,
                r.label,
                r.role,
                "checklist.submit",
                f"checklist/{r.id}",
                "",
                _dump(after),
            )
        if len(rows) < batch:
            return
        cursor = (rows[-1].received_at, rows[-1].id)


def _merge(a: Iterator[tuple[Any, ...]], b: Iterator[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    """Two time-ordered streams as one (row[1] is the time)."""
    x, y = next(a, None), next(b, None)
    while x is not None or y is not None:
        if y is None or (x is not None and x[1] <= y[1]):
            assert x is not None
            yield x
            x = next(a, None)
        else:
            yield y
            y = next(b, None)


def _dump(value: Any) -> str:
    if value is None or value == "":
        return ""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _csv_line(row: tuple[Any, ...]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(safe_row(row))
    return out.getvalue()
