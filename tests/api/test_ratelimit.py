"""Rate limits per credential, counted in the database so that they hold across processes."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api import ratelimit
from models import Role
from tests.factories import app_with_settings, auth, make_mission, make_token


def _app_with_limit(limit: int) -> Any:
    return app_with_settings(rate_limit_per_minute=limit)


def test_a_token_over_its_limit_gets_429_with_retry_after_on_every_process(
    session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One fixed instant, 45 s into a window: the calls must not straddle two windows.
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(time=lambda: 1_800_000_045.0))
    mission, _ = make_mission(session)
    busy = make_token(session, mission.id, Role.viewer)
    calm = make_token(session, mission.id, Role.viewer)
    # Two app instances stand for two server processes: they share only the database.
    with (
        TestClient(_app_with_limit(3), raise_server_exceptions=False) as one,
        TestClient(_app_with_limit(3), raise_server_exceptions=False) as two,
    ):
        statuses = [c.get("/me", headers=auth(busy)).status_code for c in (one, two, one)]
        assert statuses == [200, 200, 200]
        refused = two.get("/me", headers=auth(busy))
        assert refused.status_code == 429
        assert refused.json()["code"] == "rate_limited"
        assert refused.headers["Retry-After"] == "15"
        assert one.get("/me", headers=auth(calm)).status_code == 200  # per token, not global


def test_a_limit_of_zero_turns_it_off(session: Any) -> None:
    mission, _ = make_mission(session)
    token = make_token(session, mission.id, Role.viewer)
    with TestClient(_app_with_limit(0), raise_server_exceptions=False) as client:
        assert all(client.get("/me", headers=auth(token)).status_code == 200 for _ in range(5))
