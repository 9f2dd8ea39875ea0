"""Phone sync: the day's work in one small answer, batches of checklists, reconcile.

A phone queues checklists while offline and flushes the queue in one request. Each item
goes through the same intake (`api.services.intake`) as `POST /checklists`, inside its own
SAVEPOINT, so one bad item never undoes the others and resending a whole batch is always
safe: stored items come back as `duplicate`.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta
from typing import Any, TypeVar, get_args

import orjson
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from api.body import validate
from api.config import Settings
from api.deps import Principal
from api.errors import Invalid
from api.ratelimit import spend_checklists
from api.services import attachments as attachment_service
from api.services import checklists as checklist_service
from api.services import templates as template_service
from api.services.intake import Refused, intake
from models import (
    Assignment,
    Checklist,
    ChecklistTemplate,
    Location,
    Mission,
    Observer,
    ReviewEvent,
    Station,
    TemplateStatus,
)
from models.base import table_of, utcnow
from models.checklist import ChecklistSubmit, Phase
from models.sync import (
    DayMission,
    DayObserver,
    DayOfWork,
    DayStation,
    SyncedChecklist,
    SyncedReview,
    SyncItemResult,
    SyncPage,
    SyncResult,
    SyncStatus,
)

CL = table_of(Checklist)
ST = table_of(Station)
ASG = table_of(Assignment)
LOC = table_of(Location)
REV = table_of(ReviewEvent)
ALL_PHASES = [p.value for p in Phase]
# A checklist becomes visible when its transaction commits, which can be a little after the
# `received_at` it was stamped with. The last page of a reconcile holds its cursor back by
# this much so a slow commit is never skipped; the phone just sees recent rows again.
SETTLE = timedelta(seconds=60)
K = TypeVar("K")


# --- the day's work ----------------------------------------------------------------------


def day_of_work(session: Session, principal: Principal, language: str | None) -> DayOfWork:
    """Mission, assigned stations and published templates, labelled in one language."""
    mission = session.get(Mission, principal.mission_id)
    observer = session.get(Observer, principal.observer_id)
    assert mission is not None and observer is not None
    langs = list(mission.languages)
    lang = next(
        (x for x in (language, observer.language) if x and x in langs),
        langs[0],
    )
    stations = session.execute(
        select(ST.c.code, ST.c.name, ST.c.address, ST.c.latitude, ST.c.longitude, LOC.c.path)
        .select_from(
            ST.join(ASG, ASG.c.station_id == ST.c.id).join(LOC, LOC.c.id == ST.c.location_id)
        )
        .where(ASG.c.observer_id == observer.id)
        .order_by(ST.c.code)
    ).all()
    return DayOfWork(
        language=lang,
        mission=DayMission.model_validate(mission, from_attributes=True),
        observer=DayObserver.model_validate(observer, from_attributes=True),
        stations=[
            DayStation(
                code=s.code,
                name=s.name,
                location=s.path,
                address=s.address,
                latitude=s.latitude,
                longitude=s.longitude,
            )
            for s in stations
        ],
        templates=[_localised(t.definition, lang) for t in _newest_published(session, mission.id)],
    )


def _newest_published(session: Session, mission_id: uuid.UUID) -> list[ChecklistTemplate]:
    newest: dict[str, ChecklistTemplate] = {}
    for t in template_service.list_for_mission(session, mission_id, published_only=True):
        if t.status == TemplateStatus.published:
            newest[t.code] = t  # listed by code, then version: the last one wins
    return [newest[c] for c in sorted(newest)]


def _label(labels: dict[str, str] | None, lang: str, default: str) -> str | None:
    if not labels:
        return None
    return labels.get(lang) or labels.get(default) or next(iter(labels.values()))


_QUESTION_DEFAULTS: dict[str, Any] = {
    "required": False,
    "allow_na": False,
    "critical": [],
    "max_length": 2000,
}


def _localised(definition: dict[str, Any], lang: str) -> dict[str, Any]:
    """A template with one language's labels and no keys at their default value."""
    default = definition["languages"][0]
    sections = []
    for s in definition["sections"]:
        questions = []
        for q in s["questions"]:
            out: dict[str, Any] = {"code": q["code"], "type": q["type"]}
            out["label"] = _label(q["label"], lang, default)
            hint = _label(q.get("hint"), lang, default)
            if hint:
                out["hint"] = hint
            for key, value in q.items():
                if key in ("code", "type", "label", "hint", "options") or value is None:
                    continue
                if _QUESTION_DEFAULTS.get(key, object()) == value:
                    continue
                out[key] = value
            if q.get("options"):
                out["options"] = [
                    {"code": o["code"], "label": _label(o["label"], lang, default)}
                    | ({"na": True} if o.get("na") else {})
                    for o in q["options"]
                ]
            questions.append(out)
        section: dict[str, Any] = {"code": s["code"], "title": _label(s["title"], lang, default)}
        phases = s.get("phases") or []
        if phases and sorted(phases) != sorted(ALL_PHASES):
            section["phases"] = phases
        section["questions"] = questions
        sections.append(section)
    out_t: dict[str, Any] = {
        "code": definition["code"],
        "version": definition["version"],
        "title": _label(definition["title"], lang, default),
        "sections": sections,
    }
    if definition.get("protocol"):
        out_t["protocol"] = definition["protocol"]
    return out_t


def render(day: DayOfWork) -> tuple[bytes, str]:
    """The answer's bytes and its (weak: gzip may change the bytes) entity tag."""
    body = orjson.dumps(day.model_dump(mode="json", exclude_none=True))
    return body, 'W/"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Weak comparison, as RFC 9110 asks for If-None-Match."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == bare for tag in if_none_match.split(","))


# --- batch intake ------------------------------------------------------------------------


def submit_batch(
    session: Session, principal: Principal, items: list[Any], settings: Settings
) -> SyncResult:
    """Store each item exactly once; each gets its own result, in the order sent."""
    if len(items) > settings.max_batch_items:
        raise Invalid(
            f"{len(items)} items in one batch; send at most {settings.max_batch_items} at a time",
            code="batch_too_large",
            errors=[
                {
                    "path": ["body", "items"],
                    "code": "too_long",
                    "message": f"at most {settings.max_batch_items} items",
                }
            ],
        )
    # The whole batch is counted before any item is stored: past the observer's allowance,
    # 429 and nothing of it stored (the phone keeps its queue and sends it again later).
    spend_checklists(principal, len(items), settings)
    results: list[SyncItemResult] = []
    for index, item in enumerate(items):
        sent_id = item.get("id") if isinstance(item, dict) else None
        out: dict[str, Any] = {"index": index, "id": sent_id if isinstance(sent_id, str) else None}
        try:
            body = validate(ChecklistSubmit, item, prefix=())
            outcome = intake(
                session,
                principal,
                body,
                item,
                orjson.dumps(item).decode(),
                settings,
                savepoint=True,
            )
        except Invalid as exc:  # the item is no checklist at all
            out |= {"status": "invalid", "code": exc.code, "detail": exc.detail}
            out["errors"] = exc.errors
        except Refused as exc:
            refusal = exc.refusal
            out |= {"status": refusal.kind, "code": refusal.code, "detail": refusal.message}
            if refusal.kind == "invalid":
                out["errors"] = list(refusal.problems)
        else:
            c = outcome.checklist
            out |= {
                "status": "created" if outcome.created else "duplicate",
                "version": c.version,
                "received_at": c.received_at,
                "clock_flagged": c.clock_flagged,
            }
        results.append(SyncItemResult.model_validate(out))
    missing = attachment_service.missing_by_checklist(
        session,
        [uuid.UUID(r.id) for r in results if r.id and r.status in ("created", "duplicate")],
    )
    for r in results:
        if r.id and r.status in ("created", "duplicate"):
            r.missing_attachments = missing.get(uuid.UUID(r.id)) or None
    counts = {s: sum(1 for r in results if r.status == s) for s in get_args(SyncStatus)}
    return SyncResult(results=results, **counts)


# --- reconcile ---------------------------------------------------------------------------


def reconcile(session: Session, principal: Principal, cursor: str | None, limit: int) -> SyncPage:
    """The caller's checklists (every version) received since `cursor`, oldest first, and
    the review decisions on them made since, so a phone learns what an analyst decided."""
    after, reviews_after = _decode(cursor)
    q = (
        select(
            CL.c.id,
            CL.c.root_id,
            CL.c.version,
            CL.c.is_latest,
            ST.c.code.label("station"),
            CL.c.phase,
            CL.c.received_at,
            CL.c.review_state,
        )
        .select_from(CL.join(ST, ST.c.id == CL.c.station_id))
        .where(checklist_service._visible(principal))
    )
    if after:
        at, cid = checklist_service.decode_cursor(after)
        q = q.where(or_(CL.c.received_at > at, and_(CL.c.received_at == at, CL.c.id > cid)))
    rows = session.execute(q.order_by(CL.c.received_at, CL.c.id).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    missing = attachment_service.missing_by_checklist(session, [r.id for r in rows])
    data = [
        SyncedChecklist(**r._mapping, missing_attachments=missing.get(r.id) or None) for r in rows
    ]
    reviews, more_reviews = _reviews_since(session, principal, reviews_after, limit)
    next_after = _advance(
        [(c.received_at, checklist_service.encode_cursor(c.received_at, c.id)) for c in data],
        after,
        more,
    )
    next_reviews = _advance(
        [(r.decided_at, rid) for rid, r in reviews], reviews_after, more_reviews
    )
    return SyncPage(
        data=data,
        reviews=[r for _, r in reviews] or None,
        next_cursor=_encode(next_after, next_reviews),
        more=more or more_reviews,
    )


def _reviews_since(
    session: Session, principal: Principal, after: int | None, limit: int
) -> tuple[list[tuple[int, SyncedReview]], bool]:
    """Decisions on the review state (a quarantine alone is the mission's own business)."""
    q = (
        select(REV.c.id, REV.c.checklist_id, REV.c.state_after, REV.c.comment, REV.c.created_at)
        .select_from(REV.join(CL, CL.c.id == REV.c.checklist_id))
        .where(
            checklist_service._visible(principal),
            or_(
                REV.c.state_after != REV.c.state_before,
                REV.c.quarantined_after == REV.c.quarantined_before,
            ),
        )
    )
    if after:
        q = q.where(REV.c.id > after)
    rows = session.execute(q.order_by(REV.c.id).limit(limit + 1)).all()
    out = [
        (
            r.id,
            SyncedReview(
                checklist_id=r.checklist_id,
                state=r.state_after,
                comment=r.comment,
                decided_at=r.created_at,
            ),
        )
        for r in rows[:limit]
    ]
    return out, len(rows) > limit


def _advance(seen: list[tuple[datetime, K]], old: K | None, more: bool) -> K | None:
    """Where the next call starts: past every row seen when more are waiting; else past the
    rows old enough that no slower commit can still land before them (SETTLE)."""
    if more:
        return seen[-1][1]
    horizon: datetime = utcnow() - SETTLE
    settled = [key for at, key in seen if at < horizon]
    return settled[-1] if settled else old


# A reconcile cursor is the checklists' cursor, then `~` and the last review decision seen
# (absent in cursors given out before decisions reached phones: those see every decision).
def _encode(after: str | None, reviews_after: int | None) -> str | None:
    if reviews_after is None:
        return after
    return f"{after or ''}~{reviews_after}"


def _decode(cursor: str | None) -> tuple[str | None, int | None]:
    if not cursor:
        return None, None
    after, tilde, reviews = cursor.partition("~")
    if tilde and not reviews.isdigit():
        raise checklist_service.bad_cursor()
    return after or None, int(reviews) if tilde else None
