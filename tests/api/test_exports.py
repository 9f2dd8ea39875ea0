"""Exports and the OData feed: what analysts open in Excel, QGIS and Power BI.

Spreadsheets are read back with other libraries than the writer's (XlsxWriter writes,
python-calamine reads; CSV through the csv module in each separator's reading)."""

from __future__ import annotations

import base64
import csv
import io
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import time
from typing import Any

import orjson
import pytest
from python_calamine import CalamineWorkbook
from sqlalchemy import select

from api.checklist_schema import TemplateDefinition
from api.kit.spreadsheet import safe_cell
from api.services import templates
from models import Answer, AuditEvent, Checklist, Role
from tests.api.test_findings import fresh  # noqa: F401 (the fixture)
from tests.factories import auth, make_mission, make_observer, make_station, make_token
from tests.findings_factories import correct, post, set_review

FORMULA = ("=", "+", "-", "@")
# Findings and exports read straight after a post see it (fold on read, no reuse).
pytestmark = pytest.mark.usefixtures("fresh")


@pytest.fixture
def world(client: Any, session: Any) -> dict[str, Any]:
    """Two regions, three stations (one with coordinates), two teams, a correction, a
    rejected and a quarantined checklist."""
    mission, admin = make_mission(session)
    make_station(session, mission.id, "S-1", latitude=51.1694, longitude=71.4491)
    make_station(session, mission.id, "S-2")
    make_station(session, mission.id, "S-3", region="Almaty", district="Medeu district")
    _, obs1 = make_observer(session, mission.id, ["S-1", "S-2"], code="O-1", team="North")
    _, obs2 = make_observer(session, mission.id, ["S-3"], code="O-2", team="South")
    ids = {
        "v1": post(client, obs1, "S-1", "opening"),
        "voting": post(client, obs1, "S-2", "voting"),
        "south": post(client, obs2, "S-3", "voting"),
        "closing": post(client, obs2, "S-3", "closing", {"F11": "yes"}),
        "rejected": post(client, obs1, "S-1", "voting"),
        "quarantined": post(client, obs2, "S-3", "opening"),
    }
    ids["v2"] = correct(
        client, obs1, ids["v1"], "S-1", "opening",
        {"A1": "later", "A3": "yes", "A4": ["ink", "ballots"]},
    )  # fmt: skip
    set_review(session, mission.id, ids["rejected"], review_state="rejected")
    set_review(session, mission.id, ids["quarantined"], quarantined=True)
    return {
        "mission": mission,
        "admin": admin,
        "analyst": make_token(session, mission.id, Role.analyst),
        "viewer": make_token(session, mission.id, Role.viewer),
        "observer": obs2,
        "ids": ids,
    }


def _get(client: Any, token: str, path: str, **params: Any) -> Any:
    r = client.get(path, params=params, headers=auth(token))
    assert r.status_code == 200, r.text
    return r


def _csv(content: bytes, delimiter: str = ",") -> list[list[str]]:
    text = content.decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))


def _xlsx(content: bytes) -> dict[str, list[list[Any]]]:
    book = CalamineWorkbook.from_filelike(io.BytesIO(content))
    return {name: book.get_sheet_by_name(name).to_python() for name in book.sheet_names}


def _latest(session: Any, mission_id: uuid.UUID) -> dict[str, list[Any]]:
    """Every answer of every latest checklist, by checklist id, as stored."""
    session.commit()
    rows = session.execute(
        select(Answer, Checklist.phase)
        .join(Checklist, Checklist.id == Answer.checklist_id)
        .where(Checklist.mission_id == mission_id, Checklist.is_latest.is_(True))
    ).all()
    out: dict[str, list[Any]] = {
        str(cid): []
        for cid in session.scalars(
            select(Checklist.id).where(
                Checklist.mission_id == mission_id, Checklist.is_latest.is_(True)
            )
        )
    }
    for a, _ in rows:
        out[str(a.checklist_id)].append(a)
    return out


def test_every_answer_of_every_latest_checklist_is_in_the_xlsx_once(
    client: Any, session: Any, world: dict[str, Any]
) -> None:
    m = world["mission"]
    r = _get(client, world["analyst"], f"/missions/{m.id}/exports/checklists", format="xlsx")
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert "pollcheck_checklists_" in r.headers["content-disposition"]
    sheets = _xlsx(r.content)
    assert list(sheets) == ["checklists", "codebook"]
    title, header, *data = sheets["checklists"]
    assert title[0].startswith("Pollcheck checklists export") and "data version" in title[0]
    col = {name: i for i, name in enumerate(header)}
    by_id = {row[col["checklist_id"]]: row for row in data}
    stored = _latest(session, m.id)
    assert len(data) == len(by_id) == len(stored)  # one row per latest checklist
    assert world["ids"]["v1"] not in by_id and world["ids"]["v2"] in by_id
    first_answer = col["clock_skew_s"] + 1
    for cid, answers in stored.items():
        row = by_id[cid]
        expected: dict[int, Any] = {}
        for a in answers:
            if a.kind == "closed" and f"{a.question_code}_{a.value}" in col:  # multi-choice
                expected[col[f"{a.question_code}_{a.value}"]] = 1
            elif a.number is not None and a.kind == "number":
                expected[col[a.question_code]] = a.number
            elif a.kind == "other" and a.number is not None:  # a time of day
                expected[col[a.question_code]] = time(a.number // 60, a.number % 60)
            else:
                expected[col[a.question_code]] = safe_cell(a.value)
        for i, want in expected.items():
            assert row[i] == want, (cid, header[i], row[i], want)
        # Exactly once: every other answer cell is empty, or a 0 of a chosen multi-choice.
        others = [
            (header[i], v) for i, v in enumerate(row[first_answer:], first_answer)
            if i not in expected and v not in ("", None, 0)
        ]  # fmt: skip
        assert others == [], (cid, others)
    codebook = sheets["codebook"]
    assert codebook[1][:4] == ["column", "question", "answer", "type"]
    assert "label_ru" in codebook[1]


def test_the_csv_holds_the_same_checklists_and_every_version_when_asked(
    client: Any, session: Any, world: dict[str, Any]
) -> None:
    m = world["mission"]
    latest = _csv(_get(client, world["admin"], f"/missions/{m.id}/exports/checklists").content)
    title, header, *data = latest
    assert title[0].startswith("Pollcheck checklists export")
    assert {r[0] for r in data} == set(_latest(session, m.id))
    every = _csv(
        _get(client, world["admin"], f"/missions/{m.id}/exports/checklists", versions="all").content
    )
    col = {name: i for i, name in enumerate(every[1])}
    rows = {r[0]: r for r in every[2:]}
    assert len(rows) == len(data) + 1
    v2 = rows[world["ids"]["v2"]]
    assert (v2[col["version"]], v2[col["replaces_id"]]) == ("2", world["ids"]["v1"])
    labelled = _csv(
        _get(
            client, world["admin"], f"/missions/{m.id}/exports/checklists",
            values="labels", lang="ru",
        ).content
    )  # fmt: skip
    col = {name: i for i, name in enumerate(labelled[1])}
    answers = {r[col["A1"]] for r in labelled[2:]}
    assert "С опозданием более чем на 1 час" in answers  # the correction's A1, in Russian


FILTERS: list[dict[str, str]] = [
    {},
    {"phase": "voting"},
    {"location": "Astana"},
    {"location": "Almaty/Medeu district"},
    {"team": "South"},
    {"abroad": "false", "phase": "opening"},
    {"template": "default", "template_version": "1"},
]


def test_export_filters_give_the_checklists_the_findings_count(
    client: Any, world: dict[str, Any]
) -> None:
    for filters in FILTERS:
        _same_checklists(client, world, filters)


def _same_checklists(client: Any, world: dict[str, Any], filters: dict[str, str]) -> None:
    m = world["mission"]
    findings = _get(client, world["admin"], f"/missions/{m.id}/findings", **filters).json()
    counted = {p["phase"]: p["observations"] for p in findings["phases"]}
    rows = _csv(
        _get(
            client, world["admin"], f"/missions/{m.id}/exports/checklists",
            versions="counting", **filters,
        ).content
    )  # fmt: skip
    col = {name: i for i, name in enumerate(rows[1])}
    exported: dict[str, int] = {}
    for r in rows[2:]:
        exported[r[col["phase"]]] = exported.get(r[col["phase"]], 0) + 1
    assert exported == counted
    title = rows[0][0]
    assert all(f"{k}=" in title for k in filters) and ("filters: none" in title) == (not filters)


def test_findings_long_match_the_findings_view(client: Any, world: dict[str, Any]) -> None:
    m = world["mission"]
    view = _get(client, world["viewer"], f"/missions/{m.id}/findings").json()
    rows = _csv(_get(client, world["viewer"], f"/missions/{m.id}/exports/findings").content)
    col = {name: i for i, name in enumerate(rows[1])}
    mine = {
        (r[col["phase"]], r[col["question"]], r[col["answer"]]): int(r[col["count"]])
        for r in rows[2:]
        if r[col["place"]] == "(all)"
    }
    for phase in view["phases"]:
        for q in phase["questions"]:
            for a in q.get("answers", []):
                assert mine[(phase["phase"], q["code"], a["value"])] == a["count"]
    places = {r[col["place"]] for r in rows[2:]}
    assert places == {"(all)", "Astana", "Almaty"}
    xlsx = _xlsx(_get(client, world["viewer"], f"/missions/{m.id}/exports/counting",
                      format="xlsx").content)  # fmt: skip
    assert list(xlsx) == ["counting", "checks"]
    counting = xlsx["counting"]
    assert [r[0] for r in counting[2:]] == [world["ids"]["closing"]]
    assert "fails_options_sum_to_valid" in counting[1]
    incident = post(client, world["observer"], "S-3", "incident")
    critical = post(client, world["observer"], "S-3", "opening", {"A2": "no"})
    incidents = _csv(_get(client, world["viewer"], f"/missions/{m.id}/exports/incidents").content)
    assert [r[0] for r in incidents[2:]] == [incident]
    rows = _csv(_get(client, world["viewer"], f"/missions/{m.id}/exports/critical").content)
    col = {name: i for i, name in enumerate(rows[1])}
    found = {(r[0], r[col["question"]], r[col["answer"]]) for r in rows[2:]}
    assert found == {(critical, "A2", "no"), (world["ids"]["v2"], "A4", "ballots")}
    view = _get(client, world["viewer"], f"/missions/{m.id}/findings/critical").json()
    assert view["count"] == len(rows) - 2
    sheets = _xlsx(_get(client, world["viewer"], f"/missions/{m.id}/exports/critical",
                        format="xlsx").content)  # fmt: skip
    assert sorted(r[0] for r in sheets["by_question"][2:]) == ["A2", "A4"]


def test_stations_geojson_is_a_feature_collection_longitude_first(
    client: Any, world: dict[str, Any]
) -> None:
    m = world["mission"]
    r = _get(client, world["viewer"], f"/missions/{m.id}/exports/stations", format="geojson")
    assert r.headers["content-type"] == "application/geo+json"
    doc = orjson.loads(r.content)
    assert doc["type"] == "FeatureCollection" and isinstance(doc["features"], list)
    assert "data version" in doc["pollcheck"]["title"]
    by_code = {}
    for f in doc["features"]:
        assert f["type"] == "Feature" and isinstance(f["properties"], dict)
        g = f["geometry"]
        if g is not None:
            assert g["type"] == "Point" and len(g["coordinates"]) == 2
            lon, lat = g["coordinates"]
            assert -180 <= lon <= 180 and -90 <= lat <= 90
        by_code[f["properties"]["station_code"]] = f
    assert by_code["S-1"]["geometry"]["coordinates"] == [71.4491, 51.1694]  # longitude first
    assert by_code["S-2"]["geometry"] is None
    s3 = by_code["S-3"]["properties"]
    assert (s3["region"], s3["district"], s3["checklists"]) == ("Almaty", "Medeu district", 2)
    assert s3["phases_observed"] == "voting closing"
    only = orjson.loads(
        _get(client, world["viewer"], f"/missions/{m.id}/exports/stations", format="geojson",
             location="Almaty").content
    )  # fmt: skip
    assert [f["properties"]["station_code"] for f in only["features"]] == ["S-3"]
    rows = _csv(_get(client, world["viewer"], f"/missions/{m.id}/exports/stations").content)
    assert [r[1] for r in rows[2:]] == ["S-1", "S-2", "S-3"]


def _basic(token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"excel:{token}".encode()).decode()}


def test_odata_metadata_is_csdl_and_paging_returns_every_row_once(
    client: Any, session: Any, world: dict[str, Any]
) -> None:
    m = world["mission"]
    base = f"/missions/{m.id}/odata"
    assert client.get(base).status_code == 401
    assert "Basic" in client.get(base).headers["www-authenticate"]
    service = client.get(base, headers=_basic(world["analyst"])).json()
    assert {s["name"] for s in service["value"]} == {"Checklists", "Stations"}
    r = client.get(f"{base}/$metadata", headers=_basic(world["analyst"]))
    assert r.status_code == 200 and r.headers["odata-version"] == "4.0"
    edm = "{http://docs.oasis-open.org/odata/ns/edm}"
    root = ET.fromstring(r.content)
    assert root.tag == "{http://docs.oasis-open.org/odata/ns/edmx}Edmx"
    schema = root.find(f".//{edm}Schema")
    assert schema is not None
    types = {t.get("Name"): t for t in schema.findall(f"{edm}EntityType")}
    checklist = types["Checklist"]
    key = checklist.find(f"{edm}Key/{edm}PropertyRef")
    assert key is not None and key.get("Name") == "checklist_id"
    props = {p.get("Name"): p.get("Type") for p in checklist.findall(f"{edm}Property")}
    assert props["received_at_utc"] == "Edm.DateTimeOffset" and props["A2"] == "Edm.String"
    sets = schema.findall(f"{edm}EntityContainer/{edm}EntitySet")
    assert {s.get("Name") for s in sets} == {"Checklists", "Stations"}

    seen: list[str] = []
    url: str | None = f"{base}/Checklists?$count=true&$select=checklist_id,phase,A1"
    pages = 0
    while url:
        page = client.get(url, headers=_basic(world["analyst"]) | {"Prefer": "odata.maxpagesize=2"})
        assert page.status_code == 200, page.text
        body = page.json()
        if pages == 0:
            assert body["@odata.count"] == 6
        assert all(set(v) == {"checklist_id", "phase", "A1"} for v in body["value"])
        seen += [v["checklist_id"] for v in body["value"]]
        url = body.get("@odata.nextLink")
        pages += 1
    assert pages == 3
    assert sorted(seen) == sorted(_latest(session, m.id)) and len(seen) == len(set(seen))

    voting = client.get(
        f"{base}/Checklists",
        params={"$filter": "phase eq 'voting' and review_state ne 'rejected' "
                           "and received_at_utc ge 2000-01-01T00:00:00Z and region eq 'Astana'"},
        headers=auth(world["analyst"]),
    ).json()  # fmt: skip
    assert [v["checklist_id"] for v in voting["value"]] == [world["ids"]["voting"]]
    top = client.get(f"{base}/Stations?$top=2&$skip=1", headers=_basic(world["viewer"])).json()
    assert [v["station_code"] for v in top["value"]] == ["S-2", "S-3"]
    assert "@odata.nextLink" not in top
    bad = client.get(f"{base}/Checklists?$filter=phase has 'x'", headers=auth(world["analyst"]))
    assert bad.status_code == 400 and bad.json()["errors"][0]["path"] == ["query", "$filter"]
    count = client.get(f"{base}/Stations/$count", headers=_basic(world["viewer"]))
    assert count.text == "3"


HOSTILE = [
    '=HYPERLINK("http://evil.example","x")',
    "+1",
    "-1",
    "@x",
    "\t=1+1",
    ";=1+1",
    "x;=1+1",
    "x\t=1+1",
]


def _hostile_template() -> TemplateDefinition:
    return TemplateDefinition.model_validate(
        {
            "code": "hostile",
            "version": 1,
            "title": {"en": "Hostile"},
            "languages": ["en"],
            "sections": [
                {
                    "code": "H",
                    "title": {"en": "=cmd|' /C calc'!A0"},
                    "questions": [
                        {
                            "code": "H1",
                            "type": "single",
                            "label": {"en": "@SUM(1+1)"},
                            "options": [
                                {"code": f"o{i}", "label": {"en": label}}
                                for i, label in enumerate(HOSTILE)
                            ],
                        },
                        {"code": "H2", "type": "text", "label": {"en": "-2+3"}},
                    ],
                }
            ],
        }
    )


def _no_formula(cells: list[Any], where: str) -> None:
    for cell in cells:
        if isinstance(cell, str):
            assert not cell.lstrip(" \t\r\n").startswith(FORMULA), (where, cell)


def test_hostile_labels_and_answers_are_neutralised_in_every_format(
    client: Any, session: Any
) -> None:
    mission, admin = make_mission(session, languages=["en"])
    templates.create(session, mission.id, _hostile_template(), publish=True)
    session.commit()
    make_station(session, mission.id, "S-1", name="=HYPERLINK(\"http://evil.example\")",
                 latitude=1.0, longitude=2.0)  # fmt: skip
    _, obs = make_observer(session, mission.id, ["S-1"], team="-team")
    for i, text in enumerate(HOSTILE):
        body = {
            "id": str(uuid.uuid4()), "station": "S-1", "template": "hostile",
            "template_version": 1, "phase": "voting",
            "observed_at": "2026-12-04T10:00:00+06:00",
            "answers": {"H1": f"o{i}", "H2": text},
        }  # fmt: skip
        assert client.post("/checklists", json=body, headers=auth(obs)).status_code == 201
    base = f"/missions/{mission.id}/exports"
    for params in ({"values": "labels"}, {"values": "codes"}):
        content = _get(client, admin, f"{base}/checklists", **params).content
        for delimiter in (",", ";", "\t"):  # how a spreadsheet may read the file
            rows = _csv(content, delimiter)
            assert rows
            for row in rows:
                _no_formula(row, f"csv {delimiter!r}")
        labelled = _csv(content)
        col = labelled[1].index("H2")
        assert sorted(r[col] for r in labelled[2:]) == sorted(safe_cell(t) for t in HOSTILE)
    xlsx = _xlsx(_get(client, admin, f"{base}/checklists", format="xlsx", values="labels").content)
    for name, sheet in xlsx.items():
        for row in sheet:
            _no_formula(row, f"xlsx {name}")
    assert any(r[0] == "'@SUM(1+1)" for r in xlsx["codebook"] if r[1] == "H1") or any(
        "'@SUM(1+1)" in r for r in xlsx["codebook"]
    )
    for kind in ("stations", "findings"):
        for row in _csv(_get(client, admin, f"{base}/{kind}").content, ";"):
            _no_formula(row, kind)
    geo = orjson.loads(_get(client, admin, f"{base}/stations", format="geojson").content)
    _no_formula(list(geo["features"][0]["properties"].values()), "geojson")
    feed = _get(client, admin, f"/missions/{mission.id}/odata/Checklists").json()
    for row in feed["value"]:
        _no_formula(list(row.values()), "odata")


def test_a_viewer_gets_403_on_checklist_exports_and_the_rest_is_audited(
    client: Any, session: Any, world: dict[str, Any]
) -> None:
    m = world["mission"]
    viewer = auth(world["viewer"])
    r = client.get(f"/missions/{m.id}/exports/checklists", headers=viewer)
    assert r.status_code == 403
    assert client.get(f"/missions/{m.id}/odata/Checklists", headers=viewer).status_code == 403
    service = client.get(f"/missions/{m.id}/odata", headers=viewer).json()
    assert [s["name"] for s in service["value"]] == ["Stations"]
    _, observer = make_observer(session, m.id, ["S-1"])
    as_observer = client.get(f"/missions/{m.id}/exports/stations", headers=auth(observer))
    assert as_observer.status_code == 403
    assert client.get(f"/missions/{m.id}/exports/stations", headers=viewer).status_code == 200
    _get(client, world["analyst"], f"/missions/{m.id}/exports/checklists", phase="voting")
    missing = client.get(f"/missions/{m.id}/exports/findings", params={"location": "Nowhere"},
                         headers=viewer)  # fmt: skip
    assert missing.status_code == 404 and missing.json()["code"] == "location_not_found"
    wrong = client.get(f"/missions/{m.id}/exports/findings", params={"format": "geojson"},
                       headers=viewer)  # fmt: skip
    assert wrong.status_code == 422
    session.commit()
    events = session.scalars(
        select(AuditEvent).where(AuditEvent.action.startswith("export."))
    ).all()
    actions = sorted((e.action, e.role) for e in events)
    assert actions == [("export.checklists", "analyst"), ("export.stations", "viewer")]
    checklists = next(e for e in events if e.action == "export.checklists")
    assert checklists.after["filters"] == {"phase": "voting"}
    assert checklists.after["data_version"] > 0


def test_the_command_line_writes_the_same_export_with_a_progress_bar(
    client: Any, world: dict[str, Any], tmp_path: Any
) -> None:
    from typer.testing import CliRunner

    from api.cli import app

    m = world["mission"]
    out = tmp_path / "checklists.xlsx"
    result = CliRunner().invoke(
        app, ["export", "checklists", "--mission", str(m.id), "--format", "xlsx", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    sheets = _xlsx(out.read_bytes())
    api = _xlsx(_get(client, world["admin"], f"/missions/{m.id}/exports/checklists",
                     format="xlsx").content)  # fmt: skip
    assert sheets["checklists"][1:] == api["checklists"][1:]
    bad = CliRunner().invoke(
        app, ["export", "stations", "--mission", str(m.id), "--location", "Nowhere",
              "-o", str(tmp_path / "x.csv")],
    )  # fmt: skip
    assert bad.exit_code == 1 and not (tmp_path / "x.csv").exists()


def test_a_client_that_disconnects_stops_the_export(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from api.main import create_app
    from api.services.exports import checklists, writers

    monkeypatch.setattr(writers, "CHUNK", 1)  # a chunk per row
    pulled: list[int] = []
    closed: list[bool] = []
    real_rows = checklists.rows

    def counted(*args: Any, **kwargs: Any) -> Iterator[tuple[Any, ...]]:
        try:
            for row in real_rows(*args, **kwargs):
                pulled.append(1)
                yield row
        finally:
            closed.append(True)

    monkeypatch.setattr(checklists, "rows", counted)
    m = world["mission"]
    token = world["analyst"].encode()
    sent: list[dict[str, Any]] = []

    async def run() -> None:
        first_body = asyncio.Event()
        calls = 0

        async def receive() -> dict[str, Any]:
            nonlocal calls
            calls += 1
            if calls == 1:
                return {"type": "http.request", "body": b"", "more_body": False}
            await first_body.wait()  # the reader goes away once the first rows are in
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            if message["type"] == "http.response.body" and message.get("body"):
                first_body.set()

        scope = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1", "method": "GET", "scheme": "http",
            "path": f"/missions/{m.id}/exports/checklists", "raw_path": b"",
            "query_string": b"", "root_path": "",
            "headers": [(b"authorization", b"Bearer " + token), (b"host", b"test")],
            "client": ("127.0.0.1", 1), "server": ("test", 80),
        }  # fmt: skip
        await create_app()(scope, receive, send)
        await asyncio.sleep(0.1)

    asyncio.run(run())
    import gc

    gc.collect()
    assert sent[0]["status"] == 200
    assert 1 <= len(pulled) < 6, pulled  # the world has six latest checklists
    assert closed == [True]  # and its cursor (and snapshot) were let go


BAD_FILTERS = [
    "received_at_utc ge 'yesterday'",
    "quarantined eq 'no'",
    "version gt 1.5",
    "phase lt null",
    "received_at_utc ge 2026-13-45T00:00:00Z",
    "phase eq 'voting' or phase eq 'closing'",
    "nothing eq 1",
    "phase eq",
]


def test_an_odata_filter_the_feed_cannot_read_is_a_400_naming_it(
    client: Any, world: dict[str, Any]
) -> None:
    m = world["mission"]
    for bad in BAD_FILTERS:
        r = client.get(
            f"/missions/{m.id}/odata/Checklists", params={"$filter": bad},
            headers=auth(world["analyst"]),
        )  # fmt: skip
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["errors"][0]["path"] == ["query", "$filter"]


def _unstamped(content: bytes) -> bytes:
    """An export without the time it was made (two requests may be a second apart)."""
    unstamped, found = re.subn(
        rb"made \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", b"made -", content, count=1
    )
    assert found == 1, content[:300]
    return unstamped


def test_text_exports_are_gzipped_fast_for_clients_that_take_gzip_and_xlsx_never(
    client: Any, world: dict[str, Any]
) -> None:
    """Browsers and Excel ask for gzip: a CSV or GeoJSON comes gzipped by the export itself
    (at a fast level, `STREAM_GZIP_LEVEL`); the same bytes once inflated; not when gzip is
    refused; an XLSX (a zip already) never."""
    base = f"/missions/{world['mission'].id}/exports"
    for kind, fmt in (("checklists", "csv"), ("stations", "geojson"), ("findings", "csv")):
        plain = client.get(
            f"{base}/{kind}",
            params={"format": fmt},
            headers=auth(world["analyst"]) | {"Accept-Encoding": "identity"},
        )
        assert plain.status_code == 200 and "content-encoding" not in plain.headers
        zipped = client.get(
            f"{base}/{kind}",
            params={"format": fmt},
            headers=auth(world["analyst"]) | {"Accept-Encoding": "gzip, deflate"},
        )
        assert zipped.headers["content-encoding"] == "gzip"
        assert zipped.headers["vary"] == "Accept-Encoding"
        # httpx inflates it; the title line's "made <time>" may be a second apart
        assert _unstamped(zipped.content) == _unstamped(plain.content)
        refused = client.get(
            f"{base}/{kind}",
            params={"format": fmt},
            headers=auth(world["analyst"]) | {"Accept-Encoding": "gzip;q=0"},
        )
        assert "content-encoding" not in refused.headers
    xlsx = client.get(
        f"{base}/checklists",
        params={"format": "xlsx"},
        headers=auth(world["analyst"]) | {"Accept-Encoding": "gzip"},
    )
    assert xlsx.status_code == 200 and "content-encoding" not in xlsx.headers
    assert xlsx.content[:2] == b"PK"
    trail = client.get(
        f"/missions/{world['mission'].id}/audit/export",
        headers=auth(world["admin"]) | {"Accept-Encoding": "gzip"},
    )
    assert trail.status_code == 200 and trail.headers["content-encoding"] == "gzip"
    assert "export.checklists" in trail.text
