"""Limits that count work, not requests, and hold across processes: checklists per observer
(a batch of 200 counts 200), requests with bad tokens per client address, and a pool that
runs dry answering 503 with Retry-After at once rather than 500 after a stall."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api import ratelimit, security
from api.config import Settings
from models import Checklist, Mission, Role
from tests.factories import (
    app_with_settings,
    auth,
    checklist_payload,
    make_mission,
    make_observer,
    make_station,
    make_token,
)


def _stored(session: Any) -> int:
    session.commit()  # a new snapshot (SQLite)
    return int(session.scalar(select(func.count()).select_from(Checklist)))


def _mission_with_limits(session: Any, **limits: Any) -> tuple[Any, str, str]:
    """A mission whose settings hold `limits`, with two observers at station S-1."""
    mission, _ = make_mission(session)
    make_station(session, mission.id, "S-1")
    _, one = make_observer(session, mission.id, ["S-1"])
    _, two = make_observer(session, mission.id, ["S-1"])
    row = session.get(Mission, mission.id)
    row.settings = {"limits": limits}
    session.commit()
    return mission, one, two


def _batch(n: int) -> dict[str, Any]:
    return {"items": [checklist_payload("S-1") for _ in range(n)]}


def test_a_batch_counts_each_checklist_and_one_past_the_allowance_stores_nothing(
    session: Any, client: Any
) -> None:
    _, one, two = _mission_with_limits(session, checklists_per_minute=1, checklists_burst=5)
    assert client.post("/sync/checklists", json=_batch(5), headers=auth(one)).json()["created"] == 5
    refused = client.post("/sync/checklists", json=_batch(3), headers=auth(one))
    assert refused.status_code == 429
    assert refused.json()["code"] == "checklist_limit"
    assert int(refused.headers["Retry-After"]) >= 1
    assert _stored(session) == 5  # nothing of the refused batch
    single = client.post("/checklists", json=checklist_payload("S-1"), headers=auth(one))
    assert single.status_code == 429 and _stored(session) == 5
    # Per observer: the other observer of the mission still sends.
    assert client.post("/sync/checklists", json=_batch(2), headers=auth(two)).status_code == 200
    assert _stored(session) == 7


def test_an_observers_second_token_shares_the_first_ones_allowance(
    session: Any, client: Any
) -> None:
    from api.services import credentials

    mission, one, _ = _mission_with_limits(session, checklists_per_minute=1, checklists_burst=2)
    me = client.get("/me", headers=auth(one)).json()
    observer_id = uuid.UUID(me["observer_id"])
    again = credentials.issue(session, mission.id, Role.observer, "second phone", observer_id)
    session.commit()
    assert client.post("/sync/checklists", json=_batch(2), headers=auth(one)).status_code == 200
    refused = client.post("/checklists", json=checklist_payload("S-1"), headers=auth(again.token))
    assert refused.status_code == 429


def test_the_default_allowance_lets_a_phone_empty_a_full_queue_twice_then_meters_it() -> None:
    default = ratelimit.checklist_allowance(ratelimit.MissionLimits(), Settings())
    assert default.burst >= 2 * Settings().max_batch_items  # a queue, and its resend
    key = f"checklists:test-{time.time()}"
    now = 1_900_000_000.0
    ratelimit.spend(key, default.burst, default, "x", "x", now=now)
    with pytest.raises(ratelimit.TooManyRequests) as refused:
        ratelimit.spend(key, 1, default, "x", "x", now=now)
    wait = int(refused.value.headers["Retry-After"])
    assert wait == 60 / default.per_minute
    ratelimit.spend(key, 1, default, "x", "x", now=now + wait)  # one more, a T later


def test_a_bad_value_in_a_missions_limits_falls_back_to_the_default() -> None:
    limits = ratelimit.mission_limits(
        {"limits": {"checklists_per_minute": "lots", "checklists_burst": 50}}
    )
    allowance = ratelimit.checklist_allowance(limits, Settings())
    assert allowance.per_minute == Settings().limit_checklists_per_minute
    assert allowance.burst == 50


def test_bad_tokens_from_one_address_get_429_while_its_valid_tokens_still_pass(
    session: Any,
) -> None:
    mission, _ = make_mission(session)
    viewer = make_token(session, mission.id, Role.viewer)
    settings = {"limit_failed_auth_per_minute": 1, "limit_failed_auth_burst": 3}
    # Two app instances stand for two server processes: they share only the database.
    with (
        TestClient(app_with_settings(**settings), raise_server_exceptions=False) as one,
        TestClient(app_with_settings(**settings), raise_server_exceptions=False) as two,
    ):
        assert one.get("/me", headers=auth(viewer)).status_code == 200
        statuses = [
            c.get("/me", headers=auth(f"pc_unknown{i}")).status_code
            for i, c in enumerate((one, two, one))
        ]
        assert statuses == [401, 401, 401]
        refused = two.get("/me", headers=auth("pc_unknown_again"))
        assert refused.status_code == 429
        assert refused.json()["code"] == "bad_tokens"
        assert int(refused.headers["Retry-After"]) >= 1
        assert two.post("/checklists", json={}).status_code == 429  # no token at all
        assert one.get("/me", headers=auth(viewer)).status_code == 200
        assert two.get("/healthz").status_code == 200  # token-less pages still load


def test_an_observer_behind_a_flooding_address_still_posts_with_a_token_the_server_signed(
    session: Any,
) -> None:
    """A carrier's NAT puts an attacker and real observers behind one address: once the
    address is refused, made-up tokens are turned away without the database, while a token
    this server issued (signed with its secret key) is still looked up and served, even by
    a process that has never seen it."""
    mission, _ = make_mission(session)
    make_station(session, mission.id, "S-1")
    _, observer = make_observer(session, mission.id, ["S-1"])
    settings = {"limit_failed_auth_per_minute": 1, "limit_failed_auth_burst": 2}
    with TestClient(app_with_settings(**settings), raise_server_exceptions=False) as client:
        for i in range(2):
            assert client.get("/me", headers=auth(f"pc_made_up{i}")).status_code == 401
        assert client.get("/me", headers=auth("pc_made_up")).status_code == 429
        with ratelimit._good_lock:
            ratelimit._good.clear()  # this process has not seen the observer's token
        forged = observer.rpartition(".")[0] + ".AAAAAAAAAAAA"  # a real body, a made-up tag
        assert client.get("/me", headers=auth(forged)).status_code == 429
        r = client.post("/checklists", json=checklist_payload("S-1"), headers=auth(observer))
        assert r.status_code == 201, r.text
        assert _stored(session) == 1


def test_a_token_is_signed_only_under_the_key_that_issued_it() -> None:
    token = security.new_token("one key")
    assert token.startswith("pc_") and security.signed(token, "one key")
    assert not security.signed(token, "another key")
    assert not security.signed(token[:-1] + ("A" if token[-1] != "A" else "B"), "one key")
    assert not security.signed("pc_" + "x" * 43, "one key")  # a token from before the tags
    assert not security.signed("", "one key") and not security.signed(".", "one key")


def test_a_pool_that_stays_busy_answers_503_with_retry_after_within_seconds(
    session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api import db
    from api.config import get_settings

    mission, admin = make_mission(session)
    session.close()
    small = {"DB_POOL_SIZE": "1", "DB_MAX_OVERFLOW": "0", "DB_POOL_TIMEOUT_S": "0.5"}
    for name, value in small.items():
        monkeypatch.setenv(f"POLLCHECK_{name}", value)
    get_settings.cache_clear()
    db.reset_engines()
    try:
        app = app_with_settings(**get_settings().model_dump())
        with TestClient(app, raise_server_exceptions=False) as client:
            held = db.get_engine().connect()  # the whole pool, busy elsewhere
            held.exec_driver_sql("SELECT 1")
            try:
                started = time.monotonic()
                answer = client.get(f"/missions/{mission.id}/stations", headers=auth(admin))
                waited = time.monotonic() - started
            finally:
                held.close()
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"]
        assert waited < 5
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        db.reset_engines()


def test_single_posts_count_one_each_whether_or_not_the_process_knows_the_token(
    session: Any, client: Any
) -> None:
    # The first post of a token is looked up, then charged; later ones are looked up and
    # charged in one statement (PostgreSQL). Both meet the same allowance.
    _, one, _ = _mission_with_limits(session, checklists_per_minute=1, checklists_burst=2)
    ratelimit.forget_addresses()  # the process has not seen the token
    posts = [client.post("/checklists", json=checklist_payload("S-1"), headers=auth(one))]
    posts += [client.post("/checklists", json=checklist_payload("S-1"), headers=auth(one))]
    refused = client.post("/checklists", json=checklist_payload("S-1"), headers=auth(one))
    assert [p.status_code for p in posts] == [201, 201]
    assert refused.status_code == 429 and refused.json()["code"] == "checklist_limit"
    assert 55 <= int(refused.headers["Retry-After"]) <= 60
    assert _stored(session) == 2


@pytest.mark.postgres_only
def test_a_statement_that_runs_past_its_timeout_answers_503_with_retry_after(
    session: Any,
) -> None:
    from fastapi import FastAPI

    from api.db import get_engine
    from api.errors import install_error_handlers

    app = FastAPI()
    install_error_handlers(app)

    @app.get("/slow")
    def slow() -> None:
        with get_engine().connect() as conn:
            conn.exec_driver_sql("SET LOCAL statement_timeout = 50")  # this transaction only
            conn.exec_driver_sql("SELECT pg_sleep(2)")

    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/slow")
    assert answer.status_code == 503
    assert answer.headers["Retry-After"]
