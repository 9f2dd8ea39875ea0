"""Hostile input: bodies bounded and cleaned in one place, YAML bombs refused, CSV cells safe."""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from api.errors import Invalid
from api.kit.spreadsheet import FORMULA_START, safe_cell
from api.sanitize import (
    MAX_DEPTH,
    TooComplex,
    _clean_body,
    clean_document,
    clean_text,
    load_yaml,
)
from tests.factories import auth, make_mission


def test_text_is_nfc_without_control_characters() -> None:
    decomposed = unicodedata.normalize("NFD", "Қазақстан café")
    assert clean_text(decomposed + "\x00\x1b[31m\x7f\u0085") == "Қазақстан café[31m"
    assert clean_text("line one\nline two\ttab\r\n") == "line one\nline two\ttab\r\n"


def test_documents_over_the_limits_are_refused() -> None:
    deep: Any = "x"
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(TooComplex, match="deeper"):
        clean_document(deep)
    with pytest.raises(TooComplex, match="string"):
        clean_document({"note": "x" * 20_001})
    with pytest.raises(TooComplex, match="entries"):
        clean_document(list(range(10_001)))


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([2**63 - 1, 2**63, -(2**63), 1e19, -9.3e18, 9.2e18])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["plain", "caf\u0065\u0301", "\x7f", "a\bb", "\u0085", "x" * 20_001])
)
_DOCUMENTS = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


def _nest(doc: Any, depth: int) -> Any:
    for i in range(depth):
        doc = [doc] if i % 2 else {"k": doc}
    return doc


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    doc=_DOCUMENTS,
    depth=st.sampled_from([0, 1, MAX_DEPTH - 2, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1]),
    ascii_only=st.booleans(),
)
def test_the_quick_check_of_a_body_agrees_with_the_full_walk(
    doc: Any, depth: int, ascii_only: bool
) -> None:
    """Most bodies are plain ASCII and skip the cleaning walk: whatever the body, the answer
    (passed as it is, cleaned, or refused with the same code) is the walk's."""
    body = json.dumps(_nest(doc, depth), ensure_ascii=ascii_only).encode()
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        assume(False)  # past 64 bits orjson refuses some integers: not this check's concern
    try:
        cleaned, changed = clean_document(data)
        expected: Any = orjson.dumps(cleaned) if changed else None
    except TooComplex as exc:
        expected = exc.code
    try:
        actual: Any = _clean_body(body, "application/json")
    except Invalid as exc:
        actual = exc.code
    assert actual == expected


def test_a_yaml_billion_laughs_is_refused_but_honest_aliases_work() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 9):
        bomb += f"l{i}: &l{i} [{', '.join(['*' + ('a' if i == 1 else f'l{i - 1}')] * 10)}]\n"
    with pytest.raises(TooComplex, match="expanded"):
        load_yaml(bomb)
    assert load_yaml("o: &o [a, b]\nq: *o\n") == {"o": ["a", "b"], "q": ["a", "b"]}


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised() -> None:
    for cell in ("=1+1", "+cmd", "-2", "@SUM(A1)", "\t=x", "\uff1dcmd"):
        assert safe_cell(cell).startswith("'")
    assert safe_cell("Astana") == "Astana" and safe_cell(None) == "" and safe_cell(3) == "3"
    assert safe_cell("a-b, c") == "a-b, c"


@pytest.mark.parametrize("separator", [",", ";", "\t"])
def test_no_piece_of_a_cell_is_a_formula_whatever_separator_the_spreadsheet_splits_on(
    separator: str,
) -> None:
    cell = safe_cell('{"label": "x;=1+2;", "note": "a,\t@SUM(A1) , -3\n+4"}')
    for piece in re.split("[\r\n]", cell):
        for part in piece.split(separator):
            assert not part.lstrip(" ").startswith(tuple(FORMULA_START)), (separator, part)


def test_bodies_are_cleaned_once_before_any_route(client: Any, session: Any) -> None:
    mission, admin = make_mission(session)
    name = unicodedata.normalize("NFD", "Ålmaty\x00 team")
    r = client.post(
        f"/missions/{mission.id}/observers",
        json={"code": "O-1", "name": name},
        headers=auth(admin),
    )
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "Ålmaty team" and unicodedata.is_normalized("NFC", r.json()["name"])


def test_hostile_bodies_get_the_one_error_shape(client: Any, session: Any) -> None:
    mission, admin = make_mission(session)
    url = f"/missions/{mission.id}/observers"
    deep = "[" * 40 + "]" * 40
    r = client.post(url, content=deep, headers=auth(admin) | {"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["code"] == "too_deep"
    bad = client.post(
        f"{url}/import",
        content=b"code,name\n\xff\xfe\n",
        headers=auth(admin) | {"Content-Type": "text/csv"},
    )
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_encoding"
    nan = client.post(
        url, content='{"code": NaN}', headers=auth(admin) | {"Content-Type": "application/json"}
    )
    assert nan.status_code == 422 and nan.json()["code"] == "malformed_json"
    extra = client.post(url, json={"code": "O-2", "name": "X", "admin": True}, headers=auth(admin))
    assert extra.status_code == 422
    assert set(extra.json()) <= {"error", "detail", "code", "errors"}


def _open_objects(schema: Any, spec: dict[str, Any], where: str, seen: set[str]) -> list[str]:
    """Object schemas in a request body that would accept unknown fields."""
    if isinstance(schema, list):
        return [p for i, s in enumerate(schema) for p in _open_objects(s, spec, where, seen)]
    if not isinstance(schema, dict):
        return []
    ref = schema.get("$ref")
    if ref:
        if ref in seen:
            return []
        seen.add(ref)
        name = ref.rsplit("/", 1)[-1]
        return _open_objects(spec["components"]["schemas"][name], spec, name, seen)
    found = []
    if (
        schema.get("type") == "object"
        and "properties" in schema
        and schema.get("additionalProperties") is not False
    ):
        found.append(where)
    for key in ("properties", "items", "anyOf", "oneOf", "allOf"):
        value = schema.get(key)
        if isinstance(value, dict) and key == "properties":
            for prop, sub in value.items():
                found += _open_objects(sub, spec, f"{where}.{prop}", seen)
        elif value is not None:
            found += _open_objects(value, spec, where, seen)
    return found


def test_every_documented_request_body_refuses_unknown_fields(client: Any) -> None:
    spec = client.get("/openapi.json").json()
    open_bodies = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            for media in (op.get("requestBody") or {}).get("content", {}).values():
                where = f"{method.upper()} {path}"
                open_bodies += _open_objects(media.get("schema"), spec, where, set())
    assert open_bodies == []


def test_an_oversized_streamed_upload_gets_413_not_500(client: Any, session: Any) -> None:
    from tests.factories import checklist_payload, make_observer, make_station

    mission, _ = make_mission(session)
    make_station(session, mission.id, "S-1")
    _, observer = make_observer(session, mission.id, ["S-1"])
    body = checklist_payload("S-1")
    body["attachments"] = [
        {"name": "a.jpg", "content_type": "image/jpeg", "size": 2_000_000, "sha256": "0" * 64}
    ]
    assert client.post("/checklists", json=body, headers=auth(observer)).status_code == 201

    def chunks() -> Any:  # no Content-Length: only counting the bytes can stop it
        for _ in range(40):
            yield b"x" * 50_000

    r = client.put(
        f"/checklists/{body['id']}/attachments/a.jpg",
        content=chunks(),
        headers=auth(observer) | {"Content-Type": "image/jpeg"},
    )
    assert r.status_code == 413 and r.json()["code"] == "body_too_large"


def test_a_control_character_in_a_path_or_query_is_422_not_a_database_error(
    client: Any, session: Any
) -> None:
    mission, admin = make_mission(session)
    for url in (
        f"/missions/{mission.id}/stations?location=a%00b",
        f"/missions/{mission.id}/stations/a%00b",
        f"/missions/{mission.id}/templates/a%1bb/1",
        f"/missions/{mission.id}/audit?action=a%00b",
    ):
        r = client.get(url, headers=auth(admin))
        assert r.status_code == 422 and r.json()["code"] == "control_character", url


def test_numbers_beyond_what_the_database_holds_are_422(client: Any, session: Any) -> None:
    mission, admin = make_mission(session)
    for url in (
        f"/missions/{mission.id}/stations?offset={10**30}",
        f"/missions/{mission.id}/observers?offset={10**30}",
        f"/missions/{mission.id}/audit?after_id={10**30}",
        f"/missions/{mission.id}/templates/default/{10**12}",
    ):
        assert client.get(url, headers=auth(admin)).status_code == 422, url


def test_numbers_past_64_bits_are_refused_before_they_are_stored(client: Any, session: Any) -> None:
    mission, admin = make_mission(session)
    for big in ("1" + "0" * 29, "1e300", "-9223372036854775808"):
        r = client.patch(
            f"/missions/{mission.id}",
            content='{"settings": {"threshold": ' + big + "}}",
            headers=auth(admin) | {"Content-Type": "application/json"},
        )
        assert r.status_code == 422 and r.json()["code"] == "number_too_large", big
    assert client.get(f"/missions/{mission.id}/findings", headers=auth(admin)).status_code == 200


def test_a_csv_that_cannot_be_read_is_422_naming_the_line(client: Any, session: Any) -> None:
    mission, admin = make_mission(session)
    headers = auth(admin) | {"Content-Type": "text/csv"}
    for kind in ("observers", "stations"):
        url = f"/missions/{mission.id}/{kind}/import"
        r = client.post(url, content='code,name\nO-1,"x' + "y" * 200_000 + '"\n', headers=headers)
        assert r.status_code == 422 and r.json()["code"] == "csv_syntax", r.text[:200]
        # A line break on its own inside a field is read, not a crash.
        r = client.post(url, content="code,name\r\nO-1,A\rB\r\n", headers=headers)
        assert r.status_code in (200, 422) and r.json().get("code") != "csv_syntax", r.text


# --- every body through the sanitiser: a JSON route takes only JSON ---------------------


@pytest.mark.parametrize(
    "ctype", ["text/plain", "application/octet-stream", "application/x-www-form-urlencoded", None]
)
def test_a_json_route_answers_415_to_a_body_of_another_type(
    client: Any, session: Any, ctype: str | None
) -> None:
    from sqlalchemy import func, select

    from models import Checklist
    from tests.factories import checklist_payload, make_observer, make_station

    mission, _ = make_mission(session)
    make_station(session, mission.id, "S-1")
    _, token = make_observer(session, mission.id, ["S-1"])
    nul = checklist_payload("S-1", answers={"D10": "bell \x07 escape \x1b[31m c1 \x85"})
    nul["station"] = "S-\x001"
    deep = {"items": [json.loads("[" * 300 + "]" * 300)]}
    headers = auth(token) | ({"Content-Type": ctype} if ctype else {})
    for url, body in (("/checklists", nul), ("/sync/checklists", deep)):
        r = client.post(url, content=json.dumps(body).encode(), headers=headers)
        assert r.status_code == 415, (url, r.text)
        assert r.json()["code"] == "unsupported_media_type"
        assert "application/json" in r.json()["detail"]
    assert session.scalar(select(func.count()).select_from(Checklist)) == 0


def test_the_same_bodies_as_json_are_cleaned_or_refused_never_a_500(
    client: Any, session: Any
) -> None:
    from tests.factories import checklist_payload, make_observer, make_station

    mission, _ = make_mission(session)
    make_station(session, mission.id, "S-1")
    _, token = make_observer(session, mission.id, ["S-1"])
    body = checklist_payload("S-1")
    body["answers"]["D10"] = "a\x07b\x1bc\x85d\x00e"
    r = client.post("/checklists", json=body, headers=auth(token))
    assert r.status_code == 201, r.text
    stored = client.get(f"/checklists/{body['id']}", headers=auth(token)).json()
    assert stored["answers"]["D10"] == "abcde"
    deep = "[" * 300 + "]" * 300
    r = client.post(
        "/sync/checklists",
        content='{"items": [' + deep + "]}",
        headers=auth(token) | {"Content-Type": "application/json"},
    )
    assert r.status_code == 422 and r.json()["code"] in ("too_deep", "malformed_json")


def test_a_nul_in_a_station_import_is_refused_naming_its_line_and_column(
    client: Any, session: Any
) -> None:
    from api.services import stations as station_service

    mission, admin = make_mission(session)
    url = f"/missions/{mission.id}/stations/import"
    csv_text = "code,name,region\n01-001,School 1,Astana\n01-002,Sch\x00ool 2,Astana\n"
    r = client.post(url, content=csv_text, headers=auth(admin) | {"Content-Type": "text/csv"})
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "nul_character"
    assert r.json()["errors"][0]["path"] == ["body", 3, 11]
    raw = client.post(
        url, content=csv_text, headers=auth(admin) | {"Content-Type": "application/octet-stream"}
    )
    assert raw.status_code == 415 and "text/csv" in raw.json()["detail"]
    with pytest.raises(Invalid) as refused:  # the CLI's way in
        station_service.import_csv(session, mission.id, csv_text)
    assert refused.value.errors == [
        {
            "path": ["csv", 3, 11],
            "code": "nul_character",
            "message": refused.value.errors[0]["message"],
        }
    ]
