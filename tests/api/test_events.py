"""The live event stream, read in process: what a console gets on connect and what a
reconnecting console gets replayed (`Last-Event-ID`). In process a stream ends once it has
caught up (conftest); live streams against real servers are in tests/test_event_stream.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from api.services import events
from api.services.findings.fold import run_once
from models import Role
from tests.factories import answers_for, auth, checklist_payload, make_token, mission_with_staff


def parse(text: str) -> list[dict[str, Any]]:
    """The events of an event stream's text: each with its name, data, id and retry."""
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        event: dict[str, Any] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            key, _, value = line.partition(": ")
            if key == "data":
                event["data"] = json.loads(value)
            else:
                event[key] = value
        if event:
            out.append(event)
    return out


@pytest.fixture
def staff(session: Any, client: Any) -> dict[str, Any]:
    found = mission_with_staff(session)
    return found | {"viewer": make_token(session, found["mission"].id, Role.viewer)}


def _events(client: Any, staff: dict[str, Any], token: str, last: str | None = None) -> Any:
    headers = auth(token) | ({"Last-Event-ID": last} if last is not None else {})
    return client.get(f"/missions/{staff['mission'].id}/events", headers=headers)


def _post(client: Any, staff: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    body = checklist_payload("S-1", "voting", **overrides)
    r = client.post("/checklists", json=body, headers=auth(staff["observer"]))
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_a_stream_says_how_to_reconnect_and_hello_with_the_data_version(client, staff) -> None:
    r = _events(client, staff, staff["viewer"])
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["cache-control"] == "no-cache"
    assert r.text.startswith("retry: 2000\n\n")
    hello = parse(r.text)[1]
    assert hello["event"] == "hello"
    assert isinstance(hello["data"]["data_version"], int)
    assert hello["data"]["server_time"]
    assert events.Cursor.parse(hello["id"]) is not None


def test_observers_and_other_missions_get_403_and_no_stream(client, staff, session) -> None:
    assert _events(client, staff, staff["observer"]).status_code == 403
    other = mission_with_staff(session)
    r = client.get(f"/missions/{other['mission'].id}/events", headers=auth(staff["analyst"]))
    assert r.status_code == 403
    assert _events(client, staff, "pc_not-a-token").status_code == 401


def test_a_reconnect_gets_the_checklists_and_reviews_it_missed(client, staff) -> None:
    last = parse(_events(client, staff, staff["analyst"]).text)[-1]["id"]
    first = _post(client, staff)
    fix = checklist_payload("S-1", "voting", replaces=first["id"])
    assert client.post("/checklists", json=fix, headers=auth(staff["analyst"])).status_code == 201
    decision = {"state": "rejected", "comment": "the station was closed"}
    r = client.post(
        f"/checklists/{fix['id']}/review", json=decision, headers=auth(staff["analyst"])
    )
    assert r.status_code == 201

    missed = parse(_events(client, staff, staff["viewer"], last).text)[2:]
    assert [(e["event"], e["data"]["checklist_id"]) for e in missed] == [
        ("checklist", first["id"]),
        ("checklist", fix["id"]),
        ("review", fix["id"]),
    ]
    stored, corrected, review = (e["data"] for e in missed)
    assert stored["station_code"] == "S-1" and stored["phase"] == "voting"
    assert stored["version"] == 1 and stored["correction"] is False
    assert corrected["version"] == 2 and corrected["correction"] is True
    assert review == {
        "checklist_id": fix["id"],
        "version": 2,
        "state": "rejected",
        "quarantined": False,
        "comment_present": True,
    }
    # From the last of them on, nothing more is missed.
    again = parse(_events(client, staff, staff["viewer"], missed[-1]["id"]).text)
    assert [e.get("event") for e in again] == [None, "hello"]


def test_a_checklist_with_a_critical_answer_says_so(client, staff) -> None:
    last = parse(_events(client, staff, staff["analyst"]).text)[-1]["id"]
    _post(client, staff)
    # Observers not let in freely: a critical answer in the default template.
    critical = checklist_payload("S-1", "voting", answers_for("voting", {"B1": "no"}))
    r = client.post("/checklists", json=critical, headers=auth(staff["observer"]))
    assert r.status_code == 201, r.text
    missed = [e["data"] for e in parse(_events(client, staff, staff["analyst"], last).text)[2:]]
    assert [m["critical"] for m in missed] == [False, True]


def test_a_moved_findings_version_is_told_after_the_replay(client, staff) -> None:
    last = parse(_events(client, staff, staff["viewer"]).text)[-1]["id"]
    _post(client, staff)
    run_once()
    told = parse(_events(client, staff, staff["viewer"], last).text)
    assert [e["event"] for e in told[1:]] == ["hello", "checklist", "findings"]
    assert told[-1]["data"]["data_version"] == told[1]["data"]["data_version"] >= 1
    # The last id carries the version: resuming from it tells nothing again.
    again = parse(_events(client, staff, staff["viewer"], told[-1]["id"]).text)
    assert [e.get("event") for e in again] == [None, "hello"]


def test_too_much_to_replay_or_a_foreign_id_resets_the_console(client, staff, monkeypatch) -> None:
    last = parse(_events(client, staff, staff["viewer"]).text)[-1]["id"]
    _post(client, staff)
    _post(client, staff)
    monkeypatch.setattr(events, "REPLAY_MAX", 1)
    told = parse(_events(client, staff, staff["viewer"], last).text)
    assert [e["event"] for e in told[1:]] == ["hello", "reset"]
    monkeypatch.setattr(events, "REPLAY_MAX", 500)
    for foreign in ("yesterday", "99999999999.0"):
        told = parse(_events(client, staff, staff["viewer"], foreign).text)
        assert [e["event"] for e in told[1:]] == ["hello", "reset"]
