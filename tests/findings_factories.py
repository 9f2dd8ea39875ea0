"""Factories for findings tests: small hand-made missions whose right answers are known."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import update
from sqlalchemy.orm import Session

from api.config import Settings
from api.services import changes
from api.services.findings import views
from api.services.findings.scope import Filters
from models import Checklist, ChecklistChange
from models.base import table_of, utcnow
from tests.factories import answers_for, auth, checklist_payload


def changes_recorded_ago(
    session: Session, seconds: float, mission_id: Any = None, change_id: int | None = None
) -> None:
    """Checklist changes (all of them, a mission's, or one) as if stored `seconds` ago: a
    backlog the fold has been behind on for that long."""
    change = table_of(ChecklistChange)
    backdate = update(change)
    if mission_id is not None:
        backdate = backdate.where(change.c.mission_id == mission_id)
    if change_id is not None:
        backdate = backdate.where(change.c.id == change_id)
    session.execute(backdate.values(created_at=utcnow() - timedelta(seconds=seconds)))
    session.commit()


# Findings read straight after a post: fold on every read, never reuse a cached view.
FRESH = Settings(findings_max_lag_s=0, findings_cache_s=0)

# A protocol whose figures pass every consistency check.
GOOD_COUNT = {
    "P_R": 1000,
    "P_RC": 1000,
    "P_I": 600,
    "P_U": 390,
    "P_S": 10,
    "P_B": 600,
    "P_X": 10,
    "P_K": 5,
    "P_V": 585,
    "P_V1": 400,
    "P_V2": 185,
}


def post(
    client: Any,
    token: str,
    station: str,
    phase: str = "voting",
    overrides: dict[str, Any] | None = None,
    **body: Any,
) -> str:
    """Post one valid checklist (answers overridden as given); return its id."""
    answers = answers_for(phase, overrides)
    payload = checklist_payload(station, phase, answers, **body)
    r = client.post("/checklists", json=payload, headers=auth(token))
    assert r.status_code == 201, r.text
    return str(payload["id"])


def post_count(
    client: Any, token: str, station: str, figures: dict[str, int] | None = None, **body: Any
) -> str:
    """A closing checklist with protocol figures (GOOD_COUNT overridden by `figures`)."""
    overrides: dict[str, Any] = {"F11": "yes", **GOOD_COUNT, **(figures or {})}
    return post(client, token, station, "closing", overrides, **body)


def correct(
    client: Any, token: str, replaces: str, station: str, phase: str, overrides: dict[str, Any]
) -> str:
    return post(client, token, station, phase, overrides, replaces=replaces)


def set_review(
    session: Session,
    mission_id: uuid.UUID,
    checklist_id: str,
    review_state: str | None = None,
    quarantined: bool | None = None,
) -> None:
    """What the review API does: change the state, take any hold off, and record it in the
    outbox."""
    values: dict[str, Any] = {"hold": None}
    if review_state is not None:
        values["review_state"] = review_state
    if quarantined is not None:
        values["quarantined"] = quarantined
    cid = uuid.UUID(checklist_id)
    session.execute(update(Checklist).where(Checklist.id == cid).values(**values))
    changes.record(session, mission_id, [cid])
    session.commit()


def view(session: Session, mission_id: uuid.UUID, name: str = "findings", **filters: Any) -> Any:
    """A findings view as the API would serve it, computed from fresh data."""
    session.commit()  # start a new snapshot: see everything committed so far
    return views.get_view(session, FRESH, mission_id, name, Filters(**filters), None).parsed()


def computed(
    session: Session,
    mission_id: uuid.UUID,
    name: str,
    filters: Filters | None = None,
    language: str | None = None,
) -> Any:
    """A view's section computed afresh past the cache (`views.compute`), as the JSON the API
    serves it in."""
    section = views.compute(session, mission_id, name, filters or Filters(), language)
    return orjson.loads(orjson.dumps(section.model_dump()))


def sections_computed(monkeypatch: Any) -> list[str]:
    """The names of the statement's sections computed from now on (not read from the cache),
    in the order they were computed."""
    computed_here: list[str] = []
    for name in views.SECTIONS:
        monkeypatch.setitem(
            views.VIEWS,
            name,
            lambda ctx, fn=views.VIEWS[name], n=name: computed_here.append(n) or fn(ctx),
        )
    return computed_here


def question(findings: dict[str, Any], phase: str, code: str) -> dict[str, Any]:
    for p in findings["phases"]:
        if p["phase"] == phase:
            for q in p["questions"]:
                if q["code"] == code:
                    return q
    raise AssertionError(f"no {code} in phase {phase}")


def answer(q: dict[str, Any], value: str) -> dict[str, Any]:
    return next(a for a in q["answers"] if a["value"] == value)


def hours_ago(hours: float) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours)).isoformat()
