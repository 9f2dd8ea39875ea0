"""The live event stream against real uvicorn servers: events arrive while the stream is
open, across processes on PostgreSQL; a revoked token ends the stream; the number of
streams is bounded and a closed one frees its place. (What a stream says on connect and
replays is in tests/api/test_events.py.)"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from api.db import session_scope
from api.services import credentials
from models import Role
from tests.factories import auth, checklist_payload, mission_with_staff
from tests.live_server import live_server

# Fast enough for a test: tokens checked every half second, keepalives as often.
SERVER_ENV = {
    "POLLCHECK_EVENTS_MAX_STREAMS": "2",
    "POLLCHECK_EVENTS_TOKEN_CHECK_S": "0.5",
    "POLLCHECK_EVENTS_KEEPALIVE_S": "0.5",
}
ARRIVAL_S = 2.0  # the issue's promise: on a console within 2 s of being stored


class Listener:
    """An open event stream read in a thread: its events (and keepalives) in a queue."""

    def __init__(self, base_url: str, mission_id: Any, token: str) -> None:
        self.url = f"{base_url}/missions/{mission_id}/events"
        self.headers = auth(token)
        self.items: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.status: int | None = None
        self.opened = threading.Event()
        self._response: httpx.Response | None = None
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        assert self.opened.wait(30), "the stream did not answer"

    def _read(self) -> None:
        try:
            with httpx.stream("GET", self.url, headers=self.headers, timeout=30) as response:
                self._response = response
                self.status = response.status_code
                self.opened.set()
                event: dict[str, Any] = {}
                for line in response.iter_lines():
                    if line.startswith(":"):
                        self.items.put({"comment": line[1:].strip()})
                    elif not line:
                        if event:
                            self.items.put(event)
                        event = {}
                    else:
                        key, _, value = line.partition(": ")
                        event[key] = json.loads(value) if key == "data" else value
        except httpx.HTTPError:
            pass
        finally:
            self.opened.set()
            self.items.put(None)  # the stream ended

    def next(self, name: str, within: float) -> dict[str, Any]:
        """The next event called `name` (or {"comment": …} for "comment"); fails past
        `within` seconds or when the stream ends first."""
        deadline = time.monotonic() + within
        while (left := deadline - time.monotonic()) > 0:
            try:
                item = self.items.get(timeout=left)
            except queue.Empty:
                break
            if item is None:
                raise AssertionError(f"the stream ended before a {name} event")
            if item.get("event") == name or (name == "comment" and "comment" in item):
                return item
        raise AssertionError(f"no {name} event within {within} s")

    def ended(self, within: float) -> bool:
        deadline = time.monotonic() + within
        while (left := deadline - time.monotonic()) > 0:
            try:
                if self.items.get(timeout=left) is None:
                    return True
            except queue.Empty:
                break
        return False

    def close(self) -> None:
        if self._response is not None:
            self._response.close()
        self._thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[str]:
    with live_server(**SERVER_ENV) as url:
        yield url


@pytest.fixture
def field(session: Any) -> dict[str, Any]:
    staff = mission_with_staff(session)
    viewer = credentials.issue(session, staff["mission"].id, Role.viewer, "console")
    session.commit()
    return staff | {"viewer": viewer.token, "viewer_id": viewer.id}


def _post(base_url: str, field: dict[str, Any]) -> str:
    body = checklist_payload("S-1", "voting")
    r = httpx.post(f"{base_url}/checklists", json=body, headers=auth(field["observer"]))
    assert r.status_code == 201, r.text
    return str(body["id"])


def test_a_posted_checklist_reaches_an_open_console_within_2_s(server, field) -> None:
    listener = Listener(server, field["mission"].id, field["viewer"])
    try:
        assert listener.status == 200
        listener.next("hello", 10)
        checklist_id = _post(server, field)
        event = listener.next("checklist", ARRIVAL_S)
        assert event["data"]["checklist_id"] == checklist_id
        assert event["id"]
        assert listener.next("comment", 5)["comment"] == "keepalive"
    finally:
        listener.close()


def test_a_revoked_token_ends_its_stream(server, field) -> None:
    listener = Listener(server, field["mission"].id, field["viewer"])
    try:
        listener.next("hello", 10)
        with session_scope() as s:
            credentials.revoke(s, field["mission"].id, field["viewer_id"])
        assert listener.next("unauthorized", 10)["data"] == {}
        assert listener.ended(5)
        again = httpx.get(listener.url, headers=listener.headers, timeout=10)
        assert again.status_code == 401
    finally:
        listener.close()


def test_streams_past_the_limit_get_503_and_a_closed_one_frees_its_place(server, field) -> None:
    with ExitStack() as stack:
        held = []
        for token in (field["viewer"], field["analyst"]):
            listener = Listener(server, field["mission"].id, token)
            stack.callback(listener.close)
            listener.next("hello", 10)
            held.append(listener)
        refused = httpx.get(held[0].url, headers=held[0].headers, timeout=10)
        assert refused.status_code == 503
        assert refused.headers["retry-after"]
        assert refused.json()["code"] == "too_many_streams"
        held[1].close()
        # The server notices the client went away: its place is free again.
        deadline = time.monotonic() + 10
        while True:
            listener = Listener(server, field["mission"].id, field["analyst"])
            stack.callback(listener.close)
            if listener.status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert listener.status == 200
        listener.next("hello", 10)


@pytest.mark.postgres_only
@pytest.mark.slow
def test_a_checklist_posted_to_one_process_reaches_a_stream_held_by_another(
    database_url: str, field: dict[str, Any]
) -> None:
    with live_server(**SERVER_ENV) as one, live_server(**SERVER_ENV) as other:
        listener = Listener(other, field["mission"].id, field["viewer"])
        try:
            listener.next("hello", 10)
            checklist_id = _post(one, field)
            event = listener.next("checklist", ARRIVAL_S)
            assert event["data"]["checklist_id"] == checklist_id
        finally:
            listener.close()
