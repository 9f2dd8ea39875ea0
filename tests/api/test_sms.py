"""SMS checklists through each gateway: signatures and secrets, retries, a checklist over
several messages, corrections, unknown and revoked numbers, replies, the log, findings."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from api.config import get_settings
from api.services.sms.codes import SmsCodes
from api.services.sms.gateways import twilio_signature
from api.services.templates import default_definition
from models import Role
from tests.api.test_findings import fresh  # noqa: F401  (the fixture)
from tests.factories import answers_for, auth, make_mission, make_observer, make_station, make_token

CODES = SmsCodes(default_definition())
SECRET = "s3cret-for-the-generic-app"
TWILIO_TOKEN = "twilio-auth-token-0123456789"
RAPIDPRO_SECRET = "rapidpro-shared-token-42"
PHONE = "8 701 123 45 67"  # as the observer import had it; Kazakhstan
E164 = "+77011234567"


@pytest.fixture
def mission(client: Any, session: Any) -> dict[str, Any]:
    m, admin = make_mission(session)
    make_station(session, m.id, "AST-001")
    observer, observer_token = make_observer(
        session, m.id, ["AST-001"], code="O-1", phone=PHONE, language="ru"
    )
    r = client.patch(
        f"/missions/{m.id}",
        json={"settings": {"sms": {"region": "KZ", "prefix": "AST"}}},
        headers=auth(admin),
    )
    assert r.status_code == 200, r.text
    for gateway, secret in (
        ("generic", SECRET),
        ("twilio", TWILIO_TOKEN),
        ("rapidpro", RAPIDPRO_SECRET),
    ):
        r = client.put(
            f"/missions/{m.id}/sms/gateways/{gateway}", json={"secret": secret}, headers=auth(admin)
        )
        assert r.status_code == 200, r.text
    analyst = make_token(session, m.id, Role.analyst)
    return {
        "id": m.id,
        "admin": admin,
        "analyst": analyst,
        "observer_id": observer.id,
        "observer": observer_token,
    }


def generic(client: Any, mission: dict[str, Any], text: str, mid: str, sender: str = E164) -> Any:
    return client.post(
        f"/sms/generic/{mission['id']}",
        json={"id": mid, "from": sender, "text": text},
        headers={"X-Pollcheck-Secret": SECRET},
    )


def log(client: Any, mission: dict[str, Any], **filters: Any) -> list[dict[str, Any]]:
    r = client.get(
        f"/missions/{mission['id']}/sms/messages", params=filters, headers=auth(mission["analyst"])
    )
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


def checklists(client: Any, mission: dict[str, Any]) -> list[dict[str, Any]]:
    r = client.get(f"/missions/{mission['id']}/checklists", headers=auth(mission["analyst"]))
    return list(r.json()["data"])


def test_a_checklist_completed_over_three_messages_is_stored_once(
    client: Any, mission: dict[str, Any]
) -> None:
    answers = answers_for("voting")
    tokens = CODES.tokens(answers)
    third = len(tokens) // 3
    parts = [tokens[:third], tokens[third : 2 * third], tokens[2 * third :]]
    replies = []
    for i, part in enumerate(parts):
        r = generic(client, mission, "AST-001 v " + " ".join(part), f"m{i}")
        assert r.status_code == 200, r.text
        replies.append(r.json())
    assert [x["outcome"] for x in replies] == ["pending", "pending", "stored"]
    assert "ещё нужны:" in replies[0]["reply"]["text"]  # the observer's language
    assert replies[0]["reply"]["to"] == E164
    assert replies[2]["reply"]["text"] == f"получено AST-001 голосование, ответов: {len(answers)}"
    stored = checklists(client, mission)
    assert len(stored) == 1 and stored[0]["station"] == "AST-001" and stored[0]["version"] == 1
    detail = client.get(f"/checklists/{stored[0]['id']}", headers=auth(mission["analyst"]))
    assert detail.json()["answers"] == answers
    # The observer sees it as theirs, like one sent from the app.
    mine = client.get(f"/checklists/{stored[0]['id']}", headers=auth(mission["observer"]))
    assert mine.status_code == 200


def test_a_later_sms_in_the_window_corrects_the_checklist_as_a_new_version(
    client: Any, mission: dict[str, Any]
) -> None:
    answers = answers_for("voting")
    first = generic(client, mission, CODES.encode("AST-001", "voting", answers), "a")
    assert first.json()["outcome"] == "stored"
    again = generic(client, mission, "AST AST-001 v B3y", "b")
    assert again.json()["outcome"] == "stored"
    assert "(версия 2)" in again.json()["reply"]["text"]
    stored = checklists(client, mission)
    assert [c["version"] for c in stored] == [1, 2]
    assert stored[1]["replaces_id"] == stored[0]["id"] and stored[1]["is_latest"]
    detail = client.get(f"/checklists/{stored[1]['id']}", headers=auth(mission["analyst"]))
    assert detail.json()["answers"] == answers | {"B3": "yes"}


def test_a_gateway_retry_of_a_message_id_is_handled_once_and_gets_the_same_reply(
    client: Any, mission: dict[str, Any]
) -> None:
    text = CODES.encode("AST-001", "voting", answers_for("voting"))
    first = generic(client, mission, text, "same-id")
    retry = generic(client, mission, text, "same-id")
    assert retry.status_code == 200 and retry.json() == first.json()
    assert len(checklists(client, mission)) == 1
    assert len(log(client, mission, direction="in")) == 1
    assert len(log(client, mission, direction="out")) == 1


def test_a_malformed_sms_gets_an_exact_reply_and_stores_nothing(
    client: Any, mission: dict[str, Any]
) -> None:
    r = generic(client, mission, "AST-001 o A2q", "bad")
    assert r.json()["outcome"] == "invalid"
    assert r.json()["reply"]["text"] == "не сохранено: A2: 'q' не ответ; отправьте y/n"
    assert checklists(client, mission) == []
    [entry] = log(client, mission, direction="in")
    assert entry["errors"][0]["message"] == "A2: 'q' is not an answer; send y/n"


def test_the_readable_answers_are_kept_so_only_the_fix_is_resent(
    client: Any, mission: dict[str, Any]
) -> None:
    answers = answers_for("opening")
    text = CODES.encode("AST-001", "opening", answers).replace(" A2y", " A2q")
    first = generic(client, mission, text, "f1").json()
    assert first["outcome"] == "pending"
    assert first["reply"]["text"].endswith(
        "ещё нужны: A2. Не принято: A2: 'q' не ответ; отправьте y/n"
    )
    fix = generic(client, mission, "AST-001 o A2y", "f2").json()
    assert fix["outcome"] == "stored"
    [stored] = checklists(client, mission)
    detail = client.get(f"/checklists/{stored['id']}", headers=auth(mission["analyst"]))
    assert detail.json()["answers"] == answers


def test_each_incident_sms_is_a_checklist_of_its_own(client: Any, mission: dict[str, Any]) -> None:
    incident = answers_for("incident")
    for n in (1, 2):
        r = generic(client, mission, CODES.encode("AST-001", "incident", incident), f"i{n}")
        assert r.json()["outcome"] == "stored", r.json()
    stored = checklists(client, mission)
    assert [(c["phase"], c["version"]) for c in stored] == [("incident", 1), ("incident", 1)]


def test_a_station_not_assigned_is_named_in_the_reply(
    client: Any, session: Any, mission: dict[str, Any]
) -> None:
    make_station(session, mission["id"], "AST-002")
    text = CODES.encode("AST-002", "voting", answers_for("voting"))
    r = generic(client, mission, text, "x1")
    assert r.json()["outcome"] == "invalid"
    assert "AST-002" in r.json()["reply"]["text"] and checklists(client, mission) == []


def test_an_unknown_number_creates_nothing_and_gets_no_reply(
    client: Any, mission: dict[str, Any]
) -> None:
    text = CODES.encode("AST-001", "voting", answers_for("voting"))
    r = generic(client, mission, text, "u1", sender="+77019999999")
    assert r.status_code == 200 and r.json() == {"reply": None, "outcome": "unknown_number"}
    assert checklists(client, mission) == []
    assert [m["outcome"] for m in log(client, mission)] == ["unknown_number"]


def test_a_revoked_number_creates_nothing_and_gets_no_reply(
    client: Any, mission: dict[str, Any]
) -> None:
    r = client.put(
        f"/missions/{mission['id']}/sms/numbers/{PHONE}",
        json={"revoked": True},
        headers=auth(mission["admin"]),
    )
    assert r.status_code == 200 and r.json()["e164"] == E164 and r.json()["observer_code"] == "O-1"
    text = CODES.encode("AST-001", "voting", answers_for("voting"))
    r = generic(client, mission, text, "r1")
    assert r.json() == {"reply": None, "outcome": "revoked"}
    assert checklists(client, mission) == []
    restored = client.put(
        f"/missions/{mission['id']}/sms/numbers/{E164}",
        json={"revoked": False},
        headers=auth(mission["admin"]),
    )
    assert restored.json()["revoked_at"] is None
    assert generic(client, mission, text, "r2").json()["outcome"] == "stored"


def test_the_generic_webhook_refuses_a_wrong_or_missing_secret(
    client: Any, mission: dict[str, Any]
) -> None:
    url = f"/sms/generic/{mission['id']}"
    body = {"id": "1", "from": E164, "text": "AST-001 v B1y", "sim": 1, "device": "Nokia"}
    wrong = client.post(url, json=body, headers={"X-Pollcheck-Secret": "not-the-secret-at-all"})
    assert wrong.status_code == 403 and wrong.json()["code"] == "bad_secret"
    assert client.post(url, json=body).status_code == 403
    bearer = client.post(url, json=body, headers={"Authorization": f"Bearer {SECRET}"})
    assert bearer.status_code == 200
    assert log(client, mission, direction="in")[0]["message_id"] == "1"


def _twilio(client: Any, mission: dict[str, Any], params: dict[str, str], token: str) -> Any:
    url = f"http://testserver/sms/twilio/{mission['id']}"
    return client.post(
        url,
        content=urlencode(params),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": twilio_signature(token, url, params),
        },
    )


def test_twilio_signed_requests_get_twiml_and_badly_signed_ones_403(
    client: Any, mission: dict[str, Any]
) -> None:
    text = CODES.encode("AST-001", "voting", answers_for("voting"))
    params = {"MessageSid": "SM1", "From": E164, "To": "+15005550006", "Body": text}
    bad = _twilio(client, mission, params, "another-auth-token-000000")
    assert bad.status_code == 403 and bad.json()["code"] == "bad_signature"
    assert checklists(client, mission) == []
    good = _twilio(client, mission, params, TWILIO_TOKEN)
    assert good.status_code == 200 and good.headers["content-type"].startswith("application/xml")
    assert "<Response><Message>получено AST-001 голосование" in good.text
    unknown = _twilio(
        client, mission, params | {"MessageSid": "SM2", "From": "+1 202 555 0100"}, TWILIO_TOKEN
    )
    assert unknown.text.endswith("<Response></Response>")


def test_rapidpro_needs_its_token_and_gets_the_reply_as_json(
    client: Any, mission: dict[str, Any]
) -> None:
    body = {
        "contact": {"uuid": "c1", "name": "Observer", "urn": f"tel:{E164}"},
        "input": {"uuid": "in-1", "text": "AST-001 v B1x", "type": "msg"},
        "flow": {"uuid": "f1", "name": "Pollcheck"},
    }
    url = f"/sms/rapidpro/{mission['id']}"
    wrong = client.post(url, json=body, headers={"Authorization": "Token nope-nope-nope-nope"})
    assert wrong.status_code == 403
    r = client.post(url, json=body, headers={"Authorization": f"Token {RAPIDPRO_SECRET}"})
    assert r.status_code == 200
    assert r.json() == {
        "reply": "не сохранено: B1: 'x' не ответ; отправьте y/n",
        "outcome": "invalid",
    }


def test_a_gateway_not_set_up_answers_404(client: Any, session: Any) -> None:
    m, _ = make_mission(session)
    r = client.post(f"/sms/generic/{m.id}", json={"id": "1", "from": E164, "text": "x"})
    assert r.status_code == 404 and r.json()["code"] == "sms_gateway_not_found"


def test_too_many_sms_from_one_number_are_logged_not_handled(
    client: Any, mission: dict[str, Any]
) -> None:
    r = client.patch(
        f"/missions/{mission['id']}",
        json={"settings": {"sms": {"region": "KZ", "per_minute": 1, "burst": 1}}},
        headers=auth(mission["admin"]),
    )
    assert r.status_code == 200
    assert generic(client, mission, "AST-001 v B1y", "l1").json()["outcome"] == "pending"
    second = generic(client, mission, "AST-001 v B1n", "l2")
    assert second.json() == {"reply": None, "outcome": "rate_limited"}


def test_the_log_lists_every_sms_with_what_it_became(client: Any, mission: dict[str, Any]) -> None:
    generic(client, mission, CODES.encode("AST-001", "voting", answers_for("voting")), "g1")
    generic(client, mission, "hello", "g2", sender="+77019999999")
    everything = log(client, mission)
    assert [(m["direction"], m["outcome"]) for m in everything] == [
        ("in", "unknown_number"),
        ("out", "reply"),
        ("in", "stored"),
    ]
    stored = log(client, mission, outcome="stored")
    assert stored[0]["checklist_id"] == checklists(client, mission)[0]["id"]
    assert stored[0]["observer_id"] == str(mission["observer_id"])
    mine = log(client, mission, phone=PHONE)
    assert {m["phone"] for m in mine} == {E164} and len(mine) == 2
    assert [m["message_id"] for m in log(client, mission, text="HELLO")] == ["g2"]
    first = client.get(
        f"/missions/{mission['id']}/sms/messages",
        params={"limit": 2},
        headers=auth(mission["analyst"]),
    ).json()
    rest = log(client, mission, cursor=first["next_cursor"])
    assert [m["id"] for m in first["data"] + rest] == [m["id"] for m in everything]
    observer = client.get(
        f"/missions/{mission['id']}/sms/messages", headers=auth(mission["observer"])
    )
    assert observer.status_code == 403


def test_the_card_is_served_to_staff_in_their_language(
    client: Any, mission: dict[str, Any]
) -> None:
    r = client.get(
        f"/missions/{mission['id']}/sms/card",
        params={"lang": "ru"},
        headers=auth(mission["analyst"]),
    )
    assert r.status_code == 200
    card = r.json()
    assert card["prefix"] == "AST" and card["template"] == "default"
    assert "Отправьте: [AST] УЧАСТОК ФАЗА" in card["text"]
    voting = next(p for p in card["phases"] if p["phase"] == "voting")
    assert voting["example"][0].startswith("AST AST-001 v ")


@pytest.mark.usefixtures("fresh")
def test_an_sms_checklist_counts_in_the_findings(client: Any, mission: dict[str, Any]) -> None:
    answers = answers_for("voting", {"C2": "no"})
    r = generic(client, mission, CODES.encode("AST-001", "voting", answers), "f1")
    assert r.json()["outcome"] == "stored"
    findings = client.get(f"/missions/{mission['id']}/findings", headers=auth(mission["analyst"]))
    assert findings.status_code == 200
    assert findings.json()["totals"]["observations"] == 1


def test_a_gateway_secret_never_reaches_the_audit_trail_and_sms_are_not_audited_twice(
    client: Any, session: Any, mission: dict[str, Any]
) -> None:
    from sqlalchemy import select

    from models import AuditEvent

    generic(client, mission, "AST-001 v B1y", "a1")
    rows = session.execute(select(AuditEvent.action, AuditEvent.after)).all()
    assert "sms gateway set" in {r.action for r in rows}
    assert not [r for r in rows if SECRET in str(r.after) or TWILIO_TOKEN in str(r.after)]
    assert not [r for r in rows if r.action.startswith("POST /sms/")]


def test_a_broken_sms_settings_block_is_refused_with_the_field_named(
    client: Any, mission: dict[str, Any]
) -> None:
    r = client.patch(
        f"/missions/{mission['id']}",
        json={"settings": {"sms": {"region": "Kazakhstan", "windw_minutes": 5}}},
        headers=auth(mission["admin"]),
    )
    assert r.status_code == 422 and r.json()["code"] == "sms_settings_invalid"
    paths = sorted(e["path"] for e in r.json()["errors"])
    assert paths == [
        ["body", "settings", "sms", "region"],
        ["body", "settings", "sms", "windw_minutes"],
    ]


def test_sms_checklists_are_reviewed_and_exported_like_the_apps(
    client: Any, mission: dict[str, Any]
) -> None:
    generic(client, mission, CODES.encode("AST-001", "voting", answers_for("voting")), "e1")
    [stored] = checklists(client, mission)
    review = client.post(
        f"/checklists/{stored['id']}/review",
        json={"state": "verified", "comment": "checked by phone"},
        headers=auth(mission["analyst"]),
    )
    assert review.status_code == 201, review.text
    export = client.get(
        f"/missions/{mission['id']}/exports/checklists", headers=auth(mission["analyst"])
    )
    assert export.status_code == 200 and stored["id"] in export.text


def test_the_numbers_list_shows_each_observers_number_in_e164(
    client: Any, session: Any, mission: dict[str, Any]
) -> None:
    make_observer(session, mission["id"], code="O-2", phone="not a phone")
    r = client.get(f"/missions/{mission['id']}/sms/numbers", headers=auth(mission["analyst"]))
    assert [(n["observer_code"], n["e164"]) for n in r.json()] == [("O-1", E164), ("O-2", "")]


@pytest.mark.postgres_only
def test_a_message_delivered_twice_at_once_is_handled_once(
    client: Any, session: Any, mission: dict[str, Any]
) -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from api.db import session_scope
    from api.services.sms import intake
    from api.services.sms.gateways import Inbound
    from models.sms import Gateway

    text = CODES.encode("AST-001", "voting", answers_for("voting"))
    barrier = threading.Barrier(8)

    def deliver(_: int) -> tuple[str, bool]:
        barrier.wait()
        with session_scope() as s:
            handled = intake.handle(
                s, mission["id"], Gateway.generic, Inbound("twice", E164, text), get_settings()
            )
        return handled.outcome, handled.repeated

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(deliver, range(8)))
    assert sorted(results) == [("stored", False)] + [("stored", True)] * 7
    assert len(checklists(client, mission)) == 1
    assert len(log(client, mission, direction="in")) == 1


@pytest.mark.postgres_only
def test_a_numbers_first_sms_arriving_together_make_one_number_and_one_credential(
    client: Any, session: Any, mission: dict[str, Any]
) -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import func, select

    from api.db import session_scope
    from api.services.sms import intake
    from api.services.sms.gateways import Inbound
    from models import Credential, SmsNumber
    from models.sms import Gateway

    phases = ["opening", "voting", "closing", "incident"]
    barrier = threading.Barrier(len(phases))

    def deliver(phase: str) -> str:
        text = CODES.encode("AST-001", phase, answers_for(phase))
        barrier.wait()
        with session_scope() as s:
            handled = intake.handle(
                s, mission["id"], Gateway.generic, Inbound(phase, E164, text), get_settings()
            )
        return handled.outcome

    with ThreadPoolExecutor(len(phases)) as pool:
        assert list(pool.map(deliver, phases)) == ["stored"] * len(phases)
    assert session.scalar(select(func.count()).select_from(SmsNumber)) == 1
    sms_credentials = select(func.count()).where(Credential.label == f"sms {E164}")
    assert session.scalar(sms_credentials) == 1
    assert len(checklists(client, mission)) == len(phases)
