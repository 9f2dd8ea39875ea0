"""Photo attachments: declared in the checklist, uploaded separately, resumable, on disk only."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from models import Attachment, Checklist
from tests.factories import auth, checklist_payload, make_mission, make_observer, make_station

PHOTO = os.urandom(150_000)


def _declared(data: bytes = PHOTO, name: str = "protocol.jpg", **over: Any) -> dict[str, Any]:
    return {
        "name": name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "content_type": "image/jpeg",
    } | over


@pytest.fixture
def field(session: Any) -> dict[str, Any]:
    mission, admin = make_mission(session)
    make_station(session, mission.id, "S-1")
    observer, token = make_observer(session, mission.id, ["S-1"])
    return {"mission": mission, "admin": admin, "token": token}


@pytest.fixture
def checklist(client: Any, field: dict[str, Any]) -> dict[str, Any]:
    body = checklist_payload("S-1", "closing", attachments=[_declared()])
    r = client.post("/checklists", json=body, headers=auth(field["token"]))
    assert r.status_code == 201, r.text
    return body


def _url(checklist: dict[str, Any], name: str = "protocol.jpg") -> str:
    return f"/checklists/{checklist['id']}/attachments/{name}"


def _put(client: Any, token: str, url: str, data: bytes, **headers: str) -> Any:
    return client.put(
        url, content=data, headers={**auth(token), "Content-Type": "image/jpeg", **headers}
    )


def test_declared_file_is_listed_as_missing_until_uploaded(client, field, checklist) -> None:
    status = client.get(
        f"/checklists/{checklist['id']}/attachments", headers=auth(field["token"])
    ).json()
    assert status["missing"] == ["protocol.jpg"] and status["data"][0]["received"] == 0
    r = _put(client, field["token"], _url(checklist), PHOTO)
    assert r.status_code == 201, r.text
    assert r.json()["complete"] is True
    status = client.get(
        f"/checklists/{checklist['id']}/attachments", headers=auth(field["token"])
    ).json()
    assert status["missing"] == [] and status["data"][0]["complete"] is True


def test_file_goes_to_disk_not_the_database(client, session, field, checklist) -> None:
    _put(client, field["token"], _url(checklist), PHOTO)
    from api.config import get_settings

    sha = hashlib.sha256(PHOTO).hexdigest()
    mission_dir = Path(get_settings().attachments_dir) / str(field["mission"].id)
    on_disk = list(mission_dir.rglob(sha))
    assert len(on_disk) == 1 and on_disk[0].read_bytes() == PHOTO
    got = client.get(_url(checklist), headers=auth(field["admin"]))
    assert got.status_code == 200 and got.content == PHOTO
    assert got.headers["content-type"] == "image/jpeg"


def test_uploading_again_is_safe(client, session, field, checklist) -> None:
    _put(client, field["token"], _url(checklist), PHOTO)
    again = _put(client, field["token"], _url(checklist), PHOTO)
    assert again.status_code == 200 and again.json()["complete"] is True
    assert session.scalar(select(func.count()).select_from(Attachment)) == 1


def test_dropped_upload_resumes_from_the_offset_the_server_holds(client, field, checklist) -> None:
    size = len(PHOTO)
    first = _put(
        client,
        field["token"],
        _url(checklist),
        PHOTO[:60_000],
        **{"Content-Range": f"bytes 0-59999/{size}"},
    )
    assert first.status_code == 200 and first.json()["received"] == 60_000
    assert first.headers["upload-offset"] == "60000"
    gap = _put(
        client,
        field["token"],
        _url(checklist),
        PHOTO[90_000:],
        **{"Content-Range": f"bytes 90000-{size - 1}/{size}"},
    )
    assert gap.status_code == 409 and gap.json()["code"] == "wrong_offset"
    assert gap.headers["upload-offset"] == "60000"
    rest = _put(
        client,
        field["token"],
        _url(checklist),
        PHOTO[60_000:],
        **{"Content-Range": f"bytes 60000-{size - 1}/{size}"},
    )
    assert rest.status_code == 201 and rest.json()["complete"] is True


def test_a_chunk_sent_twice_is_harmless(client, field, checklist) -> None:
    size = len(PHOTO)
    rng = {"Content-Range": f"bytes 0-99999/{size}"}
    _put(client, field["token"], _url(checklist), PHOTO[:100_000], **rng)
    _put(client, field["token"], _url(checklist), PHOTO[:100_000], **rng)
    last = {"Content-Range": f"bytes 100000-{size - 1}/{size}"}
    r = _put(client, field["token"], _url(checklist), PHOTO[100_000:], **last)
    assert r.status_code == 201


def test_wrong_bytes_are_refused_and_discarded(client, field, checklist) -> None:
    r = _put(client, field["token"], _url(checklist), os.urandom(len(PHOTO)))
    assert r.status_code == 422 and r.json()["code"] == "hash_mismatch"
    status = client.get(
        f"/checklists/{checklist['id']}/attachments", headers=auth(field["token"])
    ).json()
    assert status["data"][0]["received"] == 0
    assert _put(client, field["token"], _url(checklist), PHOTO).status_code == 201


def test_more_bytes_than_declared_are_refused(client, field, checklist) -> None:
    r = _put(client, field["token"], _url(checklist), PHOTO + b"extra")
    assert r.status_code == 422 and r.json()["code"] == "larger_than_declared"


def test_other_type_than_declared_is_refused(client, field, checklist) -> None:
    r = _put(client, field["token"], _url(checklist), PHOTO, **{"Content-Type": "image/png"})
    assert r.status_code == 422 and r.json()["code"] == "content_type_mismatch"


def test_undeclared_name_is_a_404(client, field, checklist) -> None:
    r = _put(client, field["token"], _url(checklist, "other.jpg"), PHOTO)
    assert r.status_code == 404 and r.json()["code"] == "attachment_not_declared"


def test_another_observer_cannot_upload_to_my_checklist(client, session, field, checklist) -> None:
    _, other = make_observer(session, field["mission"].id, ["S-1"])
    r = _put(client, other, _url(checklist), PHOTO)
    assert r.status_code == 404 and r.json()["code"] == "checklist_not_found"


@pytest.mark.parametrize(
    ("declared", "path", "code"),
    [
        (_declared(size=50_000_000), ["attachments", 0, "size"], "file_too_large"),
        (_declared(content_type="text/html"), ["body", "attachments", 0, "content_type"], None),
        (_declared(sha256="abc"), ["body", "attachments", 0, "sha256"], None),
        (_declared(name="../etc/passwd"), ["body", "attachments", 0, "name"], None),
    ],
)
def test_bad_declarations_are_refused_with_their_field(
    client, session, field, declared: dict[str, Any], path: list[Any], code: str | None
) -> None:
    body = checklist_payload("S-1", "closing", attachments=[declared])
    r = client.post("/checklists", json=body, headers=auth(field["token"]))
    assert r.status_code == 422, r.text
    err = r.json()["errors"][0]
    assert err["path"] == path
    if code:
        assert err["code"] == code
    assert session.scalar(select(func.count()).select_from(Checklist)) == 0


def test_same_name_twice_is_refused(client, field) -> None:
    body = checklist_payload("S-1", "closing", attachments=[_declared(), _declared()])
    r = client.post("/checklists", json=body, headers=auth(field["token"]))
    assert r.status_code == 422 and r.json()["errors"][0]["code"] == "repeated_name"


def test_correction_declaring_an_uploaded_photo_needs_no_new_upload(
    client, field, checklist
) -> None:
    _put(client, field["token"], _url(checklist), PHOTO)
    fix = checklist_payload(
        "S-1", "closing", replaces=checklist["id"], attachments=[_declared(name="p.jpg")]
    )
    out = client.post("/sync/checklists", json={"items": [fix]}, headers=auth(field["token"]))
    assert out.json()["results"][0].get("missing_attachments") is None


def test_batch_result_names_files_still_missing(client, field) -> None:
    item = checklist_payload("S-1", "closing", attachments=[_declared()])
    out = client.post("/sync/checklists", json={"items": [item]}, headers=auth(field["token"]))
    assert out.json()["results"][0]["missing_attachments"] == ["protocol.jpg"]
