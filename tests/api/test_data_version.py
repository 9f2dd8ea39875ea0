"""A client that posted checklists can wait, cheaply, until the findings include them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.routes.findings import VIEW_ROUTES
from api.services.findings import fold as fold_service
from models import Role
from models.base import utcnow
from tests.factories import (
    app_with_settings,
    auth,
    make_mission,
    make_observer,
    make_station,
    make_token,
)
from tests.findings_factories import post


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
        _recorded_ago(session, mission.id, 4)
        waiting = _version(client, mission.id, viewer)
        assert waiting["caught_up"] is False and waiting["pending_changes"] == 1
        assert waiting["latest_change"] > waiting["folded_through"]
        assert waiting["data_version"] == before["data_version"]
        assert 4.0 <= waiting["findings_lag_s"] < 6.0
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


def _recorded_ago(session: Any, mission_id: Any, seconds: float) -> None:
    """The mission's changes as if stored `seconds` ago."""
    session.execute(
        text("UPDATE checklist_change SET created_at = :at WHERE mission_id = :m"),
        {"at": utcnow() - timedelta(seconds=seconds), "m": mission_id.hex},
    )
    session.commit()


VIEW_PATHS = [path for _, path, _, _ in VIEW_ROUTES] + [
    f"/statement?format={f}" for f in ("markdown", "json", "docx")
]


def test_every_view_says_how_far_the_findings_are_behind_the_mission_s_checklists(
    db: None, session: Any
) -> None:
    """`X-Findings-Lag`: seconds since the first of the mission's checklists the findings do
    not include yet was stored, on every view and on a 304 too (the cached body says when
    it was computed, not how far behind the data then was). Another mission's backlog is
    not this one's."""
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
        _recorded_ago(session, other.id, 60)  # stored before this mission's, an id lower
        post(client, observer, "S-1", "voting")
        post(client, observer, "S-1", "opening")
        _recorded_ago(session, mission.id, 7)
        for path in VIEW_PATHS:
            r = client.get(base + path, headers=auth(viewer))
            assert r.status_code == 200, (path, r.text)
            assert 7.0 <= float(r.headers["X-Findings-Lag"]) < 9.0, (path, r.headers)
        held = client.get(base + "/findings", headers=auth(viewer))
        again = client.get(
            base + "/findings", headers=auth(viewer) | {"If-None-Match": held.headers["ETag"]}
        )
        assert again.status_code == 304
        assert 7.0 <= float(again.headers["X-Findings-Lag"]) < 9.0
        fold_service.run_once()
        for path in VIEW_PATHS:
            r = client.get(base + path, headers=auth(viewer))
            assert r.headers["X-Findings-Lag"] == "0.000", path
        assert (
            client.get(base + "/findings", headers=auth(viewer)).json()["totals"]["observations"]
            == 2
        )


@pytest.mark.parametrize("ago", [0.0, 3.5])
def test_the_findings_lag_is_the_first_waiting_change_s_age(
    db: None, session: Any, ago: float
) -> None:
    """`fold.unfolded_since` for one mission: its first change past the fold's cursor."""
    from sqlalchemy import select

    mission, _ = make_mission(session)
    make_station(session, mission.id, "S-1")
    _, observer = make_observer(session, mission.id, ["S-1"])
    session.commit()
    since = select(fold_service.unfolded_since(mission.id))
    assert session.scalar(since) is None
    with TestClient(app_with_settings(findings_max_lag_s=3600)) as client:
        post(client, observer, "S-1", "voting")
    _recorded_ago(session, mission.id, ago)
    behind = fold_service.seconds_behind(session.scalar(since), utcnow())
    assert ago <= behind < ago + 2.0
    fold_service.run_once()
    session.commit()
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
        _recorded_ago(session, mission.id, 12)
        ready = client.get("/readyz").json()
        assert ready["status"] == "ready" and 12.0 <= ready["findings_lag_s"] < 14.0
        assert ready["folded_s_ago"] is None
        fold_service.run_once()
        ready = client.get("/readyz").json()
        assert ready["findings_lag_s"] == 0.0
        assert ready["folded_s_ago"] is not None and ready["folded_s_ago"] < 2.0
