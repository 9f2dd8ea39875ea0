"""Faults under load, against real processes: PostgreSQL stopping mid-load (503 with
Retry-After, nothing acknowledged that is not stored, recovery without a restart) and the API
process killed with SIGKILL mid-load (every acknowledged checklist stored, none half-written).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from tests.conftest import BACKEND
from tests.factories import (
    answers_for,
    checklist_payload,
    make_observer,
    migrated_mission,
)
from tests.servers import (
    Load,
    Outcome,
    answer_rows,
    start_api,
    stored_checklists,
    throwaway_postgres,
)

pytestmark = pytest.mark.slow

STATIONS = ["F-1", "F-2", "F-3"]


def _prepare(url: str) -> tuple[Engine, str]:
    """Migrate the database and make a mission with an observer; returns the observer's token."""
    engine, mission_id = migrated_mission(url, STATIONS)
    with Session(engine) as session:
        _, token = make_observer(session, mission_id, STATIONS)
    return engine, token


def _body() -> dict[str, Any]:
    station = STATIONS[uuid.uuid4().int % len(STATIONS)]
    return checklist_payload(station, "voting", answers_for("voting"))


def _ok(o: Outcome) -> bool:
    return o.status in (200, 201)


@pytest.mark.postgres_only
def test_postgres_stopping_mid_load_gives_503_and_the_api_recovers_by_itself() -> None:
    with throwaway_postgres() as pg:
        engine, token = _prepare(pg.url())
        server = start_api(pg.url())
        load = Load(server.base_url, token, _body).start()
        try:
            load.wait_for(_ok, 30)
            pg.stop("immediate")
            down_from = len(load.outcomes)
            load.wait_for(lambda o: o.status == 503, 20)
            pg.start()
            acked_before = load.count(_ok)
            load.wait_for(_ok, acked_before + 30)  # it answers again, with no restart
        finally:
            load.stop()
            server.kill()
        outcomes = list(load.outcomes)
        statuses = {o.status for o in outcomes}
        assert statuses <= {200, 201, 503}, f"unexpected answers: {statuses}"
        assert all(o.retry_after for o in outcomes if o.status == 503)
        assert any(o.status == 503 for o in outcomes[down_from:])
        stored = stored_checklists(engine)
        missing = load.acknowledged() - stored.keys()
        assert not missing, f"{len(missing)} acknowledged checklists are not in the database"
        engine.dispose()


@pytest.fixture
def database_for_kill() -> Iterator[str]:
    """A database of this test's own: a SQLite file, or a throwaway PostgreSQL cluster."""
    if BACKEND == "postgresql":
        with throwaway_postgres() as pg:
            yield pg.url()
    else:
        folder = Path(tempfile.mkdtemp(prefix="pollcheck-kill-"))
        yield f"sqlite:///{folder / 'kill.db'}"


def test_sigkill_mid_load_loses_no_acknowledged_checklist_and_leaves_none_half_written(
    database_for_kill: str,
) -> None:
    engine, token = _prepare(database_for_kill)
    server = start_api(database_for_kill)
    load = Load(server.base_url, token, _body).start()
    try:
        load.wait_for(_ok, 40)
        server.kill()  # SIGKILL: no shutdown, no flush, requests cut mid-transaction
    finally:
        load.stop()
    stored = stored_checklists(engine)
    acked = load.acknowledged()
    assert acked and not (acked - stored.keys()), "an acknowledged checklist was lost"
    half_written = {cid: n for cid, n in stored.items() if n != answer_rows(load.bodies[cid])}
    assert not half_written, f"checklists stored without all their answers: {half_written}"
    with engine.connect() as conn:
        without_change = conn.execute(
            text(
                "SELECT COUNT(*) FROM checklist c WHERE NOT EXISTS "
                "(SELECT 1 FROM checklist_change x WHERE x.checklist_id = c.id)"
            )
        ).scalar_one()
    assert without_change == 0, "a stored checklist is missing from the change outbox"

    # A new process takes over; the phones resend what was not acknowledged, and everything
    # ends up stored exactly once.
    server = start_api(database_for_kill)
    try:
        import httpx

        with httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as client:
            for cid, body in load.bodies.items():
                if cid not in acked:
                    assert client.post("/checklists", json=body).status_code in (200, 201)
    finally:
        server.kill()
    assert stored_checklists(engine).keys() == load.bodies.keys()
    engine.dispose()
    if database_for_kill.startswith("sqlite"):
        os.remove(database_for_kill.removeprefix("sqlite:///"))
