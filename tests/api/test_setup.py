"""The admin's set-up through the API: missions, stations, observers, tokens, templates."""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import auth, make_mission, make_observer, make_station

STATIONS_CSV = (
    "code,name,region,district,city,country,post,address,registered_voters,latitude,longitude\n"
    """01-001,School No. 1,Astana,Esil district,,,,1 Abai Ave,1520,51.1,71.4
01-002,School No. 2,Astana,,Astana city,,,,900,,
X-001,Embassy in Ankara,,,,Turkey,Embassy in Ankara,,310,,
"""
)


def test_admin_creates_a_mission_and_gets_its_first_admin_token(client, session) -> None:
    _, admin = make_mission(session)
    body = {
        "name": "Second mission",
        "country": "Georgia",
        "election_date": "2026-10-26",
        "timezone": "Asia/Tbilisi",
        "languages": ["en", "ka"],
        "sampling": "random",
    }
    r = client.post("/missions", json=body, headers=auth(admin))
    assert r.status_code == 201, r.text
    new = r.json()
    mid, token = new["mission"]["id"], new["admin_token"]
    assert client.get(f"/missions/{mid}", headers=auth(token)).json()["sampling"] == "random"
    templates = client.get(f"/missions/{mid}/templates", headers=auth(token)).json()
    assert [(t["code"], t["status"]) for t in templates["data"]] == [("default", "published")]
    # The first mission's admin has no say over the new mission.
    assert client.get(f"/missions/{mid}", headers=auth(admin)).status_code == 403


def test_mission_with_unknown_time_zone_is_refused(client, session) -> None:
    _, admin = make_mission(session)
    body = {"name": "M", "country": "X", "election_date": "2026-10-26", "timezone": "Mars/Olympus"}
    r = client.post("/missions", json=body, headers=auth(admin))
    assert r.status_code == 422
    assert r.json()["errors"][0]["path"] == ["body", "timezone"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"election_date": "0277-10-26"}, "election_date"),
        ({"election_date": "2400-01-01"}, "election_date"),
        ({"languages": ["en", "%$#"]}, "languages"),
        ({"languages": ["en_US"]}, "languages"),
        ({"languages": ["xx"]}, "languages"),
    ],
)
def test_implausible_mission_settings_are_refused_naming_the_field(
    client, session, change: dict[str, Any], field: str
) -> None:
    mission, admin = make_mission(session)
    r = client.patch(f"/missions/{mission.id}", json=change, headers=auth(admin))
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["path"] == ["body", field]
    body = {"name": "M", "country": "X", "election_date": "2026-10-26", "timezone": "UTC"}
    r = client.post("/missions", json=body | change, headers=auth(admin))
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == ["body", field]
    fine = {"languages": ["kk", "ru-RU", "sr-Latn"], "election_date": "2027-03-15"}
    assert (
        client.patch(f"/missions/{mission.id}", json=fine, headers=auth(admin)).status_code == 200
    )


def test_station_import_dry_run_then_upsert(client, session) -> None:
    mission, admin = make_mission(session)
    url = f"/missions/{mission.id}/stations/import"
    headers = {**auth(admin), "Content-Type": "text/csv"}
    dry = client.post(url, params={"dry_run": True}, content=STATIONS_CSV, headers=headers).json()
    assert dry == {
        "dry_run": True,
        "rows": 3,
        "created": 3,
        "updated": 0,
        "unchanged": 0,
        "problems": [],
    }
    assert client.get(f"/missions/{mission.id}/stations", headers=auth(admin)).json()["count"] == 0
    assert client.post(url, content=STATIONS_CSV, headers=headers).json()["created"] == 3
    changed = STATIONS_CSV.replace("1520", "1600")
    again = client.post(url, content=changed, headers=headers).json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 1, 2)
    stations = client.get(f"/missions/{mission.id}/stations", headers=auth(admin)).json()
    by_code = {s["code"]: s for s in stations["data"]}
    assert by_code["01-001"]["registered_voters"] == 1600
    assert by_code["01-001"]["location_path"] == "Astana/Esil district"
    assert by_code["X-001"]["abroad"] is True
    assert by_code["X-001"]["location_path"] == "Turkey/Embassy in Ankara"
    under = client.get(
        f"/missions/{mission.id}/stations", params={"location": "Astana"}, headers=auth(admin)
    ).json()
    assert under["count"] == 2


def test_station_import_reports_every_bad_row_with_its_line(client, session) -> None:
    mission, admin = make_mission(session)
    bad = STATIONS_CSV + (
        "01-003,,Astana,,,,,,,,\n"  # line 5: no name
        "01-004,School 4,,,,,,,,,\n"  # line 6: no region nor country
        "01-005,School 5,Astana,,,,,,-5,,\n"  # line 7: negative voters
        "01-001,Again,Astana,,,,,,,,\n"  # line 8: repeated code
        "01-006,School 6,Astana,,,Turkey,,,,,\n"  # line 9: region and country
        "01 007,School 7,Astana,,,,,,,,\n"  # line 10: a space in the code
    )
    r = client.post(
        f"/missions/{mission.id}/stations/import",
        content=bad,
        headers={**auth(admin), "Content-Type": "text/csv"},
    )
    assert r.status_code == 200
    report = r.json()
    assert [p["line"] for p in report["problems"]] == [5, 6, 7, 8, 9, 10]
    assert "code" in report["problems"][5]["reason"]
    assert "name" in report["problems"][0]["reason"]
    assert "region is required" in report["problems"][1]["reason"]
    assert "registered_voters" in report["problems"][2]["reason"]
    assert "line 2" in report["problems"][3]["reason"]
    assert client.get(f"/missions/{mission.id}/stations", headers=auth(admin)).json()["count"] == 0


def test_station_import_dry_run_lists_every_problem_of_a_row(client, session) -> None:
    mission, admin = make_mission(session)
    bad = STATIONS_CSV + "01-009,School 9,,,,,,,-5,200,\n"  # no place, voters, latitude
    r = client.post(
        f"/missions/{mission.id}/stations/import",
        params={"dry_run": True},
        content=bad,
        headers={**auth(admin), "Content-Type": "text/csv"},
    )
    (problem,) = r.json()["problems"]
    assert problem["line"] == 5
    assert "registered_voters" in problem["reason"]
    assert "latitude" in problem["reason"]
    assert "region is required" in problem["reason"]


def test_station_import_with_a_wrong_header_names_the_columns(client, session) -> None:
    mission, admin = make_mission(session)
    r = client.post(
        f"/missions/{mission.id}/stations/import",
        content="code,title\n1,x\n",
        headers={**auth(admin), "Content-Type": "text/csv"},
    )
    assert r.status_code == 422
    assert "missing column(s) name" in r.json()["detail"]
    assert "unknown column(s) title" in r.json()["detail"]


def test_observer_with_team_and_plan_gets_a_token_shown_once(client, session) -> None:
    mission, admin = make_mission(session)
    make_station(session, mission.id, "S-1")
    make_station(session, mission.id, "S-2")
    body = {"code": "STO-1", "name": "Aigerim", "team": "Team A", "stations": ["S-1", "S-2"]}
    r = client.post(f"/missions/{mission.id}/observers", json=body, headers=auth(admin))
    assert r.status_code == 201, r.text
    obs = r.json()
    assert obs["team"] == "Team A" and obs["stations"] == ["S-1", "S-2"]
    issued = client.post(
        f"/missions/{mission.id}/credentials",
        headers=auth(admin),
        json={"role": "observer", "label": "phone", "observer_id": obs["id"]},
    )
    assert issued.status_code == 201
    token = issued.json()["token"]
    me = client.get("/me", headers=auth(token)).json()
    assert me["role"] == "observer" and me["observer_name"] == "Aigerim"
    listed = client.get(f"/missions/{mission.id}/credentials", headers=auth(admin)).json()
    assert all("token" not in c for c in listed["data"])
    mine = next(c for c in listed["data"] if c["id"] == issued.json()["id"])
    assert mine["last_used_at"] is not None


def test_unknown_station_in_a_plan_is_named(client, session) -> None:
    mission, admin = make_mission(session)
    body = {"code": "STO-1", "name": "A", "stations": ["NOPE"]}
    r = client.post(f"/missions/{mission.id}/observers", json=body, headers=auth(admin))
    assert r.status_code == 422
    assert r.json()["errors"][0] == {
        "path": ["stations", 0],
        "code": "unknown_station",
        "message": "no station 'NOPE' in this mission",
    }


def test_revoked_token_stops_working_at_once(client, session) -> None:
    mission, admin = make_mission(session)
    make_station(session, mission.id, "S-1")
    obs, token = make_observer(session, mission.id, ["S-1"])
    assert client.get("/me", headers=auth(token)).status_code == 200
    creds = client.get(f"/missions/{mission.id}/credentials", headers=auth(admin)).json()["data"]
    cid = next(c["id"] for c in creds if c["observer_id"] == str(obs.id))
    r = client.post(f"/missions/{mission.id}/credentials/{cid}/revoke", headers=auth(admin))
    assert r.status_code == 200 and r.json()["revoked_at"]
    after = client.get("/me", headers=auth(token))
    assert after.status_code == 401 and after.json()["code"] == "revoked_token"


def test_missing_and_unknown_tokens_get_401(client) -> None:
    assert client.get("/me").json()["code"] == "missing_token"
    r = client.get("/me", headers=auth("pc_nope"))
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"


TEMPLATE_YAML = """
code: short
version: 1
title: {en: Short form, ru: Краткая форма}
languages: [en, ru]
sections:
  - code: V
    title: {en: Voting, ru: Голосование}
    phases: [voting]
    questions:
      - code: V1
        type: yes_no
        required: true
        critical: ["no"]
        label: {en: "Secrecy respected?", ru: "Тайна голосования соблюдалась?"}
      - code: V2
        type: text
        show_if: {question: V1, equals: "no"}
        label: {en: "What happened?", ru: "Что произошло?"}
"""


def test_template_upload_publish_and_freeze(client, session) -> None:
    mission, admin = make_mission(session)
    url = f"/missions/{mission.id}/templates"
    yaml_headers = {**auth(admin), "Content-Type": "application/yaml"}
    r = client.post(url, content=TEMPLATE_YAML, headers=yaml_headers)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "draft" and r.json()["title"] == "Short form"
    pub = client.post(f"{url}/short/1/publish", headers=auth(admin))
    assert pub.json()["status"] == "published"
    changed = TEMPLATE_YAML.replace("Short form", "Changed")
    r = client.post(url, content=changed, headers=yaml_headers)
    assert r.status_code == 409 and r.json()["code"] == "template_published"


def test_broken_template_lists_its_problems(client, session) -> None:
    mission, admin = make_mission(session)
    broken = TEMPLATE_YAML.replace("question: V1", "question: V9").replace(
        "type: yes_no", "type: bool"
    )
    r = client.post(
        f"/missions/{mission.id}/templates",
        content=broken,
        headers={**auth(admin), "Content-Type": "application/yaml"},
    )
    assert r.status_code == 422
    errors: list[dict[str, Any]] = r.json()["errors"]
    assert any(e["path"][-1] == "type" for e in errors)
    syntax = client.post(
        f"/missions/{mission.id}/templates",
        content="code: [unclosed",
        headers={**auth(admin), "Content-Type": "application/yaml"},
    )
    assert syntax.status_code == 422 and "line" in syntax.json()["detail"]


@pytest.mark.parametrize(
    ("old", "new", "place"),
    [
        ("version: 1", "version: " + "7" * 5000, "line 3, column 10"),
        ("languages: [en, ru]", "languages: [en, ru]\ndate: 2026-13-45", "line 6, column 7"),
    ],
)
def test_a_template_scalar_that_cannot_be_read_is_a_422_naming_its_place(
    client, session, old: str, new: str, place: str
) -> None:
    mission, admin = make_mission(session)
    r = client.post(
        f"/missions/{mission.id}/templates",
        content=TEMPLATE_YAML.replace(old, new),
        headers={**auth(admin), "Content-Type": "application/yaml"},
    )
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "template_syntax" and place in r.json()["detail"]


def test_health_and_readiness(client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_an_admin_issues_observer_tokens_in_bulk_by_code(client, session) -> None:
    mission, admin = make_mission(session)
    make_station(session, mission.id, "S-1")
    make_observer(session, mission.id, ["S-1"], code="O-1")
    make_observer(session, mission.id, ["S-1"], code="O-2")
    url = f"/missions/{mission.id}/credentials/observers"
    listed = f"/missions/{mission.id}/credentials"
    before = client.get(listed, headers=auth(admin)).json()["count"]
    bad = client.post(url, json={"observers": ["O-1", "O-7", "O-9"]}, headers=auth(admin))
    assert bad.status_code == 404
    assert [e["path"] for e in bad.json()["errors"]] == [
        ["body", "observers", 1],
        ["body", "observers", 2],
    ]
    assert client.get(listed, headers=auth(admin)).json()["count"] == before  # none issued
    r = client.post(url, json={"observers": ["O-2", "O-1"]}, headers=auth(admin))
    assert r.status_code == 201
    issued = r.json()
    assert issued["count"] == 2
    assert [t["observer_code"] for t in issued["data"]] == ["O-1", "O-2"]
    for t in issued["data"]:
        me = client.get("/me", headers=auth(t["token"])).json()
        assert me["role"] == "observer" and me["observer_id"] == t["observer_id"]


@pytest.mark.parametrize("wildcard", ["%", "_stana", "Astana/%"])
def test_a_station_filter_reads_like_wildcards_as_plain_text(client, session, wildcard) -> None:
    mission, admin = make_mission(session)
    make_station(session, mission.id, "01-001")  # in Astana/Esil district
    url = f"/missions/{mission.id}/stations"
    found = client.get(url, params={"location": wildcard}, headers=auth(admin)).json()
    assert found["count"] == 0
    plain = client.get(url, params={"location": "Astana"}, headers=auth(admin)).json()
    assert plain["count"] == 1
