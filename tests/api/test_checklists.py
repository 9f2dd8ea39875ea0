"""Checklist intake: stored exactly once, validated, versioned, private to its observer."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import func, select

from models import Answer, Checklist, Role
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
    """A mission with two stations and an observer assigned to the first."""
    mission, admin = make_mission(session)
    make_station(session, mission.id, "S-1")
    make_station(session, mission.id, "S-2")
    observer, token = make_observer(session, mission.id, ["S-1"])
    return {"mission": mission, "admin": admin, "observer": observer, "token": token}


def _count(session: Any, model: Any = Checklist) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model))


def test_new_checklist_is_stored_with_typed_answers(client, session, field) -> None:
    body = checklist_payload("S-1", "voting")
    r = client.post("/checklists", json=body, headers=auth(field["token"]))
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["id"] == body["id"] and out["version"] == 1 and out["is_latest"] is True
    assert out["station"] == "S-1" and out["phase"] == "voting"
    assert out["observer_id"] == str(field["observer"].id)
    rows = session.scalars(select(Answer).where(Answer.checklist_id == uuid.UUID(body["id"]))).all()
    assert {r.question_code for r in rows} == set(body["answers"])


def test_replayed_checklist_is_not_stored_twice(client, session, field) -> None:
    body = checklist_payload("S-1")
    first = client.post("/checklists", json=body, headers=auth(field["token"]))
    again = client.post("/checklists", json=body, headers=auth(field["token"]))
    assert first.status_code == 201 and again.status_code == 200
    assert again.json() == first.json()
    assert _count(session) == 1


def test_same_content_in_another_key_order_is_still_a_replay(client, session, field) -> None:
    body = checklist_payload("S-1")
    client.post("/checklists", json=body, headers=auth(field["token"]))
    reordered = dict(reversed(list(body.items())))
    r = client.post("/checklists", json=reordered, headers=auth(field["token"]))
    assert r.status_code == 200


def test_same_id_with_other_content_is_a_conflict(client, session, field) -> None:
    body = checklist_payload("S-1")
    client.post("/checklists", json=body, headers=auth(field["token"]))
    changed = {**body, "answers": answers_for("voting", {"D1": "most"})}
    r = client.post("/checklists", json=changed, headers=auth(field["token"]))
    assert r.status_code == 409
    assert r.json()["code"] == "id_reused_with_other_content"
    assert _count(session) == 1


def test_broken_checklist_lists_every_problem_and_stores_nothing(client, session, field) -> None:
    answers = answers_for("voting")
    answers.pop("D1")  # required
    answers.update({"ZZ9": "yes", "D4": "maybe", "C4": -3, "A1": "later"})
    future = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    body = checklist_payload("S-2", "voting", answers, observed_at=future)
    r = client.post("/checklists", json=body, headers=auth(field["token"]))
    assert r.status_code == 422
    problems = {(tuple(e["path"]), e["code"]) for e in r.json()["errors"]}
    assert (("answers", "ZZ9"), "unknown_question") in problems
    assert (("answers", "D4"), "not_an_option") in problems
    assert (("answers", "D1"), "required") in problems
    assert (("answers", "A1"), "not_in_phase") in problems
    assert (("station",), "not_assigned") in problems
    assert (("observed_at",), "in_future") in problems
    assert _count(session) == 0 and _count(session, Answer) == 0


def test_answer_out_of_bounds_and_of_wrong_type(client, field) -> None:
    answers = answers_for("closing", {"F11": "yes"})
    answers["P_R"] = 100_001
    answers["P_I"] = "12"
    r = client.post(
        "/checklists",
        json=checklist_payload("S-1", "closing", answers),
        headers=auth(field["token"]),
    )
    assert r.status_code == 422
    codes = {tuple(e["path"]): e["code"] for e in r.json()["errors"]}
    assert codes[("answers", "P_R")] == "out_of_bounds"
    assert codes[("answers", "P_I")] == "wrong_type"


def test_answer_hidden_by_show_if_is_refused(client, field) -> None:
    answers = answers_for("opening", {"A3": "no"})
    answers["A4"] = ["ballots"]  # which materials were missing: only asked when A3 is yes
    r = client.post(
        "/checklists",
        json=checklist_payload("S-1", "opening", answers),
        headers=auth(field["token"]),
    )
    assert r.status_code == 422
    assert {e["code"] for e in r.json()["errors"]} == {"hidden_by_show_if"}


def test_unknown_station_template_and_fields(client, field) -> None:
    body = checklist_payload("NOPE", template_version=9, extra_field=1)
    r = client.post("/checklists", json=body, headers=auth(field["token"]))
    assert r.status_code == 422
    assert r.json()["errors"][0]["path"] == ["body", "extra_field"]
    del body["extra_field"]
    r = client.post("/checklists", json=body, headers=auth(field["token"]))
    codes = {e["code"] for e in r.json()["errors"]}
    assert {"unknown_station", "unknown_template"} <= codes


@pytest.mark.parametrize(
    ("station", "code"), [("S-2", "not_assigned"), ("NOPE", "unknown_station")]
)
def test_a_sound_checklist_at_a_station_not_the_observers_is_refused(
    client, session, field, station: str, code: str
) -> None:
    """Nothing else is wrong with it: the one statement that stores an observer's checklist
    must find the station and the assignment itself, and store nothing."""
    body = checklist_payload(station, "voting")
    r = client.post("/checklists", json=body, headers=auth(field["token"]))
    assert r.status_code == 422, r.text
    assert [(e["path"], e["code"]) for e in r.json()["errors"]] == [(["station"], code)]
    assert _count(session) == 0 and _count(session, Answer) == 0
    ok = client.post("/checklists", json=checklist_payload("S-1"), headers=auth(field["token"]))
    assert ok.status_code == 201 and ok.json()["station"] == "S-1"


def test_unpublished_template_is_refused(client, session, field) -> None:
    from api.services import templates

    definition = templates.default_definition().model_copy(update={"version": 2})
    templates.create(session, field["mission"].id, definition, publish=False)
    session.commit()
    body = checklist_payload("S-1", template_version=2)
    r = client.post("/checklists", json=body, headers=auth(field["token"]))
    assert r.status_code == 422
    assert r.json()["errors"][0]["code"] == "template_not_published"


def test_observation_time_needs_an_offset(client, field) -> None:
    body = checklist_payload("S-1", observed_at="2024-10-06T08:00:00")
    r = client.post("/checklists", json=body, headers=auth(field["token"]))
    assert r.status_code == 422
    assert r.json()["errors"][0]["path"] == ["body", "observed_at"]


def test_device_time_offset_and_clock_skew_are_kept(client, field) -> None:
    # The phone's clock is an hour slow: both its times are an hour behind the server's.
    device_now = datetime.now(UTC) - timedelta(hours=1)
    body = checklist_payload(
        "S-1",
        observed_at=(device_now - timedelta(minutes=30))
        .astimezone(timezone(timedelta(hours=5)))
        .isoformat(),
        sent_at=device_now.isoformat(),
    )
    out = client.post("/checklists", json=body, headers=auth(field["token"])).json()
    assert out["observed_utc_offset_min"] == 300
    assert abs(out["clock_skew_s"] - 3600) < 60
    assert out["clock_flagged"] is True


def test_malformed_json_names_the_position(client, field) -> None:
    r = client.post(
        "/checklists",
        content=b'{"id": "x", "answers": {,}}',
        headers={**auth(field["token"]), "Content-Type": "application/json"},
    )
    assert r.status_code == 422
    body = r.json()
    assert body["code"] == "malformed_json"
    assert "line 1, column" in body["detail"]


def test_body_over_the_limit_gets_413(client, field) -> None:
    body = checklist_payload("S-1", answers={"D10": "x" * 2_000_000})
    r = client.post("/checklists", json=body, headers=auth(field["token"]))
    assert r.status_code == 413
    assert r.json()["error"] == "PayloadTooLarge"


def test_correction_is_a_new_version_and_both_stay_readable(client, session, field) -> None:
    tok = auth(field["token"])
    v1 = checklist_payload("S-1")
    client.post("/checklists", json=v1, headers=tok)
    v2 = checklist_payload("S-1", answers=answers_for("voting", {"D1": "most"}), replaces=v1["id"])
    r = client.post("/checklists", json=v2, headers=tok)
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 2 and r.json()["root_id"] == v1["id"]

    versions = client.get(f"/checklists/{v1['id']}/versions", headers=tok).json()
    assert [(v["version"], v["is_latest"]) for v in versions] == [(1, False), (2, True)]
    old = client.get(f"/checklists/{v1['id']}", headers=tok).json()
    assert old["answers"]["D1"] == v1["answers"]["D1"]
    assert client.get(f"/checklists/{v2['id']}", headers=tok).json()["answers"]["D1"] == "most"


def test_correcting_a_superseded_version_is_a_conflict(client, field) -> None:
    tok = auth(field["token"])
    v1 = checklist_payload("S-1")
    client.post("/checklists", json=v1, headers=tok)
    client.post("/checklists", json=checklist_payload("S-1", replaces=v1["id"]), headers=tok)
    r = client.post("/checklists", json=checklist_payload("S-1", replaces=v1["id"]), headers=tok)
    assert r.status_code == 409
    assert r.json()["code"] == "not_latest_version"


def test_analyst_corrects_for_the_observer_but_cannot_post_new(client, session, field) -> None:
    analyst = auth(make_token(session, field["mission"].id, Role.analyst))
    v1 = checklist_payload("S-1")
    client.post("/checklists", json=v1, headers=auth(field["token"]))
    r = client.post("/checklists", json=checklist_payload("S-2"), headers=analyst)
    assert r.status_code == 422 and r.json()["errors"][0]["code"] == "observer_only"
    r = client.post(
        "/checklists", json=checklist_payload("S-1", replaces=v1["id"]), headers=analyst
    )
    assert r.status_code == 201
    assert r.json()["observer_id"] == str(field["observer"].id)


def test_observers_see_only_their_own_checklists(client, session, field) -> None:
    other, other_token = make_observer(session, field["mission"].id, ["S-2"])
    mine = checklist_payload("S-1")
    theirs = checklist_payload("S-2")
    client.post("/checklists", json=mine, headers=auth(field["token"]))
    client.post("/checklists", json=theirs, headers=auth(other_token))

    listed = client.get("/me/checklists", headers=auth(field["token"])).json()
    assert [c["id"] for c in listed["data"]] == [mine["id"]]
    assert (
        client.get(f"/checklists/{theirs['id']}", headers=auth(field["token"])).status_code == 404
    )
    # Reusing someone else's id reveals nothing about their checklist.
    r = client.post("/checklists", json={**theirs, "station": "S-1"}, headers=auth(field["token"]))
    assert r.status_code == 409 and r.json()["code"] == "id_taken"
    assignments = client.get("/me/assignments", headers=auth(field["token"])).json()
    assert [s["code"] for s in assignments] == ["S-1"]


def test_staff_list_the_mission_page_by_page(client, session, field) -> None:
    tok = auth(field["token"])
    ids = []
    for _ in range(5):
        body = checklist_payload("S-1")
        ids.append(body["id"])
        client.post("/checklists", json=body, headers=tok)
    mid = field["mission"].id
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get(
            f"/missions/{mid}/checklists", params=params, headers=auth(field["admin"])
        ).json()
        seen += [c["id"] for c in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ids
    bad = client.get(
        f"/missions/{mid}/checklists", params={"cursor": "nonsense"}, headers=auth(field["admin"])
    )
    assert bad.status_code == 422 and bad.json()["code"] == "bad_cursor"


def test_every_change_is_recorded_in_the_outbox(client, session, field) -> None:
    from api.services.changes import data_version

    tok = auth(field["token"])
    before = data_version(session, field["mission"].id)
    v1 = checklist_payload("S-1")
    client.post("/checklists", json=v1, headers=tok)
    client.post("/checklists", json=v1, headers=tok)  # a replay changes nothing
    session.expire_all()
    after_first = data_version(session, field["mission"].id)
    assert after_first > before
    client.post("/checklists", json=checklist_payload("S-1", replaces=v1["id"]), headers=tok)
    session.expire_all()
    assert data_version(session, field["mission"].id) > after_first


def test_observation_time_is_shown_in_the_phones_offset(client, field) -> None:
    tok = auth(field["token"])
    body = checklist_payload("S-1", observed_at="2024-10-06T07:40:00+05:00")
    created = client.post("/checklists", json=body, headers=tok).json()
    read = client.get(f"/checklists/{body['id']}", headers=tok).json()
    assert created["observed_at"] == read["observed_at"] == "2024-10-06T07:40:00+05:00"
