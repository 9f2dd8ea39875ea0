"""Exactly once under concurrency: the database constraint decides, not a check in Python."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select

from api.config import get_settings
from api.db import session_scope
from api.deps import Principal
from api.errors import AppError
from api.services.checklists import submit
from models import Answer, Checklist, Credential, Role
from models.checklist import ChecklistSubmit
from tests.factories import checklist_payload, make_mission, make_observer, make_station

pytestmark = pytest.mark.postgres_only
THREADS = 16


def _principal(session: Any, observer_id: uuid.UUID) -> Principal:
    cred = session.scalar(select(Credential).where(Credential.observer_id == observer_id))
    return Principal(cred.id, cred.mission_id, Role.observer, observer_id)


def _fire(principal: Principal, items: list[dict[str, Any]]) -> list[str]:
    """Post each item from its own connection, all released at the same instant."""
    barrier = threading.Barrier(len(items))

    def post(item: dict[str, Any]) -> str:
        raw = orjson.dumps(item).decode()
        barrier.wait()
        try:
            with session_scope() as s:
                out = submit(
                    s, principal, ChecklistSubmit.model_validate(item), item, raw, get_settings()
                )
            return "created" if out.created else "replay"
        except AppError as exc:
            return exc.code or exc.error

    with ThreadPoolExecutor(len(items)) as pool:
        return list(pool.map(post, items))


def test_same_id_from_many_connections_at_once_is_stored_once(session: Any) -> None:
    mission, _ = make_mission(session)
    make_station(session, mission.id, "S-1")
    observer, _ = make_observer(session, mission.id, ["S-1"])
    principal = _principal(session, observer.id)
    body = checklist_payload("S-1")

    outcomes = _fire(principal, [body] * THREADS)

    assert sorted(outcomes) == ["created"] + ["replay"] * (THREADS - 1)
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Checklist)) == 1
    answers = session.scalar(select(func.count()).select_from(Answer))
    assert answers == len(body["answers"])


def test_concurrent_corrections_of_one_version_keep_one_winner(session: Any) -> None:
    mission, _ = make_mission(session)
    make_station(session, mission.id, "S-1")
    observer, _ = make_observer(session, mission.id, ["S-1"])
    principal = _principal(session, observer.id)
    v1 = checklist_payload("S-1")
    assert _fire(principal, [v1]) == ["created"]

    corrections = [checklist_payload("S-1", replaces=v1["id"]) for _ in range(THREADS)]
    outcomes = _fire(principal, corrections)

    assert outcomes.count("created") == 1
    assert set(outcomes) == {"created", "not_latest_version"}
    session.expire_all()
    latest = session.scalars(select(Checklist).where(Checklist.is_latest.is_(True))).all()
    assert len(latest) == 1 and latest[0].version == 2
