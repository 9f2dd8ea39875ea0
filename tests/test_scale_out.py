"""Beyond one machine, on PostgreSQL's own means, against real processes: two API nodes
folding into one database (one fold at a time: nothing counted twice), dashboards reading a
real streaming replica (and no view ever going backwards when the replica lags), and
PgBouncer in transaction mode in front of everything."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy.orm import Session

from api.db import make_engine
from models import Role
from tests.factories import (
    answers_for,
    auth,
    checklist_payload,
    make_observer,
    make_token,
    migrated_mission,
)
from tests.servers import (
    Load,
    pgbouncer_installed,
    start_api,
    stored_checklists,
    throwaway_pgbouncer,
    throwaway_postgres,
    throwaway_replica,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres_only]

STATIONS = ["S-1", "S-2", "S-3", "S-4"]
FOLD_OFTEN = {
    "POLLCHECK_FINDINGS_FOLD_INTERVAL_S": "0.2",
    "POLLCHECK_FINDINGS_CACHE_S": "0",
    "POLLCHECK_LIMIT_CHECKLISTS_PER_MINUTE": "0",
}


def _prepare(url: str) -> tuple[uuid.UUID, str, str]:
    """Migrate, then a mission with stations, an observer and a viewer: (mission, observer's
    token, viewer's token)."""
    engine, mission_id = migrated_mission(url, STATIONS)
    with Session(engine) as session:
        _, observer = make_observer(session, mission_id, STATIONS)
        viewer = make_token(session, mission_id, Role.viewer)
    engine.dispose()
    return mission_id, observer, viewer


def _voting() -> dict[str, Any]:
    station = STATIONS[uuid.uuid4().int % len(STATIONS)]
    return checklist_payload(station, "voting", answers_for("voting"))


def _post(base_url: str, token: str, count: int) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for _ in range(count):
            r = client.post("/checklists", json=_voting(), headers=auth(token))
            assert r.status_code == 201, r.text


def _get(base_url: str, token: str, path: str) -> httpx.Response:
    r = httpx.get(base_url + path, headers=auth(token), timeout=30)
    assert r.status_code == 200, r.text
    return r


def _until(what: str, check: Callable[[], Any], limit_s: float = 60) -> Any:
    """Poll until `check` gives something true; a bound never to hang, not a speed check."""
    deadline = time.monotonic() + limit_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"still not {what} after {limit_s:.0f} s")
        time.sleep(0.1)


def _observations(body: dict[str, Any]) -> int:
    return int(body["totals"]["observations"])


def test_two_nodes_fold_once_and_dashboards_read_a_replica_that_never_goes_backwards() -> None:
    with throwaway_postgres() as primary, throwaway_replica(primary) as replica:
        mission, observer, viewer = _prepare(primary.url())
        # Node A: dashboards on the replica. Node B: everything on the primary. Both fold.
        a = start_api(primary.url(), POLLCHECK_READ_DATABASE_URL=replica.url(), **FOLD_OFTEN)
        b = start_api(primary.url(), **FOLD_OFTEN)
        try:
            # Both nodes take checklists at once, so both folders find work at once.
            posters = [
                threading.Thread(target=_post, args=(node.base_url, observer, 20))
                for node in (a, b, a, b)
            ]
            for t in posters:
                t.start()
            for t in posters:
                t.join()
            version_path = f"/missions/{mission}/findings/version"
            caught_up = _until(
                "caught up on the replica",
                lambda: (v := _get(a.base_url, viewer, version_path).json())["caught_up"] and v,
            )
            assert caught_up["replica_version"] == caught_up["data_version"] > 0
            assert caught_up["replica_lag_s"] is not None

            findings = _get(a.base_url, viewer, f"/missions/{mission}/findings")
            assert "X-Replica-Lag" in findings.headers
            # Caught up on the replica: nothing there waits for the fold.
            assert findings.headers["X-Findings-Lag"] == "0.000"
            body = findings.json()
            assert body["replica_lag_s"] is not None
            # 80 checklists through two nodes folding at once: each counted exactly once.
            assert _observations(body) == 80
            on_b = _get(b.base_url, viewer, f"/missions/{mission}/findings")
            assert "X-Replica-Lag" not in on_b.headers
            assert _observations(on_b.json()) == 80

            # The replica stops replaying: node A's reads now lag the primary.
            with psycopg.connect(replica.dsn(), autocommit=True) as conn:
                conn.execute("SELECT pg_wal_replay_pause()")
            _post(b.base_url, observer, 10)
            _until(
                "caught up on the primary",
                lambda: _get(b.base_url, viewer, version_path).json()["caught_up"],
            )
            behind = _get(a.base_url, viewer, version_path).json()
            assert not behind["caught_up"]
            assert behind["replica_version"] < behind["data_version"]

            # A view nobody has asked for is computed on node A from the replica: without
            # the 10 checklists the replica has not replayed (proof that it reads there).
            voting = f"/missions/{mission}/findings?phase=voting"
            lagging = _get(a.base_url, viewer, voting)
            assert _observations(lagging.json()) == 80
            assert float(lagging.headers["X-Replica-Lag"]) > 0

            # Node B computes the whole-mission view from the primary; node A, asked next,
            # serves that newer view rather than compute an older one from its replica.
            newest = _get(b.base_url, viewer, f"/missions/{mission}/findings").json()
            assert _observations(newest) == 90
            served = _get(a.base_url, viewer, f"/missions/{mission}/findings").json()
            assert served["version"] >= newest["version"]
            assert _observations(served) == 90

            # Exports stream from the replica too, in one snapshot of it.
            export = _get(a.base_url, viewer, f"/missions/{mission}/exports/findings?format=csv")
            assert export.text.count("\n") > 1

            with psycopg.connect(replica.dsn(), autocommit=True) as conn:
                conn.execute("SELECT pg_wal_replay_resume()")
            _until(
                "caught up on the replica again",
                lambda: _get(a.base_url, viewer, version_path).json()["caught_up"],
            )
            _until(
                "the replica's view to include every checklist",
                lambda: _observations(_get(a.base_url, viewer, voting).json()) == 90,
            )
        finally:
            a.stop()
            b.stop()


def test_pgbouncer_in_transaction_mode_serves_intake_dashboards_and_live_streams() -> None:
    if not pgbouncer_installed():
        reason = "PgBouncer is not installed (apt-get install pgbouncer; .ci/run does)"
        if os.environ.get("POLLCHECK_REQUIRE_PG") == "1":
            pytest.fail(reason + " and POLLCHECK_REQUIRE_PG=1")
        pytest.skip(reason)
    with throwaway_postgres() as pg, throwaway_pgbouncer(pg, pool_size=3) as port:
        bouncer = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        with psycopg.connect(pg.dsn(), autocommit=True) as conn:
            # What the README asks of the role behind PgBouncer (startup options are dropped).
            conn.execute("ALTER ROLE postgres SET statement_timeout = '30s'")
            conn.execute("ALTER ROLE postgres SET jit = off")
        mission, observer, viewer = _prepare(bouncer)  # migrations through PgBouncer too
        server = start_api(
            bouncer,
            workers=2,
            POLLCHECK_DB_PGBOUNCER="true",
            POLLCHECK_DIRECT_DATABASE_URL=pg.url(),
            **FOLD_OFTEN,
        )
        load = Load(server.base_url, observer, _voting, threads=6).start()
        statuses: list[int] = []
        try:
            # Dashboards poll every view many times over: a statement psycopg had prepared
            # on one server connection would be missing on the next.
            for _ in range(8):
                for view in (
                    "findings",
                    "findings/coverage",
                    "findings/counting",
                    "statement",
                    "exports/findings?format=csv",  # one snapshot held for the whole file
                    "exports/stations?format=geojson",
                ):
                    r = httpx.get(
                        f"{server.base_url}/missions/{mission}/{view}",
                        headers=auth(viewer),
                        timeout=30,
                    )
                    statuses.append(r.status_code)
            load.wait_for(lambda o: o.status == 201, 150)
        finally:
            load.stop()
        try:
            answers = {o.status for o in load.outcomes}
            assert answers == {201}, f"intake through PgBouncer answered {answers}"
            assert set(statuses) == {200}, f"dashboards through PgBouncer answered {statuses}"
            stored = stored_checklists(make_engine(pg.url()))
            assert load.acknowledged() <= stored.keys()
            total = len(stored)
            _until(
                "the findings to count every checklist",
                lambda: (
                    _observations(
                        _get(server.base_url, viewer, f"/missions/{mission}/findings").json()
                    )
                    == total
                ),
            )
            # The live streams' LISTEN sessions go to PostgreSQL itself, never through
            # PgBouncer, which would hand their session to other clients between statements.
            _open_stream(server.base_url, viewer, mission)
            _until("a LISTEN session on PostgreSQL itself", lambda: _listening(pg.dsn()) > 0)
            with psycopg.connect(
                f"host=127.0.0.1 port={port} dbname=pgbouncer user=postgres",
                autocommit=True,
                cursor_factory=psycopg.ClientCursor,  # the admin console: simple queries only
            ) as admin:
                clients = admin.execute("SHOW CLIENTS").fetchall()
            assert clients, "PgBouncer lists no clients"
            assert not [c for c in clients if "pollcheck listen" in map(str, c)]
        finally:
            server.stop()


def _open_stream(base_url: str, token: str, mission: uuid.UUID) -> None:
    """A console's live stream answers through PgBouncer and starts its events."""
    with httpx.stream(
        "GET", f"{base_url}/missions/{mission}/events", headers=auth(token), timeout=30
    ) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith(("event:", "data:", "id:")):
                return
    raise AssertionError("the live stream ended without an event")


def _listening(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        found = conn.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE application_name = 'pollcheck listen' AND query LIKE 'LISTEN%'"
        ).fetchone()
    return int(found[0]) if found else 0
