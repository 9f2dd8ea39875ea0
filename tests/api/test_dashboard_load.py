"""Dashboards cannot starve intake: time windows a few seconds apart share one computed view,
a token's fresh computes are metered, a mission's computes at once are bounded (503, or the
last view), and findings requests run on threads of their own."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.config import get_settings
from api.main import create_app
from api.services.findings import gate
from models import FindingCache, Mission, Role
from tests.factories import auth, make_mission, make_observer, make_station, make_token
from tests.findings_factories import post

HOUR = "observed_from=2024-10-06T{}Z"


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Set POLLCHECK_… variables for the app made next (the compute slots follow them)."""

    def apply(**values: Any) -> None:
        for name, value in values.items():
            monkeypatch.setenv(f"POLLCHECK_{name.upper()}", str(value))
        get_settings.cache_clear()
        gate.forget()

    yield apply
    monkeypatch.undo()
    get_settings.cache_clear()
    gate.forget()


def _mission(session: Any, **limits: Any) -> tuple[Any, str, str]:
    mission, _ = make_mission(session)
    make_station(session, mission.id, "S-1")
    _, observer = make_observer(session, mission.id, ["S-1"])
    viewer = make_token(session, mission.id, Role.viewer)
    if limits:
        session.get(Mission, mission.id).settings = {"limits": limits}
        session.commit()
    return mission, observer, viewer


def _cached_views(session: Any) -> int:
    session.commit()
    return int(session.scalar(select(func.count()).select_from(FindingCache)))


def test_time_windows_seconds_apart_share_one_computed_view(client: Any, session: Any) -> None:
    mission, observer, viewer = _mission(session)
    post(client, observer, "S-1", "voting")
    url = f"/missions/{mission.id}/findings?"
    a = client.get(
        url + HOUR.format("10:00:05") + "&observed_to=2024-10-06T12:30:01Z", headers=auth(viewer)
    )
    b = client.get(
        url + HOUR.format("10:00:40") + "&observed_to=2024-10-06T12:30:59Z", headers=auth(viewer)
    )
    assert a.status_code == b.status_code == 200
    assert a.headers["etag"] == b.headers["etag"]
    assert a.json()["filters"] == {
        "observed_from": "2024-10-06T10:00:00+00:00",
        "observed_to": "2024-10-06T12:31:00+00:00",
    }
    assert _cached_views(session) == 1


def test_a_token_past_its_fresh_computes_gets_429_yet_views_computed_before_still_come(
    client: Any, session: Any
) -> None:
    mission, _, viewer = _mission(session, computes_per_minute=1, computes_burst=2)
    url = f"/missions/{mission.id}/findings?"
    assert client.get(url + HOUR.format("10:00:00"), headers=auth(viewer)).status_code == 200
    assert client.get(url + HOUR.format("10:01:00"), headers=auth(viewer)).status_code == 200
    refused = client.get(url + HOUR.format("10:02:00"), headers=auth(viewer))
    assert refused.status_code == 429
    assert refused.json()["code"] == "compute_limit"
    assert int(refused.headers["Retry-After"]) >= 1
    assert client.get(url + HOUR.format("10:00:00"), headers=auth(viewer)).status_code == 200
    other = make_token(session, mission.id, Role.viewer)  # per token
    assert client.get(url + HOUR.format("10:02:00"), headers=auth(other)).status_code == 200


def test_with_every_compute_slot_taken_a_new_view_is_503_and_a_due_one_is_served_as_it_was(
    settings_env: Any, session: Any
) -> None:
    settings_env(
        findings_computes_at_once=1,
        findings_compute_wait_s=0.2,
        findings_cache_s=0,  # every view is due again as soon as the data changes
        findings_max_lag_s=0,
    )
    mission, observer, viewer = _mission(session)
    url = f"/missions/{mission.id}/findings"
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        assert client.get(url, headers=auth(viewer)).json()["totals"]["observations"] == 0
        post(client, observer, "S-1", "voting")
        slot = gate._slot(mission.id, get_settings())
        assert slot.acquire(timeout=1)  # another request is computing
        try:
            busy = client.get(url + "?" + HOUR.format("10:00:00"), headers=auth(viewer))
            due = client.get(url, headers=auth(viewer))
        finally:
            slot.release()
        assert busy.status_code == 503
        assert busy.json()["code"] == "findings_busy" and busy.headers["Retry-After"]
        assert due.status_code == 200 and due.json()["totals"]["observations"] == 0
        fresh = client.get(url, headers=auth(viewer))
        assert fresh.json()["totals"]["observations"] == 1


def test_findings_requests_waiting_on_the_database_leave_intake_its_threads(
    settings_env: Any, session: Any
) -> None:
    # Two threads for requests in all, one for dashboards; three dashboard requests stuck
    # behind a busy compute slot must not hold up an observer's checklist.
    settings_env(
        db_pool_size=2,
        dashboard_threads=1,
        findings_computes_at_once=1,
        findings_compute_wait_s=3,
    )
    mission, observer, viewer = _mission(session)
    finished: list[str] = []
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        slot = gate._slot(mission.id, get_settings())
        assert slot.acquire(timeout=1)

        def dashboard(i: int) -> None:
            url = f"/missions/{mission.id}/findings?" + HOUR.format(f"1{i}:00:00")
            client.get(url, headers=auth(viewer))
            finished.append("dashboard")

        readers = [threading.Thread(target=dashboard, args=(i,)) for i in range(3)]
        for t in readers:
            t.start()
        time.sleep(0.5)  # they are waiting for the slot by now
        post(client, observer, "S-1", "voting")
        finished.append("checklist")
        slot.release()
        for t in readers:
            t.join(timeout=30)
    assert finished[0] == "checklist", finished


def test_a_view_computed_again_because_data_arrived_costs_the_token_nothing(
    settings_env: Any, session: Any
) -> None:
    settings_env(findings_cache_s=0, findings_max_lag_s=0)  # due as soon as data changes
    mission, observer, viewer = _mission(session, computes_per_minute=1, computes_burst=1)
    url = f"/missions/{mission.id}/findings"
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        assert client.get(url, headers=auth(viewer)).json()["totals"]["observations"] == 0
        post(client, observer, "S-1", "voting")
        again = client.get(url, headers=auth(viewer))
        assert again.status_code == 200 and again.json()["totals"]["observations"] == 1
        new_view = client.get(url + "?" + HOUR.format("10:00:00"), headers=auth(viewer))
        assert new_view.status_code == 429
