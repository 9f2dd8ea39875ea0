"""Election-day load against real processes: 128 phones (half of them emptying queues in
batches) on two uvicorn workers over PostgreSQL, from a cold start, with one worker killed
by SIGKILL mid-load. Every answer is a success, a 429 or a 503 with Retry-After (never a
500); the phones resend what was not acknowledged, as the web app does; in the end every
checklist is stored exactly once, with all its answers."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from api import migrate
from api.db import make_engine
from tests.factories import (
    answers_for,
    checklist_payload,
    make_mission,
    make_observer,
    make_station,
)
from tests.servers import start_api, throwaway_postgres

pytestmark = [pytest.mark.slow, pytest.mark.postgres_only]

CLIENTS = 128
BATCH = 10
LOAD_S = 12.0  # of sending new checklists; then the phones empty what is left
KILL_AT_S = 4.0
DRAIN_S = 30.0  # a bound so that the test never hangs, not a speed check
STATIONS = ["L-1", "L-2", "L-3", "L-4"]


def _body() -> dict[str, Any]:
    station = STATIONS[uuid.uuid4().int % len(STATIONS)]
    return checklist_payload(station, "voting", answers_for("voting"))


def _answer_rows(body: dict[str, Any]) -> int:
    return sum(len(v) if isinstance(v, list) else 1 for v in body["answers"].values())


@dataclass
class Phone:
    """One observer's phone: a queue sent until every item is acknowledged."""

    base_url: str
    token: str
    batches: bool
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)
    acked: set[str] = field(default_factory=set)
    statuses: list[int] = field(default_factory=list)
    without_retry_after: int = 0

    def run(self, stop_new: threading.Event, deadline: float) -> None:
        queue: list[dict[str, Any]] = []
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.base_url, headers=headers, timeout=15) as client:
            while time.monotonic() < deadline:
                if not queue:
                    if stop_new.is_set():
                        return
                    queue = [_body() for _ in range(BATCH if self.batches else 1)]
                    self.sent.update({b["id"]: b for b in queue})
                queue = self._send(client, queue)

    def _send(self, client: httpx.Client, queue: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """What is left of the queue after one attempt."""
        try:
            if self.batches:
                r = client.post("/sync/checklists", json={"items": queue})
            else:
                r = client.post("/checklists", json=queue[0])
        except httpx.HTTPError:  # a worker killed mid-request, a refused connection
            time.sleep(0.1)
            return queue
        self.statuses.append(r.status_code)
        if r.status_code in (429, 503):
            if not r.headers.get("retry-after"):
                self.without_retry_after += 1
            time.sleep(min(float(r.headers.get("retry-after") or 1), 1.0))
            return queue
        if r.status_code in (200, 201) and not self.batches:
            self.acked.add(queue[0]["id"])
            return []
        if r.status_code == 200:
            done = {x["id"] for x in r.json()["results"] if x["status"] in ("created", "duplicate")}
            self.acked |= done
            return [b for b in queue if b["id"] not in done]
        return queue  # any other answer is counted in `statuses` and fails the test


def test_128_phones_and_a_killed_worker_get_no_500_and_nothing_is_lost_or_doubled() -> None:
    with throwaway_postgres() as pg:
        url = pg.url()
        migrate.upgrade(url)
        engine = make_engine(url)
        with Session(engine) as session:
            mission, _ = make_mission(session)
            for code in STATIONS:
                make_station(session, mission.id, code)
            tokens = [make_observer(session, mission.id, STATIONS)[1] for _ in range(CLIENTS)]
        server = start_api(
            url,
            workers=2,
            # Two workers' pools well inside the throwaway server's 100 connections.
            POLLCHECK_DB_POOL_SIZE="8",
            POLLCHECK_DB_MAX_OVERFLOW="2",
            POLLCHECK_DASHBOARD_THREADS="2",
        )
        phones = [Phone(server.base_url, t, batches=i % 2 == 0) for i, t in enumerate(tokens)]
        stop_new = threading.Event()
        deadline = time.monotonic() + LOAD_S + DRAIN_S
        threads = [threading.Thread(target=p.run, args=(stop_new, deadline)) for p in phones]
        try:
            workers = server.workers()
            assert len(workers) == 2, workers
            for t in threads:
                t.start()
            time.sleep(KILL_AT_S)
            os.kill(workers[0], signal.SIGKILL)
            time.sleep(LOAD_S - KILL_AT_S)
            stop_new.set()
            for t in threads:
                t.join(timeout=DRAIN_S + 10)
        finally:
            stop_new.set()
            server.stop()
        statuses = [s for p in phones for s in p.statuses]
        assert set(statuses) <= {200, 201, 429, 503}, sorted(set(statuses))
        assert not any(p.without_retry_after for p in phones), "a 429 or 503 without Retry-After"
        assert statuses.count(200) + statuses.count(201) > CLIENTS  # real work was done
        sent = {cid: body for p in phones for cid, body in p.sent.items()}
        unacked = sent.keys() - {cid for p in phones for cid in p.acked}
        assert not unacked, f"{len(unacked)} checklists never acknowledged"
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT c.id, COUNT(a.checklist_id) FROM checklist c "
                    "LEFT JOIN answer a ON a.checklist_id = c.id GROUP BY c.id"
                )
            ).all()
        stored = {str(r[0]): int(r[1]) for r in rows}
        assert stored.keys() == sent.keys(), "lost or unexpected checklists"
        wrong = {cid: n for cid, n in stored.items() if n != _answer_rows(sent[cid])}
        assert not wrong, f"checklists with doubled or missing answers: {wrong}"
        engine.dispose()
