"""The audit trail: every write with who, when and which credential; before and after for
reviews and corrections; append-only; readable and exportable by admins only."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from api.db import get_engine
from tests.factories import (
    answers_for,
    auth,
    checklist_payload,
    mission_with_staff,
)


@pytest.fixture
def field(session: Any) -> dict[str, Any]:
    return mission_with_staff(session)


def _trail(client: Any, field: dict[str, Any], **params: Any) -> list[dict[str, Any]]:
    r = client.get(
        f"/missions/{field['mission'].id}/audit", params=params, headers=auth(field["admin"])
    )
    assert r.status_code == 200, r.text
    return r.json()["data"]


def test_a_write_is_recorded_with_its_credential_and_a_failed_one_is_not(client, field) -> None:
    me = client.get("/me", headers=auth(field["admin"])).json()
    url = f"/missions/{field['mission'].id}/credentials"
    ok = client.post(url, json={"role": "viewer", "label": "wall"}, headers=auth(field["admin"]))
    bad = client.post(url, json={"role": "viewer", "label": ""}, headers=auth(field["admin"]))
    assert ok.status_code == 201 and bad.status_code == 422
    events = _trail(client, field, action="POST /missions/{mission_id}/credentials")
    assert len(events) == 1
    assert events[0]["credential_id"] == me["credential_id"] and events[0]["role"] == "admin"
    assert events[0]["after"]["body"] == {"role": "viewer", "label": "wall"}
    assert "token" not in str(events[0])


def test_a_review_is_recorded_with_before_and_after(client, field) -> None:
    body = checklist_payload("S-1")
    client.post("/checklists", json=body, headers=auth(field["observer"]))
    client.post(
        f"/checklists/{body['id']}/review",
        json={"state": "rejected", "comment": "closed station"},
        headers=auth(field["analyst"]),
    )
    (event,) = _trail(client, field, action="review")
    assert event["role"] == "analyst" and event["target"] == f"checklist/{body['id']}"
    assert event["before"] == {"review_state": "received", "quarantined": False}
    assert event["after"]["review_state"] == "rejected"


def test_a_correction_is_recorded_with_the_answers_it_changed(client, field) -> None:
    first = checklist_payload("S-1", "voting")
    client.post("/checklists", json=first, headers=auth(field["observer"]))
    answers = answers_for("voting", {"D9": "very_bad"})
    fix = checklist_payload("S-1", "voting", answers, replaces=first["id"])
    assert client.post("/checklists", json=fix, headers=auth(field["analyst"])).status_code == 201
    events = _trail(client, field)
    assert [e["action"] for e in events] == ["checklist.correct"]  # plain intake: see export
    assert events[0]["before"]["answers"] == {"D9": "good"}
    assert events[0]["after"]["answers"] == {"D9": "very_bad"}


def test_a_correction_in_a_phone_batch_is_recorded_as_one_sent_alone(client, field) -> None:
    # The record belongs to the intake's operation, whichever channel brought the checklist.
    first = checklist_payload("S-1", "voting")
    fix = checklist_payload(
        "S-1", "voting", answers_for("voting", {"D9": "very_bad"}), replaces=first["id"]
    )
    other = checklist_payload("S-1", "opening")
    r = client.post(
        "/sync/checklists", json={"items": [first, fix, other]}, headers=auth(field["observer"])
    )
    assert [i["status"] for i in r.json()["results"]] == ["created", "created", "created"]
    events = _trail(client, field)
    assert [(e["action"], e["target"], e["role"]) for e in events] == [
        ("checklist.correct", f"checklist/{fix['id']}", "observer")
    ]
    assert events[0]["before"] == {"checklist_id": first["id"], "answers": {"D9": "good"}}


def test_an_intake_that_stores_nothing_adds_nothing_to_the_trail(client, field) -> None:
    body = checklist_payload("S-1")
    client.post("/checklists", json=body, headers=auth(field["observer"]))
    assert client.post("/checklists", json=body, headers=auth(field["observer"])).status_code == 200
    r = client.post(
        "/sync/checklists",
        json={"items": [body, checklist_payload("S-404")]},
        headers=auth(field["observer"]),
    )
    assert [i["status"] for i in r.json()["results"]] == ["duplicate", "invalid"]
    assert _trail(client, field) == []


def test_the_export_is_safe_in_a_spreadsheet_and_can_include_intake(client, field) -> None:
    url = f"/missions/{field['mission'].id}/credentials"
    client.post(
        url, json={"role": "viewer", "label": "=HYPERLINK(1)"}, headers=auth(field["admin"])
    )
    viewer_id = client.get(url, headers=auth(field["admin"])).json()["data"][-1]["id"]
    client.post(f"{url}/{viewer_id}/revoke", headers=auth(field["admin"]))
    client.post("/checklists", json=checklist_payload("S-1"), headers=auth(field["observer"]))
    export = f"/missions/{field['mission'].id}/audit/export"
    r = client.get(export, params={"include_intake": True}, headers=auth(field["admin"]))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["action"] for row in rows] == [
        "POST /missions/{mission_id}/credentials",
        "POST /missions/{mission_id}/credentials/{credential_id}/revoke",
        "checklist.submit",
    ]
    assert all(not row[k].startswith(("=", "+", "-", "@")) for row in rows for k in row)
    assert rows[1]["target"].endswith("/revoke")


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_the_export_holds_no_formula_for_a_spreadsheet_splitting_on_any_separator(
    client, field, delimiter: str
) -> None:
    url = f"/missions/{field['mission'].id}/credentials"
    r = client.post(url, json={"role": "viewer", "label": "x;=1+2;"}, headers=auth(field["admin"]))
    assert r.status_code == 201, r.text
    export = client.get(
        f"/missions/{field['mission'].id}/audit/export", headers=auth(field["admin"])
    )
    cells = [c for row in csv.reader(io.StringIO(export.text), delimiter=delimiter) for c in row]
    assert any("1+2" in c for c in cells)
    assert not [c for c in cells if c.lstrip(" ").startswith(("=", "+", "-", "@"))]


def test_only_admins_read_the_trail(client, field) -> None:
    for who in ("analyst", "observer"):
        r = client.get(f"/missions/{field['mission'].id}/audit", headers=auth(field[who]))
        assert r.status_code == 403
        r = client.get(f"/missions/{field['mission'].id}/audit/export", headers=auth(field[who]))
        assert r.status_code == 403


def test_the_database_refuses_to_rewrite_the_trail(client, field) -> None:
    url = f"/missions/{field['mission'].id}/credentials"
    client.post(url, json={"role": "viewer", "label": "wall"}, headers=auth(field["admin"]))
    with pytest.raises(DBAPIError, match="append-only"), get_engine().begin() as conn:
        conn.execute(text("UPDATE audit_event SET role = 'viewer'"))
    if get_engine().dialect.name == "postgresql":
        with pytest.raises(DBAPIError, match="append-only"), get_engine().begin() as conn:
            conn.execute(text("DELETE FROM audit_event"))
    assert len(_trail(client, field)) == 1


def test_tokens_made_and_revoked_on_the_command_line_are_in_the_trail(client, field) -> None:
    from typer.testing import CliRunner

    from api.cli import app

    runner = CliRunner()
    mission = str(field["mission"].id)
    made = runner.invoke(app, ["token", "create", "--mission", mission, "--role", "analyst"])
    assert made.exit_code == 0, made.output
    credential_id = made.output.split()[1]
    gone = runner.invoke(app, ["token", "revoke", "--mission", mission, credential_id])
    assert gone.exit_code == 0, gone.output
    events = _trail(client, field, action="cli")
    assert [(e["action"], e["role"], e["credential_id"]) for e in events] == [
        ("cli token create", "cli", None),
        ("cli token revoke", "cli", None),
    ]
    assert events[1]["target"] == f"credential/{credential_id}"


def test_a_settings_change_is_recorded_with_the_old_and_new_values(client, field) -> None:
    url = f"/missions/{field['mission'].id}"
    r = client.patch(url, json={"name": "Renamed"}, headers=auth(field["admin"]))
    assert r.status_code == 200, r.text
    (event,) = _trail(client, field, action="mission.update")
    assert event["before"] == {"name": "Test mission"} and event["after"] == {"name": "Renamed"}
