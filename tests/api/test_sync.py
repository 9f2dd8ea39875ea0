"""Phone sync: the day's work, batch intake with a result per item, reconcile since a cursor."""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import func, select

from api.services import sync as sync_service
from models import Checklist, Role
from tests.factories import (
    answers_for,
    auth,
    checklist_payload,
    make_mission,
    make_observer,
    make_station,
    make_token,
)


@pytest.fixture
def field(session: Any) -> dict[str, Any]:
    """A mission, two assigned stations and one that is not, an observer who reads Russian."""
    mission, admin = make_mission(session)
    for code in ("S-2", "S-1", "S-3"):
        make_station(session, mission.id, code)
    observer, token = make_observer(session, mission.id, ["S-1", "S-2"], language="ru")
    return {"mission": mission, "admin": admin, "observer": observer, "token": token}


def _count(session: Any) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(Checklist))


def _sync(client: Any, token: str, items: list[Any]) -> Any:
    return client.post("/sync/checklists", json={"items": items}, headers=auth(token))


# --- the day's work --------------------------------------------------------------------


def test_day_of_work_has_assigned_stations_and_templates_in_the_observers_language(
    client, field
) -> None:
    r = client.get("/sync/day", headers=auth(field["token"]))
    assert r.status_code == 200, r.text
    day = r.json()
    assert day["language"] == "ru"
    assert day["mission"]["id"] == str(field["mission"].id)
    assert [s["code"] for s in day["stations"]] == ["S-1", "S-2"]
    (tpl,) = day["templates"]
    assert (tpl["code"], tpl["version"]) == ("default", 1)
    a1 = tpl["sections"][0]["questions"][0]
    assert a1["label"] == "Когда проголосовал первый избиратель?"
    assert a1["required"] is True and "max_length" not in a1


def test_day_of_work_follows_the_asked_language(client, field) -> None:
    day = client.get("/sync/day?lang=en", headers=auth(field["token"])).json()
    assert day["language"] == "en"
    assert day["templates"][0]["title"] == "Polling station observation checklist"


def test_day_of_work_in_a_language_the_mission_lacks_falls_back(client, session, field) -> None:
    day = client.get("/sync/day?lang=de", headers=auth(field["token"])).json()
    assert day["language"] == "ru"  # the observer's own
    _, plain = make_observer(session, field["mission"].id, ["S-1"])
    assert client.get("/sync/day?lang=de", headers=auth(plain)).json()["language"] == "en"


def test_unchanged_day_of_work_costs_a_304(client, field) -> None:
    first = client.get("/sync/day", headers=auth(field["token"]))
    etag = first.headers["etag"]
    again = client.get("/sync/day", headers={**auth(field["token"]), "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    listed = {**auth(field["token"]), "If-None-Match": f'"other", {etag.removeprefix("W/")}'}
    assert client.get("/sync/day", headers=listed).status_code == 304


def test_new_assignment_changes_the_etag(client, session, field) -> None:
    etag = client.get("/sync/day", headers=auth(field["token"])).headers["etag"]
    r = client.put(
        f"/missions/{field['mission'].id}/observers/{field['observer'].id}/assignments",
        json={"stations": ["S-1", "S-2", "S-3"]},
        headers=auth(field["admin"]),
    )
    assert r.status_code == 200, r.text
    after = client.get("/sync/day", headers={**auth(field["token"]), "If-None-Match": etag})
    assert after.status_code == 200
    assert [s["code"] for s in after.json()["stations"]] == ["S-1", "S-2", "S-3"]


def test_day_of_work_is_gzipped_for_phones_that_accept_it(client, field) -> None:
    r = client.get("/sync/day", headers={**auth(field["token"]), "Accept-Encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip"
    plain = sync_service.render(sync_service.DayOfWork.model_validate(r.json()))[0]
    assert len(gzip.compress(plain)) < len(plain) / 3


def test_day_of_work_is_for_observers(client, field) -> None:
    r = client.get("/sync/day", headers=auth(field["admin"]))
    assert r.status_code == 403


# --- batch intake ----------------------------------------------------------------------


def test_batch_gives_each_item_its_own_result(client, session, field) -> None:
    good = checklist_payload("S-1")
    stored = checklist_payload("S-2", "opening")
    assert _sync(client, field["token"], [stored]).json()["created"] == 1
    broken = checklist_payload("S-1", answers={"D1": "maybe"})
    reused = {**stored, "answers": answers_for("opening", {"A1": "later"})}
    foreign = checklist_payload("S-3")
    r = _sync(client, field["token"], [good, stored, broken, reused, foreign, {"id": 5}])
    assert r.status_code == 200, r.text
    out = r.json()
    assert [x["status"] for x in out["results"]] == [
        "created",
        "duplicate",
        "invalid",
        "conflict",
        "invalid",
        "invalid",
    ]
    assert (out["created"], out["duplicate"], out["conflict"], out["invalid"]) == (1, 1, 1, 3)
    assert out["results"][0]["id"] == good["id"] and out["results"][0]["version"] == 1
    assert {"path": ["answers", "D1"], "code": "not_an_option"}.items() <= out["results"][2][
        "errors"
    ][0].items()
    assert out["results"][3]["code"] == "id_reused_with_other_content"
    assert out["results"][4]["errors"][0]["code"] == "not_assigned"
    assert "id" not in out["results"][5]
    assert _count(session) == 2


def test_resending_a_whole_batch_stores_nothing_twice(client, session, field) -> None:
    items = [checklist_payload("S-1"), checklist_payload("S-2"), checklist_payload("S-1")]
    first = _sync(client, field["token"], items).json()
    again = _sync(client, field["token"], items).json()
    assert first["created"] == 3
    assert again["duplicate"] == 3 and again["created"] == 0
    assert _count(session) == 3


def test_resend_with_a_new_send_time_is_still_a_duplicate(client, session, field) -> None:
    item = checklist_payload("S-1", sent_at=datetime.now(UTC).isoformat())
    _sync(client, field["token"], [item])
    later = {**item, "sent_at": (datetime.now(UTC) + timedelta(minutes=3)).isoformat()}
    out = _sync(client, field["token"], [later]).json()
    assert out["results"][0]["status"] == "duplicate"
    assert client.post("/checklists", json=later, headers=auth(field["token"])).status_code == 200
    assert _count(session) == 1


def test_far_off_phone_clock_is_flagged_in_the_result(client, field) -> None:
    slow = datetime.now(UTC) - timedelta(hours=2)
    item = checklist_payload(
        "S-1", observed_at=(slow - timedelta(minutes=5)).isoformat(), sent_at=slow.isoformat()
    )
    out = _sync(client, field["token"], [item]).json()["results"][0]
    assert out["status"] == "created" and out["clock_flagged"] is True
    stored = client.get(f"/checklists/{item['id']}", headers=auth(field["token"])).json()
    assert stored["observed_utc_offset_min"] == 0 and abs(stored["clock_skew_s"] - 7200) < 60


def test_correction_queued_with_its_original_is_stored_in_order(client, session, field) -> None:
    original = checklist_payload("S-1")
    fix = checklist_payload("S-1", replaces=original["id"], answers=answers_for("voting"))
    out = _sync(client, field["token"], [original, fix]).json()
    assert [x["version"] for x in out["results"]] == [1, 2]


def test_batch_over_the_limit_is_refused_whole(client, session, field) -> None:
    items = [checklist_payload("S-1") for _ in range(201)]
    r = _sync(client, field["token"], items)
    assert r.status_code == 422 and r.json()["code"] == "batch_too_large"
    assert _count(session) == 0


@pytest.mark.parametrize("body", [b"[]", b'{"items": 3}', b'{"items": []', b"{}"])
def test_malformed_batch_is_a_422(client, field, body: bytes) -> None:
    r = client.post(
        "/sync/checklists",
        content=body,
        headers={**auth(field["token"]), "Content-Type": "application/json"},
    )
    assert r.status_code == 422


# --- reconcile -------------------------------------------------------------------------


def test_reconcile_pages_through_every_version_since_a_cursor(client, field) -> None:
    items = [checklist_payload("S-1") for _ in range(5)]
    _sync(client, field["token"], items)
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/sync/checklists", params=params, headers=auth(field["token"])).json()
        seen += [c["id"] for c in page["data"]]
        cursor = page.get("next_cursor")
        if not page["more"]:
            break
    assert sorted(seen) == sorted(i["id"] for i in items)
    assert page["data"][0]["version"] == 1 and page["data"][0]["is_latest"] is True


def test_reconcile_keeps_its_cursor_back_on_fresh_rows(client, field) -> None:
    _sync(client, field["token"], [checklist_payload("S-1")])
    page = client.get("/sync/checklists", headers=auth(field["token"])).json()
    # Just received: a later call must see it again, in case a slower commit lands before it.
    assert len(page["data"]) == 1 and "next_cursor" not in page


def test_reconcile_shows_only_the_observers_own(client, session, field) -> None:
    other, other_token = make_observer(session, field["mission"].id, ["S-1"])
    _sync(client, other_token, [checklist_payload("S-1")])
    page = client.get("/sync/checklists", headers=auth(field["token"])).json()
    assert page["data"] == []


def test_reconcile_refuses_a_made_up_cursor(client, field) -> None:
    r = client.get(
        "/sync/checklists", params={"cursor": uuid.uuid4().hex}, headers=auth(field["token"])
    )
    assert r.status_code == 422 and r.json()["code"] == "bad_cursor"


def _reconcile(client: Any, token: str, cursor: str | None = None) -> dict[str, Any]:
    params = {"cursor": cursor} if cursor else {}
    r = client.get("/sync/checklists", params=params, headers=auth(token))
    assert r.status_code == 200, r.text
    return r.json()


def _decide(client: Any, analyst: str, checklist_id: str, **body: Any) -> None:
    r = client.post(f"/checklists/{checklist_id}/review", json=body, headers=auth(analyst))
    assert r.status_code == 201, r.text


def test_analysts_decision_and_comment_reach_the_phone_on_its_next_reconcile(
    client, session, field, monkeypatch
) -> None:
    monkeypatch.setattr(sync_service, "SETTLE", timedelta(0))  # every row is settled at once
    analyst = make_token(session, field["mission"].id, Role.analyst)
    item = checklist_payload("S-1")
    _sync(client, field["token"], [item])
    first = _reconcile(client, field["token"])
    assert [c["id"] for c in first["data"]] == [item["id"]] and "reviews" not in first

    _decide(client, analyst, item["id"], state="rejected", comment="Wrong station: re-check")
    later = _reconcile(client, field["token"], first["next_cursor"])
    assert later["data"] == []  # nothing new received, yet the decision comes through
    (decision,) = later["reviews"]
    assert decision["checklist_id"] == item["id"] and decision["state"] == "rejected"
    assert decision["comment"] == "Wrong station: re-check"
    # Once seen and settled, a decision is not sent again.
    assert "reviews" not in _reconcile(client, field["token"], later["next_cursor"])


def test_a_quarantine_alone_is_not_sent_to_the_phone(client, session, field) -> None:
    analyst = make_token(session, field["mission"].id, Role.analyst)
    item = checklist_payload("S-1")
    _sync(client, field["token"], [item])
    _decide(client, analyst, item["id"], quarantined=True, comment="internal: duplicate?")
    _decide(client, analyst, item["id"], state="has_issues", comment="Please check D5")
    page = _reconcile(client, field["token"])
    assert [(r["state"], r["comment"]) for r in page["reviews"]] == [
        ("has_issues", "Please check D5")
    ]


def test_a_cursor_given_before_decisions_reached_phones_still_works(client, session, field) -> None:
    analyst = make_token(session, field["mission"].id, Role.analyst)
    item = checklist_payload("S-1")
    _sync(client, field["token"], [item])
    _decide(client, analyst, item["id"], state="verified", comment="Fine")
    received = datetime.now(UTC) - timedelta(hours=1)
    old = sync_service.checklist_service.encode_cursor(received, uuid.uuid4())  # no `~`
    assert [r["state"] for r in _reconcile(client, field["token"], old)["reviews"]] == ["verified"]
    bad = client.get("/sync/checklists?cursor=~x", headers=auth(field["token"]))
    assert bad.status_code == 422 and bad.json()["code"] == "bad_cursor"


# --- compressed requests ---------------------------------------------------------------


def _gzipped(client: Any, token: str, body: bytes) -> Any:
    return client.post(
        "/sync/checklists",
        content=body,
        headers={
            **auth(token),
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
    )


def test_gzipped_batch_is_stored_like_a_plain_one(client, session, field) -> None:
    items = [checklist_payload("S-1") for _ in range(3)]
    body = gzip.compress(json.dumps({"items": items}).encode())
    out = _gzipped(client, field["token"], body).json()
    assert out["created"] == 3 and _count(session) == 3


def test_broken_gzip_is_refused(client, field) -> None:
    r = _gzipped(client, field["token"], gzip.compress(b'{"items": []}')[:-6])
    assert r.status_code == 400 and r.json()["code"] == "bad_gzip"


def test_gzip_bomb_is_refused_before_it_is_inflated(client, session, field) -> None:
    r = _gzipped(client, field["token"], gzip.compress(b" " * 5_000_000))
    assert r.status_code == 413 and _count(session) == 0


def test_unknown_request_encoding_is_refused(client, field) -> None:
    r = client.post(
        "/sync/checklists",
        content=b"{}",
        headers={
            **auth(field["token"]),
            "Content-Type": "application/json",
            "Content-Encoding": "br",
        },
    )
    assert r.status_code == 415


def test_batch_cut_mid_body_stores_nothing_and_logs_no_error(
    client, session, field, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio

    from api.main import create_app

    body = json.dumps({"items": [checklist_payload("S-1")]}).encode()
    messages = [
        {"type": "http.request", "body": body[:100], "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/sync/checklists",
        "raw_path": b"/sync/checklists",
        "query_string": b"",
        "headers": [
            (b"authorization", f"Bearer {field['token']}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
        "scheme": "http",
        "http_version": "1.1",
        "root_path": "",
    }
    asyncio.run(create_app()(scope, receive, send))
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert not starts or starts[0]["status"] < 500
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
    assert _count(session) == 0


def test_a_phone_clock_in_2099_makes_its_item_invalid_and_the_others_are_stored(
    client, session, field
) -> None:
    good = checklist_payload("S-1")
    broken = checklist_payload("S-2", sent_at="2099-06-01T10:00:00+00:00")
    r = _sync(client, field["token"], [broken, good])
    assert r.status_code == 200, r.text
    first, second = r.json()["results"]
    assert first["status"] == "invalid"
    assert [e["path"] for e in first["errors"]] == [["sent_at"]]
    assert first["errors"][0]["code"] == "implausible_clock"
    assert second["status"] == "created"
    assert _count(session) == 1


_NOW_AT_2359 = datetime.now(timezone(timedelta(hours=23, minutes=59))) - timedelta(minutes=5)


@pytest.mark.parametrize(
    ("extreme", "outcome"),
    [
        (  # a phone whose clock went back to 2000: decades off, corrected and flagged
            {"sent_at": "2000-01-01T01:00:00+00:00", "observed_at": "2000-01-01T00:55:00+00:00"},
            "created",
        ),
        ({"sent_at": "2099-12-31T23:59:59-12:00"}, ["sent_at"]),
        ({"observed_at": _NOW_AT_2359.isoformat()}, "created"),  # offset_min, a SMALLINT
        ({"template_version": 2**31}, ["template_version"]),
        (
            {
                "attachments": [
                    {
                        "name": "a.jpg",
                        "sha256": "0" * 64,
                        "size": 2**62,
                        "content_type": "image/jpeg",
                    }
                ]
            },
            ["attachments", 0, "size"],
        ),
        ({"answers": answers_for("voting", {"C4": 2**62})}, ["answers", "C4"]),
    ],
)
def test_a_value_at_the_edge_of_a_numeric_column_never_fails_the_batch(
    client, session, field, extreme: dict[str, Any], outcome: Any
) -> None:
    item = checklist_payload("S-2") | extreme
    r = _sync(client, field["token"], [item, checklist_payload("S-1")])
    assert r.status_code == 200, r.text
    first, second = r.json()["results"]
    assert second["status"] == "created"
    if outcome == "created":
        assert first["status"] == "created", first
    else:
        assert first["status"] == "invalid" and outcome in [e["path"] for e in first["errors"]]
