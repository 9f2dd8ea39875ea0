"""A client that posted checklists can wait, cheaply, until the findings include them."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from api.routes.findings import VIEW_ROUTES
from api.services.findings import fold as fold_service
from models import ChecklistChange, Role
from models.base import utcnow
from tests.factories import (
    app_with_settings,
    auth,
    make_mission,
    make_observer,
    make_station,
    make_token,
)
from tests.findings_factories import changes_recorded_ago, post


def _version(client: Any, mission_id: Any, token: str) -> dict[str, Any]:
    r = client.get(f"/missions/{mission_id}/findings/version", headers=auth(token))
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_the_data_version_says_when_the_findings_include_a_new_checklist(
    db: None, session: Any
) -> None:
    mission, _ = make_mission(session)
    make_station(session, mission.id, "S-1")
    _, observer = make_observer(session, mission.id, ["S-1"])
    viewer = make_token(session, mission.id, Role.viewer)
    session.commit()
    # No fold on read: what was posted waits for a fold, as it does behind a busy server.
    lagging = app_with_settings(findings_max_lag_s=3600, findings_cache_s=0)
    with TestClient(lagging, raise_server_exceptions=False) as client:
        before = _version(client, mission.id, viewer)
        assert before["caught_up"] is True and before["pending_changes"] == 0
        assert before["findings_lag_s"] == 0.0
        post(client, observer, "S-1", "voting")
        changes_recorded_ago(session, 600, mission.id)
        started = time.monotonic()
        waiting = _version(client, mission.id, viewer)
        assert waiting["caught_up"] is False and waiting["pending_changes"] == 1
        assert waiting["latest_change"] > waiting["folded_through"]
        assert waiting["data_version"] == before["data_version"]
        assert _behind(waiting["findings_lag_s"], 600, started)
    eager = app_with_settings(findings_max_lag_s=0, findings_cache_s=0)
    with TestClient(eager, raise_server_exceptions=False) as client:
        done = _version(client, mission.id, viewer)
        assert done["caught_up"] is True and done["pending_changes"] == 0
        assert done["findings_lag_s"] == 0.0
        assert done["folded_through"] >= waiting["latest_change"]
        assert done["data_version"] > before["data_version"]
        view = client.get(f"/missions/{mission.id}/findings", headers=auth(viewer)).json()
        assert view["version"] == done["data_version"]
        assert view["totals"]["observations"] == 1


def test_the_data_version_is_for_the_mission_s_readers_only(client: Any, session: Any) -> None:
    mission, _ = make_mission(session)
    make_station(session, mission.id, "S-1")
    _, observer = make_observer(session, mission.id, ["S-1"])
    other, other_admin = make_mission(session)
    url = f"/missions/{mission.id}/findings/version"
    assert client.get(url, headers=auth(observer)).status_code == 403
    assert client.get(url, headers=auth(other_admin)).status_code in (403, 404)
    assert client.get(url).status_code == 401


VIEW_PATHS = [path for _, path, _, _ in VIEW_ROUTES] + [
    f"/statement?format={f}" for f in ("markdown", "json", "docx")
]


def _behind(lag: Any, ago: float, started: float) -> bool:
    """Is `lag` (a header's text or a number) the age of something stored `ago` seconds
    before the test's clock read `started`, allowing for the time the test has taken?"""
    return ago <= float(lag) < ago + (time.monotonic() - started) + 5.0


def test_every_view_says_how_far_the_findings_are_behind_the_mission_s_checklists(
    db: None, session: Any
) -> None:
    """`X-Findings-Lag`: seconds since the first of the mission's changes the fold has not
    looked at yet was stored, on every view and on a 304 too (the cached body says when it
    was computed, not how far behind the data then was). Another mission's backlog is not
    this one's."""
    mission, _ = make_mission(session)
    make_station(session, mission.id, "S-1")
    _, observer = make_observer(session, mission.id, ["S-1"])
    viewer = make_token(session, mission.id, Role.viewer)
    other, _ = make_mission(session)
    make_station(session, other.id, "O-1")
    _, other_observer = make_observer(session, other.id, ["O-1"])
    session.commit()
    lagging = app_with_settings(findings_max_lag_s=3600, findings_cache_s=0)
    with TestClient(lagging, raise_server_exceptions=False) as client:
        base = f"/missions/{mission.id}"
        for path in VIEW_PATHS:
            r = client.get(base + path, headers=auth(viewer))
            assert r.status_code == 200, (path, r.text)
            assert r.headers["X-Findings-Lag"] == "0.000", path
            assert "X-Replica-Lag" not in r.headers, path  # read from the primary
        post(client, other_observer, "O-1", "voting")
        changes_recorded_ago(session, 1200, other.id)  # stored before this mission's, an id lower
        post(client, observer, "S-1", "voting")
        post(client, observer, "S-1", "opening")
        changes_recorded_ago(session, 600, mission.id)
        started = time.monotonic()
        for path in VIEW_PATHS:
            r = client.get(base + path, headers=auth(viewer))
            assert r.status_code == 200, (path, r.text)
            assert _behind(r.headers["X-Findings-Lag"], 600, started), (path, r.headers)
        held = client.get(base + "/findings", headers=auth(viewer))
        again = client.get(
            base + "/findings", headers=auth(viewer) | {"If-None-Match": held.headers["ETag"]}
        )
        assert again.status_code == 304
        assert _behind(again.headers["X-Findings-Lag"], 600, started)
        fold_service.run_once()
        for path in VIEW_PATHS:
            r = client.get(base + path, headers=auth(viewer))
            assert r.headers["X-Findings-Lag"] == "0.000", path
        assert (
            client.get(base + "/findings", headers=auth(viewer)).json()["totals"]["observations"]
            == 2
        )


def test_a_view_served_from_before_the_newest_data_says_it_is_behind(
    db: None, session: Any
) -> None:
    """While data arrives a view is served for its reuse time after the data has moved on:
    its lag is then at least the time since it was computed, though the fold has folded
    everything."""
    mission, _ = make_mission(session)
    make_station(session, mission.id, "S-1")
    _, observer = make_observer(session, mission.id, ["S-1"])
    viewer = make_token(session, mission.id, Role.viewer)
    session.commit()
    url = f"/missions/{mission.id}/findings"
    reusing = app_with_settings(findings_max_lag_s=3600, findings_cache_s=120)
    with TestClient(reusing, raise_server_exceptions=False) as client:
        first = client.get(url, headers=auth(viewer))
        assert first.headers["X-Findings-Lag"] == "0.000"
        post(client, observer, "S-1", "voting")
        fold_service.run_once()
        session.execute(
            text("UPDATE finding_cache SET computed_at = :at WHERE mission_id = :m"),
            {"at": utcnow() - timedelta(seconds=30), "m": mission.id.hex},
        )
        session.commit()
        started = time.monotonic()
        served = client.get(url, headers=auth(viewer))
        assert served.json()["version"] == first.json()["version"]  # the earlier view
        assert _behind(served.headers["X-Findings-Lag"], 30, started)
        held = client.get(url, headers=auth(viewer) | {"If-None-Match": served.headers["ETag"]})
        assert held.status_code == 304 and _behind(held.headers["X-Findings-Lag"], 30, started)


def test_the_findings_lag_is_the_age_of_the_first_change_not_looked_at(
    db: None, session: Any
) -> None:
    """`fold.unfolded_since` for one mission: the first of its changes past what the fold
    has looked at, however old the changes already folded, or later ones."""
    mission, _ = make_mission(session)
    make_station(session, mission.id, "S-1")
    _, observer = make_observer(session, mission.id, ["S-1"])
    session.commit()
    since = select(fold_service.unfolded_since(mission.id))
    assert session.scalar(since) is None
    with TestClient(app_with_settings(findings_max_lag_s=3600)) as client:
        post(client, observer, "S-1", "voting")
        fold_service.run_once()
        post(client, observer, "S-1", "opening")
        post(client, observer, "S-1", "closing")
    folded, first, last = session.scalars(
        select(ChecklistChange.id)
        .where(ChecklistChange.mission_id == mission.id)
        .order_by(ChecklistChange.id)
    ).all()
    changes_recorded_ago(session, 3600, change_id=folded)
    changes_recorded_ago(session, 300, change_id=first)
    changes_recorded_ago(
        session, 900, change_id=last
    )  # stored later by a node whose clock is behind
    started = time.monotonic()
    assert _behind(fold_service.seconds_behind(session.scalar(since), utcnow()), 300, started)
    fold_service.run_once()
    session.commit()  # a fresh snapshot (SQLite keeps one a transaction)
    assert session.scalar(since) is None


def test_readiness_says_how_far_behind_the_fold_is_for_monitoring(db: None, session: Any) -> None:
    """`/readyz`, for a monitor that has no mission's token: the fold's lag over every
    mission, and how long ago a fold last folded (a stopped fold shows as both growing)."""
    mission, _ = make_mission(session)
    make_station(session, mission.id, "S-1")
    _, observer = make_observer(session, mission.id, ["S-1"])
    session.commit()
    with TestClient(app_with_settings(findings_max_lag_s=3600)) as client:
        ready = client.get("/readyz").json()
        assert ready["findings_lag_s"] == 0.0 and ready["folded_s_ago"] is None
        post(client, observer, "S-1", "voting")
        changes_recorded_ago(session, 600, mission.id)
        started = time.monotonic()
        ready = client.get("/readyz").json()
        assert ready["status"] == "ready" and _behind(ready["findings_lag_s"], 600, started)
        assert ready["folded_s_ago"] is None
        fold_service.run_once()
        ready = client.get("/readyz").json()
        assert ready["findings_lag_s"] == 0.0
        assert ready["folded_s_ago"] is not None and ready["folded_s_ago"] < 60.0


def test_readiness_stands_when_the_fold_s_progress_cannot_be_read(
    db: None, session: Any, monkeypatch: Any
) -> None:
    """The progress is for monitoring: a statement that fails there (a timeout) leaves the
    node ready, with the figures null; a database gone is still a 503."""
    from api.routes import health

    def cancelled(_: Any) -> None:
        raise OperationalError("SELECT …", {}, Exception("canceling statement due to timeout"))

    monkeypatch.setattr(health.fold, "progress", cancelled)
    with TestClient(app_with_settings()) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json() | {"revision": None} == {
            "status": "ready",
            "revision": None,
            "findings_lag_s": None,
            "folded_s_ago": None,
        }

        def gone(_: Any) -> None:
            raise OperationalError(
                "SELECT …", {}, Exception("server closed"), connection_invalidated=True
            )

        monkeypatch.setattr(health.fold, "progress", gone)
        down = client.get("/readyz")
        assert down.status_code == 503 and down.json()["code"] == "database_down", down.text
