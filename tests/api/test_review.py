"""Review: analysts decide on checklists with a comment; every decision is kept and counted
in the change outbox so that findings follow."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from models import ChecklistChange, Credential, Role
from tests.factories import (
    answers_for,
    app_with_settings,
    auth,
    checklist_payload,
    make_mission,
    make_observer,
    make_station,
    make_token,
    mission_with_staff,
)
from tests.findings_factories import question, view


@pytest.fixture
def field(session: Any, client: Any) -> dict[str, Any]:
    """`mission_with_staff` and one voting checklist of the observer's."""
    staff = mission_with_staff(session)
    body = checklist_payload("S-1", "voting")
    r = client.post("/checklists", json=body, headers=auth(staff["observer"]))
    assert r.status_code == 201, r.text
    return staff | {"checklist": body}


def _review(client: Any, token: str, checklist_id: str, **body: Any) -> Any:
    return client.post(f"/checklists/{checklist_id}/review", json=body, headers=auth(token))


def test_analyst_rejects_a_checklist_and_the_decision_is_kept(client, field) -> None:
    cid = field["checklist"]["id"]
    r = _review(client, field["analyst"], cid, state="rejected", comment="station was closed")
    assert r.status_code == 201, r.text
    assert r.json()["state_before"] == "received" and r.json()["state_after"] == "rejected"
    shown = client.get(f"/checklists/{cid}", headers=auth(field["analyst"])).json()
    assert shown["review_state"] == "rejected"
    history = client.get(f"/checklists/{cid}/reviews", headers=auth(field["admin"])).json()
    assert history["count"] == 1
    assert history["data"][0]["comment"] == "station was closed"


def test_quarantine_and_its_lifting_are_both_in_the_history(client, field) -> None:
    cid = field["checklist"]["id"]
    assert (
        _review(client, field["analyst"], cid, quarantined=True, comment="odd").status_code == 201
    )
    assert (
        _review(client, field["analyst"], cid, quarantined=False, comment="ok").status_code == 201
    )
    data = client.get(f"/checklists/{cid}/reviews", headers=auth(field["analyst"])).json()["data"]
    assert [(e["quarantined_before"], e["quarantined_after"]) for e in data] == [
        (False, True),
        (True, False),
    ]
    assert all(e["state_after"] == "received" for e in data)


def test_every_decision_is_recorded_in_the_change_outbox(client, session, field) -> None:
    cid = uuid.UUID(field["checklist"]["id"])
    before = session.scalar(
        select(func.count()).select_from(ChecklistChange).where(ChecklistChange.checklist_id == cid)
    )
    _review(client, field["analyst"], str(cid), state="has_issues", comment="call back")
    session.expire_all()
    after = session.scalar(
        select(func.count()).select_from(ChecklistChange).where(ChecklistChange.checklist_id == cid)
    )
    assert after == before + 1


def test_a_correction_stays_quarantined_and_old_versions_cannot_be_reviewed(client, field) -> None:
    cid = field["checklist"]["id"]
    _review(client, field["analyst"], cid, state="rejected", quarantined=True, comment="suspect")
    fix = checklist_payload("S-1", "voting", answers_for("voting"), replaces=cid)
    r = client.post("/checklists", json=fix, headers=auth(field["observer"]))
    assert r.status_code == 201, r.text
    assert r.json()["quarantined"] is True and r.json()["review_state"] == "received"
    old = _review(client, field["analyst"], cid, state="verified", comment="late")
    assert old.status_code == 409 and old.json()["code"] == "not_latest_version"
    history = client.get(f"/checklists/{fix['id']}/reviews", headers=auth(field["analyst"]))
    # The chain's history, seen from the new version: the decision, then the hold.
    assert [e["version"] for e in history.json()["data"]] == [1, 2]


def _observations(session: Any, mission_id: Any) -> int:
    """The voting checklists the findings count (none: no voting phase in them at all)."""
    try:
        return question(view(session, mission_id), "voting", "H2")["answered"]
    except AssertionError:
        return 0


@pytest.mark.parametrize(
    ("decision", "hold"),
    [
        ({"state": "rejected"}, "correction_of_rejected"),
        ({"quarantined": True}, "correction_of_quarantined"),
    ],
)
def test_a_correction_of_a_rejected_or_quarantined_checklist_counts_only_once_accepted(
    client, session, field, decision: dict[str, Any], hold: str
) -> None:
    mission_id, cid = field["mission"].id, field["checklist"]["id"]
    assert _observations(session, mission_id) == 1
    assert _review(client, field["analyst"], cid, comment="no", **decision).status_code == 201
    assert _observations(session, mission_id) == 0

    fix = checklist_payload("S-1", "voting", answers_for("voting"), replaces=cid)
    r = client.post("/checklists", json=fix, headers=auth(field["observer"]))
    assert r.status_code == 201, r.text
    assert r.json()["hold"] == hold and r.json()["is_latest"] is True
    assert _observations(session, mission_id) == 0  # the decision sticks
    again = checklist_payload("S-1", "voting", answers_for("voting"), replaces=fix["id"])
    r = client.post("/checklists", json=again, headers=auth(field["observer"]))
    assert r.json()["hold"] == hold  # correcting the correction does not get round it
    assert _observations(session, mission_id) == 0

    queue = client.get(
        f"/missions/{mission_id}/checklists",
        params={"held": "true"},
        headers=auth(field["analyst"]),
    ).json()["data"]
    assert [c["id"] for c in queue] == [again["id"]]

    accept = {"state": "verified"} | ({"quarantined": False} if "quarantined" in decision else {})
    r = _review(client, field["analyst"], again["id"], comment="fixed", **accept)
    assert r.status_code == 201 and (r.json()["hold_before"], r.json()["hold_after"]) == (
        hold,
        None,
    )
    assert _observations(session, mission_id) == 1

    history = client.get(f"/checklists/{cid}/reviews", headers=auth(field["analyst"])).json()
    assert [(e["version"], e["hold_before"], e["hold_after"]) for e in history["data"]] == [
        (1, None, None),  # the rejection or quarantine
        (2, None, hold),  # the correction, held
        (3, None, hold),  # its correction, held too
        (3, hold, None),  # the analyst accepts
    ]


def test_an_analysts_decision_on_a_held_correction_can_keep_it_out(client, session, field) -> None:
    mission_id, cid = field["mission"].id, field["checklist"]["id"]
    _review(client, field["analyst"], cid, state="rejected", comment="closed station")
    fix = checklist_payload("S-1", "voting", answers_for("voting"), replaces=cid)
    assert client.post("/checklists", json=fix, headers=auth(field["observer"])).status_code == 201
    r = _review(client, field["analyst"], fix["id"], state="rejected", comment="still wrong")
    assert r.json()["hold_after"] is None and r.json()["state_after"] == "rejected"
    assert _observations(session, mission_id) == 0


def test_only_analysts_review_and_only_their_own_mission(client, session, field) -> None:
    cid = field["checklist"]["id"]
    for token in (field["observer"], field["admin"]):
        r = _review(client, token, cid, state="verified", comment="x")
        assert r.status_code == 403, r.text
    other, _ = make_mission(session, name="Other mission")
    stranger = make_token(session, other.id, Role.analyst)
    r = _review(client, stranger, cid, state="verified", comment="x")
    assert r.status_code == 404 and r.json()["code"] == "checklist_not_found"


def test_a_decision_needs_a_change_and_a_comment(client, field) -> None:
    cid = field["checklist"]["id"]
    assert _review(client, field["analyst"], cid, comment="nothing").status_code == 422
    assert _review(client, field["analyst"], cid, state="verified", comment=" ").status_code == 422
    r = _review(client, field["analyst"], cid, state="verified", comment="ok", extra=1)
    assert r.status_code == 422


def test_a_reviewer_flags_and_rejects_and_sees_findings_and_audit_follow(session) -> None:
    """The issue's acceptance walk: flag, reject, quarantine; findings drop them; all audited."""
    from fastapi.testclient import TestClient

    mission, admin = make_mission(session)
    make_station(session, mission.id, "S-1")
    _, observer = make_observer(session, mission.id, ["S-1"])
    analyst = make_token(session, mission.id, Role.analyst)
    app = app_with_settings(findings_max_lag_s=0, findings_cache_s=0)
    with TestClient(app, raise_server_exceptions=False) as client:
        ids = []
        for _ in range(3):
            body = checklist_payload("S-1", "voting")
            assert client.post("/checklists", json=body, headers=auth(observer)).status_code == 201
            ids.append(body["id"])

        def observations() -> int:
            r = client.get(f"/missions/{mission.id}/findings", headers=auth(analyst))
            assert r.status_code == 200, r.text
            return int(r.json()["totals"]["observations"])

        assert observations() == 3
        flag = {"state": "has_issues", "comment": "the count looks odd; calling back"}
        assert _review(client, analyst, ids[0], **flag).status_code == 201
        assert observations() == 3  # flagged still counts, pending the call
        reject = {"state": "rejected", "comment": "observer was not at the station"}
        assert _review(client, analyst, ids[0], **reject).status_code == 201
        assert observations() == 2
        assert _review(client, analyst, ids[1], quarantined=True, comment="hold").status_code == 201
        assert observations() == 1
        trail = client.get(
            f"/missions/{mission.id}/audit", params={"action": "review"}, headers=auth(admin)
        ).json()["data"]
        assert [(e["before"]["review_state"], e["after"]["review_state"]) for e in trail] == [
            ("received", "has_issues"),
            ("has_issues", "rejected"),
            ("received", "received"),
        ]
        assert trail[-1]["after"]["quarantined"] is True


@pytest.mark.postgres_only
def test_two_analysts_deciding_at_once_each_see_the_state_the_other_left(field) -> None:
    import threading
    import time

    from api.db import session_scope
    from api.deps import Principal
    from api.services import review as review_service
    from models.review import ReviewCreate

    cid = uuid.UUID(field["checklist"]["id"])
    mission_id = field["mission"].id
    with session_scope() as s:
        cred = s.scalar(select(Credential.id).where(Credential.role == "analyst"))
    who = Principal(cred, mission_id, Role.analyst, None)
    first_locked = threading.Event()

    def second() -> None:
        first_locked.wait()
        with session_scope() as s:
            review_service.set_review(
                s, who, cid, ReviewCreate(state="verified", comment="second look: fine")
            )

    t = threading.Thread(target=second)
    t.start()
    with session_scope() as s:
        review_service.set_review(s, who, cid, ReviewCreate(state="rejected", comment="first"))
        first_locked.set()
        time.sleep(0.3)  # lets the second decision queue behind this one's row lock
    t.join(timeout=30)
    with session_scope() as s:
        events = review_service.history(s, who, cid)
    assert [(e.state_before, e.state_after) for e in events] == [
        ("received", "rejected"),
        ("rejected", "verified"),
    ]


def test_a_decision_on_a_state_that_changed_meanwhile_is_refused_and_writes_nothing(
    client, field
) -> None:
    cid = field["checklist"]["id"]
    first = _review(
        client, field["analyst"], cid, state="verified", expected_state="received", comment="ok"
    )
    assert first.status_code == 201, first.text
    # A second analyst still looking at "received" rejects it: told, and nothing overwritten.
    second = _review(
        client,
        field["analyst"],
        cid,
        state="rejected",
        expected_state="received",
        expected_quarantined=False,
        comment="closed station",
    )
    assert second.status_code == 409, second.text
    assert second.json()["code"] == "review_changed"
    assert "now verified" in second.json()["detail"]
    shown = client.get(f"/checklists/{cid}", headers=auth(field["analyst"])).json()
    assert shown["review_state"] == "verified"
    history = client.get(f"/checklists/{cid}/reviews", headers=auth(field["analyst"])).json()
    assert [e["comment"] for e in history["data"]] == ["ok"]


def test_an_expected_quarantine_that_changed_meanwhile_is_refused(client, field) -> None:
    cid = field["checklist"]["id"]
    held = _review(client, field["analyst"], cid, quarantined=True, comment="odd")
    assert held.status_code == 201
    r = _review(
        client, field["analyst"], cid, state="verified", expected_quarantined=False, comment="ok"
    )
    assert r.status_code == 409
    assert r.json()["errors"][0]["path"] == ["body", "expected_quarantined"]
