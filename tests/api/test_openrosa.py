"""The OpenRosa channel as ODK Collect uses it: form list, form download, HEAD and POST
/submission under the observer's key path, and Collect's ways of sending (resend after a cut
connection, an edit with deprecatedID, a split submission, an attachment-only resend).

A submission here is the served form's own instance, filled the way Collect fills it."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import func, select, update

from api.config import get_settings
from api.services import credentials, templates
from models import Checklist, ChecklistClient, ChecklistTemplate, Role, TemplateStatus
from tests.factories import (
    answers_for,
    auth,
    every_kind_template,
    make_mission,
    make_observer,
    make_station,
    make_token,
)
from tests.openrosa_factories import NS, fill

LIST = {"l": "http://openrosa.org/xforms/xformsList"}
RESPONSE = {"r": "http://openrosa.org/http/response"}
COLLECT = {"User-Agent": "org.odk.collect.android/v2024.3.1 Dalvik/2.1.0", "Date": ""}
PHOTO = b"\xff\xd8\xff\xe0" + b"jpeg bytes " * 50


@pytest.fixture
def world(session: Any) -> dict[str, Any]:
    mission, admin = make_mission(session)
    make_station(session, mission.id, "S-1")
    make_station(session, mission.id, "S-2")
    observer, token = make_observer(session, mission.id, ["S-1"], code="O-1", name="Dana")
    return {"mission": mission, "admin": admin, "token": token, "observer": observer}


def _form(client: Any, token: str, form_id: str = "default-v1") -> bytes:
    r = client.get(f"/key/{token}/forms/{form_id}")
    assert r.status_code == 200, r.text
    return bytes(r.content)


def send(
    client: Any,
    token: str,
    xml: bytes,
    files: dict[str, bytes] | None = None,
    incomplete: bool = False,
    query: str = "",
) -> Any:
    parts: list[tuple[str, Any]] = [("xml_submission_file", ("submission.xml", xml, "text/xml"))]
    parts += [(name, (name, data, "image/jpeg")) for name, data in (files or {}).items()]
    return client.post(
        f"/key/{token}/submission{query}",
        files=parts,
        data={"*isIncomplete*": "yes"} if incomplete else None,
        headers={"User-Agent": COLLECT["User-Agent"]},
    )


def message(r: Any) -> str:
    assert r.headers["x-openrosa-version"] == "1.0"
    assert r.headers["content-type"].startswith("text/xml")
    found = etree.fromstring(r.content).find("r:message", RESPONSE)
    return str(found.text)


def stored(client: Any, token: str, instance: str) -> dict[str, Any]:
    r = client.get(f"/checklists/{instance.removeprefix('uuid:')}", headers=auth(token))
    assert r.status_code == 200, r.text
    return dict(r.json())


def count(session: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(Checklist)))


def test_form_list_names_each_published_form_with_hash_version_and_url(
    client: Any, world: dict[str, Any]
) -> None:
    token = world["token"]
    r = client.get(f"/key/{token}/formList")
    assert r.status_code == 200 and r.headers["x-openrosa-version"] == "1.0"
    forms = etree.fromstring(r.content).findall("l:xform", LIST)
    assert [f.findtext("l:formID", namespaces=LIST) for f in forms] == ["default-v1"]
    url = forms[0].findtext("l:downloadUrl", namespaces=LIST)
    assert url == f"http://testserver/key/{token}/forms/default-v1"
    served = client.get(url.removeprefix("http://testserver"))
    assert served.headers["x-openrosa-version"] == "1.0"
    md5 = hashlib.md5(served.content).hexdigest()
    assert forms[0].findtext("l:hash", namespaces=LIST) == f"md5:{md5}"
    version = etree.fromstring(served.content).find(".//x:instance/x:data", NS).get("version")
    assert forms[0].findtext("l:version", namespaces=LIST) == version
    assert b"S-1: Station S-1" in served.content and b"S-2" not in served.content


def test_head_submission_says_how_much_one_request_may_carry(
    client: Any, world: dict[str, Any]
) -> None:
    r = client.head(f"/key/{world['token']}/submission")
    assert r.status_code == 204
    assert r.headers["x-openrosa-version"] == "1.0"
    assert int(r.headers["x-openrosa-accept-content-length"]) == 10_000_000


def test_a_submitted_form_is_stored_as_the_checklist_that_was_filled(
    client: Any, session: Any, world: dict[str, Any]
) -> None:
    answers = answers_for("voting")
    instance, xml = fill(_form(client, world["token"]), answers)
    r = send(client, world["token"], xml)
    assert r.status_code == 201, r.text
    assert message(r) == "Checklist received. Thank you."
    got = stored(client, world["token"], instance)
    assert got["answers"] == answers
    assert (got["station"], got["phase"], got["template"], got["version"]) == (
        "S-1",
        "voting",
        "default",
        1,
    )
    client_row = session.get(ChecklistClient, uuid.UUID(instance[5:]))
    assert client_row.device_id == "collect:Xk9PhoneOfDana"
    assert client_row.client.startswith("org.odk.collect.android/")


def test_every_kind_of_question_comes_through_typed(client: Any, session: Any) -> None:
    mission, _ = make_mission(session, languages=["en", "ru", "kk"])
    templates.create(session, mission.id, every_kind_template(), publish=True)
    session.commit()
    make_station(session, mission.id, "S-1")
    _, token = make_observer(session, mission.id, ["S-1"])
    answers = {"K1": "no", "K2": "na", "K3": ["late", "closed"], "K5": "07:45", "K6": "bad"}
    answers |= {"L1": 1200, "L2": 3}
    instance, xml = fill(_form(client, token, "every-v1"), answers, phase="closing")
    r = send(client, token, xml)
    assert r.status_code == 201, message(r)
    assert stored(client, token, instance)["answers"] == answers


def test_the_same_instance_sent_again_is_201_and_stores_nothing_new(
    client: Any, session: Any, world: dict[str, Any]
) -> None:
    _, xml = fill(_form(client, world["token"]), answers_for("voting"))
    assert send(client, world["token"], xml).status_code == 201
    again = send(client, world["token"], xml)  # the answer was lost: Collect sends again
    assert again.status_code == 201
    assert "already arrived" in message(again)
    assert count(session) == 1


def test_other_content_under_the_same_instance_id_is_a_conflict(
    client: Any, session: Any, world: dict[str, Any]
) -> None:
    form = _form(client, world["token"])
    instance, xml = fill(form, answers_for("voting"))
    assert send(client, world["token"], xml).status_code == 201
    _, other = fill(form, answers_for("voting", {"D1": "most"}), instance=instance)
    r = send(client, world["token"], other)
    assert r.status_code == 409
    assert "other content" in message(r)
    assert count(session) == 1


def test_an_edit_with_deprecated_id_is_the_next_version(client: Any, world: dict[str, Any]) -> None:
    form = _form(client, world["token"])
    first, xml = fill(form, answers_for("voting"))
    assert send(client, world["token"], xml).status_code == 201
    edited, xml2 = fill(form, answers_for("voting", {"D1": "most"}), deprecated=first)
    r = send(client, world["token"], xml2)
    assert r.status_code == 201, message(r)
    got = stored(client, world["token"], edited)
    assert (got["version"], got["replaces_id"], got["answers"]["D1"]) == (2, first[5:], "most")
    assert stored(client, world["token"], first)["is_latest"] is False


def _photos(client: Any, token: str, instance: str) -> dict[str, bool]:
    r = client.get(f"/checklists/{instance[5:]}/attachments", headers=auth(token))
    return {a["name"]: a["complete"] for a in r.json()["data"]}


def test_photos_arrive_with_the_form_and_a_resend_after_a_cut_stores_nothing_twice(
    client: Any, session: Any, world: dict[str, Any]
) -> None:
    token = world["token"]
    instance, xml = fill(_form(client, token), answers_for("voting"), photos=("p1.jpg",))
    assert send(client, token, xml, {"p1.jpg": PHOTO}).status_code == 201
    assert _photos(client, token, instance) == {"p1.jpg": True}
    again = send(client, token, xml, {"p1.jpg": PHOTO})
    assert again.status_code == 201 and count(session) == 1
    r = client.get(f"/checklists/{instance[5:]}/attachments/p1.jpg", headers=auth(token))
    assert r.content == PHOTO


def test_a_form_whose_photo_did_not_arrive_is_completed_by_the_resend(
    client: Any, session: Any, world: dict[str, Any]
) -> None:
    token = world["token"]
    instance, xml = fill(_form(client, token), answers_for("voting"), photos=("a.jpg", "b.jpg"))
    first = send(client, token, xml, {"a.jpg": PHOTO})  # b.jpg lost on the way
    assert first.status_code == 422
    assert "b.jpg" in message(first) and count(session) == 0
    resend = send(client, token, xml, {"b.jpg": PHOTO + b"b"})  # only what was missing
    assert resend.status_code == 201, message(resend)
    assert _photos(client, token, instance) == {"a.jpg": True, "b.jpg": True}


def test_a_split_submission_is_stored_once_its_last_part_arrives(
    client: Any, session: Any, world: dict[str, Any]
) -> None:
    token = world["token"]
    instance, xml = fill(_form(client, token), answers_for("voting"), photos=("a.jpg", "b.jpg"))
    part = send(client, token, xml, {"a.jpg": PHOTO}, incomplete=True)
    assert part.status_code == 201 and "Part" in message(part)
    assert count(session) == 0
    last = send(client, token, xml, {"b.jpg": PHOTO + b"b"})
    assert last.status_code == 201, message(last)
    assert _photos(client, token, instance) == {"a.jpg": True, "b.jpg": True}
    assert count(session) == 1


def test_a_revoked_key_is_refused_with_401(
    client: Any, session: Any, world: dict[str, Any]
) -> None:
    token = world["token"]
    _, xml = fill(_form(client, token), answers_for("voting"))
    found = [c for c in credentials.list_for_mission(session, world["mission"].id)]
    observer_cred = next(c for c in found if c.role == Role.observer)
    credentials.revoke(session, world["mission"].id, observer_cred.id)
    session.commit()
    for r in (
        client.get(f"/key/{token}/formList"),
        client.head(f"/key/{token}/submission"),
        send(client, token, xml),
    ):
        assert r.status_code == 401
        assert r.headers["x-openrosa-version"] == "1.0"
    assert "revoked" in message(send(client, token, xml))


def test_only_observer_keys_open_the_channel(client: Any, session: Any, world: dict[str, Any]):
    analyst = make_token(session, world["mission"].id, Role.analyst)
    assert client.get(f"/key/{analyst}/formList").status_code == 403


def test_a_form_version_no_longer_published_gets_a_clear_answer(
    client: Any, session: Any, world: dict[str, Any]
) -> None:
    token = world["token"]
    _, xml = fill(_form(client, token), answers_for("voting"))
    session.execute(
        update(ChecklistTemplate)
        .where(ChecklistTemplate.mission_id == world["mission"].id)
        .values(status=TemplateStatus.retired)
    )
    session.commit()
    r = send(client, token, xml)
    assert r.status_code == 404
    assert "'default-v1' is not published" in message(r)
    assert client.get(f"/key/{token}/forms/default-v1").status_code == 404


def test_an_oversized_submission_is_413_with_a_message(
    client: Any, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLLCHECK_OPENROSA_MAX_SUBMISSION_BYTES", "100000")
    get_settings.cache_clear()
    try:
        token = world["token"]
        assert (
            client.head(f"/key/{token}/submission").headers["x-openrosa-accept-content-length"]
            == "100000"
        )
        _, xml = fill(_form(client, token), answers_for("voting"), photos=("big.jpg",))
        r = send(client, token, xml, {"big.jpg": b"x" * 100_001})
        assert r.status_code == 413
        assert "over 100000 bytes" in message(r)
    finally:
        get_settings.cache_clear()


def test_every_problem_names_its_question_in_the_observers_language(
    client: Any, session: Any, world: dict[str, Any]
) -> None:
    answers = answers_for("voting")
    del answers["D1"]
    _, xml = fill(_form(client, world["token"]), answers)
    r = send(client, world["token"], xml)
    assert r.status_code == 422
    text = message(r)
    assert "D1 (Were voters' identity documents checked against the voter list?)" in text
    assert "needs an answer" in text
    _, ru_token = make_observer(session, world["mission"].id, ["S-1"], language="ru")
    _, xml = fill(_form(client, ru_token), answers)
    text = message(send(client, ru_token, xml))
    assert "D1 (Сверялись ли документы" in text and "нужен ответ" in text


def test_a_station_not_assigned_is_named(client: Any, world: dict[str, Any]) -> None:
    _, xml = fill(_form(client, world["token"]), answers_for("voting"), station="S-2")
    r = send(client, world["token"], xml)
    assert r.status_code == 422 and "station: station S-2 is not assigned to you" in message(r)


def test_a_checklist_from_collect_counts_in_the_findings(
    client: Any, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLLCHECK_FINDINGS_MAX_LAG_S", "0")
    monkeypatch.setenv("POLLCHECK_FINDINGS_CACHE_S", "0")
    get_settings.cache_clear()
    try:
        _, xml = fill(_form(client, world["token"]), answers_for("voting"))
        assert send(client, world["token"], xml).status_code == 201
        url = f"/missions/{world['mission'].id}/findings"
        totals = client.get(url, headers=auth(world["admin"])).json()["totals"]
        assert totals["observations"] == 1
    finally:
        get_settings.cache_clear()


def test_a_resend_of_a_stored_split_submission_is_a_replay(
    client: Any, session: Any, world: dict[str, Any]
) -> None:
    """The answer to the last part was lost; Collect sends the parts again, and a part may
    come without the photo the server already holds."""
    token = world["token"]
    _, xml = fill(_form(client, token), answers_for("voting"), photos=("a.jpg", "b.jpg"))
    assert send(client, token, xml, {"a.jpg": PHOTO}, incomplete=True).status_code == 201
    assert send(client, token, xml, {"b.jpg": PHOTO + b"b"}).status_code == 201
    again = send(client, token, xml, {"b.jpg": PHOTO + b"b"})
    assert again.status_code == 201 and "already arrived" in message(again)
    assert count(session) == 1


def test_a_checklist_from_collect_is_exported_like_the_web_apps(
    client: Any, world: dict[str, Any]
) -> None:
    import csv
    import io

    answers = answers_for("voting", {"D1": "most"})
    instance, xml = fill(_form(client, world["token"]), answers)
    assert send(client, world["token"], xml).status_code == 201
    url = f"/missions/{world['mission'].id}/exports/checklists"
    r = client.get(url, headers=auth(world["admin"]))
    assert r.status_code == 200, r.text
    _, header, *rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"), newline="")))
    (row,) = rows
    col = {name: i for i, name in enumerate(header)}
    assert row[0] == instance[5:]
    assert row[col["D1"]] == "most" and "S-1" in row


def test_more_photos_than_a_checklist_may_have_is_told_in_openrosa(
    client: Any, world: dict[str, Any]
) -> None:
    names = tuple(f"p{i}.jpg" for i in range(11))
    _, xml = fill(_form(client, world["token"]), answers_for("voting"), photos=names)
    r = send(client, world["token"], xml, dict.fromkeys(names, PHOTO))
    assert r.status_code == 422
    assert "10 photos" in message(r)


def test_the_device_id_collect_puts_in_the_url_is_kept_when_the_form_has_none(
    client: Any, session: Any, world: dict[str, Any]
) -> None:
    instance, xml = fill(_form(client, world["token"]), answers_for("voting"), device=None)
    r = send(client, world["token"], xml, query="?deviceID=collect:FromTheUrl")
    assert r.status_code == 201, message(r)
    row = session.get(ChecklistClient, uuid.UUID(instance[5:]))
    assert row.device_id == "collect:FromTheUrl"


def test_answers_the_middlewares_give_carry_the_openrosa_version_too(
    client: Any, world: dict[str, Any]
) -> None:
    r = client.post(
        f"/key/{world['token']}/submission",
        content=b"{}",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 415 and r.headers["x-openrosa-version"] == "1.0"
    assert "x-openrosa-version" not in client.get("/healthz").headers


def test_a_photo_name_that_would_leave_the_upload_folder_is_refused(
    client: Any, session: Any, world: dict[str, Any]
) -> None:
    _, xml = fill(_form(client, world["token"]), answers_for("voting"), photos=("../../x.jpg",))
    r = send(client, world["token"], xml)
    assert r.status_code == 422 and "../../x.jpg" in message(r)
    assert count(session) == 0
