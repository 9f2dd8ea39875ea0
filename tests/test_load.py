"""Election-day load against real processes: 128 phones starting their day at once (the
day's work first, then half of them emptying queues in batches of 10) on two uvicorn
workers over PostgreSQL, from a cold start, with one worker killed by SIGKILL mid-load.
Every answer is a success, a 429 or a 503 with Retry-After (never a 500); the phones resend
what was not acknowledged, as the web app does; in the end every checklist is stored
exactly once, with all its answers."""

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
from sqlalchemy.orm import Session

from api.services import credentials, observers
from models import Role
from models.observer import ObserverCreate
from tests.factories import answers_for, checklist_payload, migrated_mission
from tests.servers import answer_rows, start_api, stored_checklists, throwaway_postgres

pytestmark = [pytest.mark.slow, pytest.mark.postgres_only]

CLIENTS = 128
BATCH = 10
QUEUES = 3  # each phone sends this many queues: one checklist each, or a batch of BATCH
KILL_AFTER = 150  # checklists acknowledged before a worker is killed
BOUND_S = 240.0  # so that the test never hangs on a machine shared by many, not a speed check
STATIONS = ["L-1", "L-2", "L-3", "L-4"]


def _body() -> dict[str, Any]:
    station = STATIONS[uuid.uuid4().int % len(STATIONS)]
    return checklist_payload(station, "voting", answers_for("voting"))


def _observers(session: Session, mission_id: uuid.UUID) -> list[str]:
    """CLIENTS observers at every station, in one transaction; their tokens."""
    tokens = []
    for k in range(CLIENTS):
        code = f"LOAD-{k:03}"
        obs, _ = observers.create_or_update(
            session, mission_id, ObserverCreate(code=code, name=code, stations=STATIONS)
        )
        tokens.append(credentials.issue(session, mission_id, Role.observer, code, obs.id).token)
    session.commit()
    return tokens


class Kill:
    """SIGKILLs a worker from the phone thread that sees the KILL_AFTER-th acknowledgement,
    so that requests are in flight when it dies (a main thread polling the count woke, under
    128 busy threads, when most of the load was already done)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.acked = 0
        self.at: int | None = None
        self._lock = threading.Lock()

    def count(self, n: int) -> None:
        with self._lock:
            self.acked += n
            if self.at is None and self.acked >= KILL_AFTER:
                self.at = self.acked
                os.kill(self.pid, signal.SIGKILL)  # mid-load: no shutdown, requests cut


@dataclass
class Phone:
    """One observer's phone: a queue sent until every item is acknowledged."""

    base_url: str
    token: str
    batches: bool
    kill: Kill
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)
    acked: set[str] = field(default_factory=set)
    statuses: list[int] = field(default_factory=list)
    without_retry_after: int = 0

    def run(self, deadline: float) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.base_url, headers=headers, timeout=30) as client:
            while time.monotonic() < deadline and not self._day(client):
                pass  # every phone starts its day at once: stations and templates first
            for _ in range(QUEUES):
                queue = [_body() for _ in range(BATCH if self.batches else 1)]
                self.sent.update({b["id"]: b for b in queue})
                while queue and time.monotonic() < deadline:
                    queue = self._send(client, queue)

    def _day(self, client: httpx.Client) -> bool:
        try:
            r = client.get("/sync/day")
        except httpx.HTTPError:
            time.sleep(0.1)
            return False
        self.statuses.append(r.status_code)
        if r.status_code in (429, 503):
            self._wait(r)
        return r.status_code == 200

    def _wait(self, r: httpx.Response) -> None:
        if not r.headers.get("retry-after"):
            self.without_retry_after += 1
        time.sleep(min(float(r.headers.get("retry-after") or 1), 1.0))

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
            self._wait(r)
            return queue
        if r.status_code in (200, 201) and not self.batches:
            self.acked.add(queue[0]["id"])
            self.kill.count(1)
            return []
        if r.status_code == 200:
            done = {x["id"] for x in r.json()["results"] if x["status"] in ("created", "duplicate")}
            self.acked |= done
            self.kill.count(len(done))
            return [b for b in queue if b["id"] not in done]
        return queue  # any other answer is counted in `statuses` and fails the test


def test_128_phones_and_a_killed_worker_get_no_500_and_nothing_is_lost_or_doubled() -> None:
    with throwaway_postgres() as pg:
        url = pg.url()
        engine, mission_id = migrated_mission(url, STATIONS)
        with Session(engine) as session:
            tokens = _observers(session, mission_id)
        server = start_api(
            url,
            workers=2,
            # Two workers' pools well inside the throwaway server's 100 connections.
            POLLCHECK_DB_POOL_SIZE="8",
            POLLCHECK_DB_MAX_OVERFLOW="2",
            POLLCHECK_DASHBOARD_THREADS="2",
        )
        try:
            workers = server.workers()
            assert len(workers) == 2, workers
            kill = Kill(workers[0])
            phones = [
                Phone(server.base_url, t, batches=i % 2 == 0, kill=kill)
                for i, t in enumerate(tokens)
            ]
            deadline = time.monotonic() + BOUND_S
            threads = [threading.Thread(target=p.run, args=(deadline,)) for p in phones]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            server.stop()
        assert kill.at is not None, "the load never got going"
        statuses = [s for p in phones for s in p.statuses]
        assert set(statuses) <= {200, 201, 429, 503}, sorted(set(statuses))
        assert not any(p.without_retry_after for p in phones), "a 429 or 503 without Retry-After"
        assert statuses.count(200) + statuses.count(201) > CLIENTS  # real work was done
        sent = {cid: body for p in phones for cid, body in p.sent.items()}
        unacked = sent.keys() - {cid for p in phones for cid in p.acked}
        assert not unacked, f"{len(unacked)} checklists never acknowledged"
        stored = stored_checklists(engine)
        assert stored.keys() == sent.keys(), "lost or unexpected checklists"
        wrong = {cid: n for cid, n in stored.items() if n != answer_rows(sent[cid])}
        assert not wrong, f"checklists with doubled or missing answers: {wrong}"
        engine.dispose()
