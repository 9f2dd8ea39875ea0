"""A client that posted checklists can wait, cheaply, until the findings include them."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from models import Role
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
        post(client, observer, "S-1", "voting")
        waiting = _version(client, mission.id, viewer)
        assert waiting["caught_up"] is False and waiting["pending_changes"] == 1
        assert waiting["latest_change"] > waiting["folded_through"]
        assert waiting["data_version"] == before["data_version"]
    eager = app_with_settings(findings_max_lag_s=0, findings_cache_s=0)
    with TestClient(eager, raise_server_exceptions=False) as client:
        done = _version(client, mission.id, viewer)
        assert done["caught_up"] is True and done["pending_changes"] == 0
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
