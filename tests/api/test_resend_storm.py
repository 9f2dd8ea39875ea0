"""Phones on bad networks, against a real server with two worker processes: every request
sent three times at once, connections cut mid-request and right after it, batches resent
whole, and at the end nothing is lost and nothing is stored twice."""

from __future__ import annotations

import hashlib
import json
import os
import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import func, select

from models import Answer, Checklist, ChecklistChange
from tests.factories import (
    answers_for,
    checklist_payload,
    make_mission,
    make_observer,
    make_station,
)
from tests.live_server import live_server

BATCH = 8


@pytest.fixture
def phone(session: Any) -> dict[str, Any]:
    mission, _ = make_mission(session)
    for code in ("S-1", "S-2", "S-3"):
        make_station(session, mission.id, code)
    _, token = make_observer(session, mission.id, ["S-1", "S-2", "S-3"])
    return {"mission": mission, "token": token}


@pytest.fixture
def two_workers(db: None) -> Iterator[str]:
    with live_server(workers=2) as url:
        yield url


def _cut(
    url: str,
    path: str,
    token: str,
    body: bytes,
    keep: int,
    method: str = "POST",
    extra: dict[str, str] | None = None,
) -> None:
    extra = extra or {"Content-Type": "application/json"}
    """Send the request's head and `keep` bytes of its body, then drop the connection hard
    (RST), the way a phone losing its signal does; never read an answer."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Length: {len(body)}\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in extra.items())
        + "\r\n"
    ).encode()
    with socket.create_connection((host, port), timeout=10) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.sendall(head + body[:keep])


def _stamped(items: list[dict[str, Any]]) -> bytes:
    # A phone stamps its clock on every attempt; the server must still see a resend.
    now = datetime.now(UTC).isoformat()
    return json.dumps({"items": [i | {"sent_at": now} for i in items]}).encode()


@pytest.mark.postgres_only
@pytest.mark.slow
def test_resend_storm_loses_and_duplicates_nothing(
    two_workers: str, session: Any, phone: dict[str, Any]
) -> None:
    rnd = random.Random(4)
    token = phone["token"]
    queue = [
        checklist_payload(rnd.choice(["S-1", "S-2", "S-3"]), phase)
        for phase in ("opening", "voting", "closing") * 16
    ]
    # A correction queued right behind the version it corrects, as an observer offline would.
    correction = checklist_payload(
        queue[0]["station"],
        queue[0]["phase"],
        answers_for(queue[0]["phase"]),
        replaces=queue[0]["id"],
    )
    queue.insert(1, correction)
    batches = [queue[k : k + BATCH] for k in range(0, len(queue), BATCH)]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    seen: Counter[str] = Counter()
    created: Counter[str] = Counter()
    lock = threading.Lock()

    def send_batch(batch: list[dict[str, Any]]) -> None:
        with httpx.Client(base_url=two_workers, timeout=60) as c:
            r = c.post("/sync/checklists", content=_stamped(batch), headers=headers)
        if r.status_code in (429, 503):  # the phone tries again later
            return
        assert r.status_code == 200, r.text
        with lock:
            for res in r.json()["results"]:
                seen[res["status"]] += 1
                if res["status"] == "created":
                    created[res["id"]] += 1

    def send_one(item: dict[str, Any]) -> None:
        body = json.dumps(item | {"sent_at": datetime.now(UTC).isoformat()}).encode()
        with httpx.Client(base_url=two_workers, timeout=60) as c:
            r = c.post("/checklists", content=body, headers=headers)
        assert r.status_code in (200, 201, 409, 503), r.text
        with lock:
            seen[f"single {r.status_code}"] += 1
            if r.status_code == 201:
                created[item["id"]] += 1

    tasks: list[Any] = []
    for batch in batches:
        body = _stamped(batch)
        tasks += [lambda b=batch: send_batch(b)] * 3
        tasks.append(lambda b=body: _cut(two_workers, "/sync/checklists", token, b, len(b) // 2))
        tasks.append(lambda b=body: _cut(two_workers, "/sync/checklists", token, b, len(b)))
    for item in queue:
        if item is not correction:
            tasks += [lambda i=item: send_one(i)] * 3
    rnd.shuffle(tasks)
    with ThreadPoolExecutor(max_workers=12) as pool:
        for f in [pool.submit(t) for t in tasks]:
            f.result()

    # The phone's last flush: the whole queue again, until every item has its answer.
    final: dict[str, str] = {}
    for batch in batches:
        for _ in range(5):
            with httpx.Client(base_url=two_workers, timeout=60) as c:
                r = c.post("/sync/checklists", content=_stamped(batch), headers=headers)
            if r.status_code == 200:
                final |= {x["id"]: x["status"] for x in r.json()["results"]}
                break
    assert set(final) == {i["id"] for i in queue}
    assert set(final.values()) <= {"created", "duplicate"}, Counter(final.values())
    assert all(n == 1 for n in created.values()), "a checklist was created twice"
    assert seen["conflict"] == 0 and seen["invalid"] == 0, seen

    session.expire_all()
    ids = session.scalars(select(Checklist.id)).all()
    assert len(ids) == len(queue) and {str(i) for i in ids} == {i["id"] for i in queue}
    assert session.scalar(select(func.count()).select_from(ChecklistChange)) == len(queue) + 1
    latest = session.scalars(select(Checklist).where(Checklist.root_id == queue[0]["id"])).all()
    assert sorted((c.version, c.is_latest) for c in latest) == [(1, False), (2, True)]
    answers = session.scalar(select(func.count()).select_from(Answer))
    assert answers == sum(len(i["answers"]) for i in queue)


def test_photo_upload_cut_mid_body_resumes_where_it_stopped(
    session: Any, phone: dict[str, Any], db: None
) -> None:
    photo = os.urandom(300_000)
    declared = {
        "name": "protocol.jpg",
        "sha256": hashlib.sha256(photo).hexdigest(),
        "size": len(photo),
        "content_type": "image/jpeg",
    }
    item = checklist_payload("S-1", "closing", attachments=[declared])
    with live_server() as url, httpx.Client(base_url=url, timeout=30) as c:
        auth = {"Authorization": f"Bearer {phone['token']}"}
        assert c.post("/sync/checklists", json={"items": [item]}, headers=auth).status_code == 200
        path = f"/checklists/{item['id']}/attachments/protocol.jpg"
        jpeg = {"Content-Type": "image/jpeg"}
        first = c.put(
            path, content=photo[:100_000], headers=auth | jpeg | _range(0, 100_000, photo)
        )
        assert first.status_code == 200 and first.json()["received"] == 100_000
        # The next chunk is cut halfway: the server keeps the chunks it received whole.
        chunk = photo[100_000:200_000]
        _cut(
            url, path, phone["token"], chunk, 50_000, "PUT", jpeg | _range(100_000, 200_000, photo)
        )
        assert _received(c, item["id"], auth) == 100_000

        def resume() -> httpx.Response:
            held = _received(c, item["id"], auth)
            return c.put(
                path, content=photo[held:], headers=auth | jpeg | _range(held, len(photo), photo)
            )

        # Had the server been writing when the line dropped, the file would still be locked.
        r = _poll(resume, lambda r: r.status_code != 409)
        assert r.status_code == 201, r.text
        assert c.get(path, headers=auth).content == photo


def _range(first: int, end: int, whole: bytes) -> dict[str, str]:
    return {"Content-Range": f"bytes {first}-{end - 1}/{len(whole)}"}


def _received(c: httpx.Client, checklist_id: str, auth: dict[str, str]) -> int:
    out = c.get(f"/checklists/{checklist_id}/attachments", headers=auth).json()
    return int(out["data"][0]["received"])


def _poll(fn: Any, done: Any) -> Any:
    deadline = time.monotonic() + 20
    while True:
        value = fn()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.1)
