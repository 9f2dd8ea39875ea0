"""`POLLCHECK_INTAKE_AT_ONCE`: at most that many observers' submissions are stored at once in
a process (`deps.in_intake_trip`); the rest wait their turn, and every one is stored."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx
import pytest

from api import deps
from api.config import get_settings
from api.services import checklists as checklist_service
from api.services import sync as sync_service
from tests.factories import auth, checklist_payload, make_mission, make_observer, make_station


@pytest.fixture
def token(session: Any) -> str:
    mission, _ = make_mission(session)
    make_station(session, mission.id, "S-1")
    return make_observer(session, mission.id, ["S-1"])[1]


def _most_at_once(monkeypatch: Any, at_once: int, token: str) -> tuple[int, list[int]]:
    """Send two single checklists and a batch of two at the same moment; return how many
    stores ran at once at most, and the answers' statuses."""
    monkeypatch.setenv("POLLCHECK_INTAKE_AT_ONCE", str(at_once))
    get_settings.cache_clear()
    deps.forget_limiters()  # made afresh from the settings of now
    lock = threading.Lock()
    running, most = [0], [0]
    for module in (checklist_service, sync_service):
        real = module.intake

        def slow(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
            time.sleep(0.2)  # long enough for the others to start, if they may
            try:
                return _real(*args, **kwargs)
            finally:
                with lock:
                    running[0] -= 1

        monkeypatch.setattr(module, "intake", slow)

    from api.main import create_app

    async def send() -> list[int]:
        transport = httpx.ASGITransport(app=create_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            batch = {"items": [checklist_payload("S-1"), checklist_payload("S-1")]}
            answers = await asyncio.gather(
                client.post("/checklists", json=checklist_payload("S-1"), headers=auth(token)),
                client.post("/checklists", json=checklist_payload("S-1"), headers=auth(token)),
                client.post("/sync/checklists", json=batch, headers=auth(token)),
            )
        return [r.status_code for r in answers]

    try:
        statuses = asyncio.run(send())
    finally:
        monkeypatch.delenv("POLLCHECK_INTAKE_AT_ONCE")
        get_settings.cache_clear()
        deps.forget_limiters()
    return most[0], statuses


def test_one_at_once_stores_the_submissions_one_after_another(monkeypatch, token) -> None:
    most, statuses = _most_at_once(monkeypatch, 1, token)
    assert statuses == [201, 201, 200]
    assert most == 1


def test_without_a_limit_they_are_stored_side_by_side(monkeypatch, token) -> None:
    most, statuses = _most_at_once(monkeypatch, 0, token)
    assert statuses == [201, 201, 200]
    assert most >= 2
