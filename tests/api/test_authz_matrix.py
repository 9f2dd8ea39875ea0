"""Who may do what: every route × every role, no token, a revoked token and another
mission's token, each with the status it must get.

To add a route, add one entry to MATRIX keyed by (method, path) as FastAPI spells the path:
a request builder and the expected status per caller (helpers below). The test fails for any
route of the app without an entry, and for any entry whose route is gone.

"other" is a token of another mission with the role the route is meant for (the first role
the route does not refuse outright), so the row proves the mission boundary, not the gate.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import routing
from fastapi.openapi.utils import _get_api_route_for_openapi
from fastapi.testclient import TestClient

from api.config import get_settings
from api.db import session_scope
from api.main import create_app
from api.services import credentials, templates
from models import Role
from tests.conftest import _empty_tables
from tests.factories import (
    answers_for,
    auth,
    checklist_payload,
    make_mission,
    make_observer,
    make_station,
    make_token,
)

CALLERS = ("admin", "analyst", "observer", "viewer", "none", "revoked", "other")
ROLES = ("admin", "analyst", "observer", "viewer")


@dataclass
class World:
    mission_id: uuid.UUID
    observer_id: uuid.UUID
    tokens: dict[str, str]  # caller -> token of mission A
    others: dict[str, str]  # role -> token of mission B
    checklist_id: str = ""
    counter: int = 0

    def next(self) -> int:
        self.counter += 1
        return self.counter


@dataclass
class Req:
    path: str
    json: Any = None
    content: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Row:
    request: Callable[[World, str], Req]
    expect: dict[str, int]


def _gate(ok: dict[str, int], other: int = 403) -> dict[str, int]:
    out = dict.fromkeys(ROLES, 403) | ok
    return out | {"none": 401, "revoked": 401, "other": other}


def admin_only(status: int, other: int = 403) -> dict[str, int]:
    return _gate({"admin": status}, other)


def staff(status: int, other: int = 403) -> dict[str, int]:
    return _gate({"admin": status, "analyst": status}, other)


def readers(status: int, other: int = 403) -> dict[str, int]:
    return _gate({"admin": status, "analyst": status, "viewer": status}, other)


def members(status: int, other: int = 403) -> dict[str, int]:
    return _gate(dict.fromkeys(ROLES, status), other)


def observer_only(status: int, other: int = 403) -> dict[str, int]:
    return _gate({"observer": status}, other)


def anyone(status: int) -> dict[str, int]:
    return dict.fromkeys(CALLERS, status)


def m(path: str) -> Callable[[World, str], Req]:
    """A request to a mission path with no body; `{m}` is the mission, `{o}` the observer."""
    return lambda w, _: Req(
        path.format(m=w.mission_id, o=w.observer_id, c=w.checklist_id, n=w.next())
    )


def with_json(path: str, body: Callable[[World], Any]) -> Callable[[World, str], Req]:
    return lambda w, who: Req(
        path.format(m=w.mission_id, o=w.observer_id, c=w.checklist_id), json=body(w)
    )


def csv_body(path: str, text: str) -> Callable[[World, str], Req]:
    return lambda w, _: Req(
        path.format(m=w.mission_id), content=text, headers={"Content-Type": "text/csv"}
    )


def _revoke(w: World, _: str) -> Req:
    with session_scope() as s:
        cid = credentials.issue(s, w.mission_id, Role.viewer, "to revoke").id
    return Req(f"/missions/{w.mission_id}/credentials/{cid}/revoke")


def _template(w: World, _: str) -> Req:
    definition = templates.default_definition().model_dump(mode="json", by_alias=True)
    definition |= {"code": "matrix", "version": w.next()}
    return Req(f"/missions/{w.mission_id}/templates", json=definition)


def _publish(w: World, _: str) -> Req:
    version = w.next()
    with session_scope() as s:
        definition = templates.default_definition().model_copy(
            update={"code": "draft", "version": version}
        )
        templates.create(s, w.mission_id, definition)
    return Req(f"/missions/{w.mission_id}/templates/draft/{version}/publish")


def _checklist(w: World, who: str) -> Req:
    if who == "analyst":  # analysts post corrections only
        body = checklist_payload("S-1", "voting", answers_for("voting"), replaces=w.checklist_id)
        return Req("/checklists", json=body)
    return Req("/checklists", json=checklist_payload("S-1", "voting"))


def key(path: str) -> Callable[[World, str], Req]:
    """An OpenRosa request: the caller's token is in the path, not in a header."""

    def build(w: World, who: str) -> Req:
        token = {"none": "pc_none", "other": w.others["observer"]}.get(who) or w.tokens[who]
        return Req(path.format(t=token), headers={"X-Token-In-Path": "1"})

    return build


MATRIX: dict[tuple[str, str], Row] = {
    ("GET", "/healthz"): Row(m("/healthz"), anyone(200)),
    ("GET", "/docs"): Row(m("/docs"), anyone(200)),
    ("GET", "/redoc"): Row(m("/redoc"), anyone(200)),
    ("GET", "/readyz"): Row(m("/readyz"), anyone(200)),
    ("GET", "/me"): Row(m("/me"), members(200, other=200)),
    ("GET", "/me/assignments"): Row(m("/me/assignments"), observer_only(200, other=200)),
    ("GET", "/me/checklists"): Row(m("/me/checklists"), observer_only(200, other=200)),
    # --- missions and credentials
    ("POST", "/missions"): Row(
        with_json(
            "/missions",
            lambda w: {
                "name": "New",
                "country": "Kazakhstan",
                "election_date": "2026-03-15",
                "timezone": "Asia/Almaty",
            },
        ),
        admin_only(201, other=201),  # any mission's admin may set up a new mission
    ),
    ("GET", "/missions/{mission_id}"): Row(m("/missions/{m}"), members(200)),
    ("PATCH", "/missions/{mission_id}"): Row(
        with_json("/missions/{m}", lambda w: {"name": "Renamed"}), admin_only(200)
    ),
    ("POST", "/missions/{mission_id}/credentials"): Row(
        with_json("/missions/{m}/credentials", lambda w: {"role": "viewer", "label": "wall"}),
        admin_only(201),
    ),
    ("POST", "/missions/{mission_id}/credentials/observers"): Row(
        with_json("/missions/{m}/credentials/observers", lambda w: {"observers": ["O-A"]}),
        admin_only(201),
    ),
    ("GET", "/missions/{mission_id}/credentials"): Row(
        m("/missions/{m}/credentials"), admin_only(200)
    ),
    ("POST", "/missions/{mission_id}/credentials/{credential_id}/revoke"): Row(
        _revoke, admin_only(200)
    ),
    # --- stations, observers, teams
    ("POST", "/missions/{mission_id}/stations/import"): Row(
        csv_body("/missions/{m}/stations/import", "code,name,region\nS-9,Nine,Astana\n"),
        admin_only(200),
    ),
    ("PUT", "/missions/{mission_id}/stations"): Row(
        with_json(
            "/missions/{m}/stations", lambda w: {"code": "S-8", "name": "Eight", "region": "Astana"}
        ),
        admin_only(200),
    ),
    ("GET", "/missions/{mission_id}/stations"): Row(m("/missions/{m}/stations"), staff(200)),
    ("GET", "/missions/{mission_id}/stations/{code}"): Row(
        m("/missions/{m}/stations/S-1"), staff(200)
    ),
    ("GET", "/missions/{mission_id}/locations"): Row(m("/missions/{m}/locations"), staff(200)),
    ("POST", "/missions/{mission_id}/observers"): Row(
        with_json("/missions/{m}/observers", lambda w: {"code": f"O-{w.next()}", "name": "X"}),
        admin_only(201),
    ),
    ("POST", "/missions/{mission_id}/observers/import"): Row(
        csv_body("/missions/{m}/observers/import", "code,name\nO-Y,Y\n"), admin_only(200)
    ),
    ("POST", "/missions/{mission_id}/signin-cards"): Row(
        with_json("/missions/{m}/signin-cards", lambda w: {"observers": []}), admin_only(200)
    ),
    ("GET", "/missions/{mission_id}/observers"): Row(m("/missions/{m}/observers"), staff(200)),
    ("GET", "/missions/{mission_id}/observers/{observer_id}"): Row(
        m("/missions/{m}/observers/{o}"), staff(200)
    ),
    ("PATCH", "/missions/{mission_id}/observers/{observer_id}"): Row(
        with_json("/missions/{m}/observers/{o}", lambda w: {"name": "Renamed"}), admin_only(200)
    ),
    ("PUT", "/missions/{mission_id}/observers/{observer_id}/assignments"): Row(
        with_json("/missions/{m}/observers/{o}/assignments", lambda w: {"stations": ["S-1"]}),
        admin_only(200),
    ),
    ("POST", "/missions/{mission_id}/teams"): Row(
        with_json("/missions/{m}/teams", lambda w: {"name": "Team 2"}), admin_only(201)
    ),
    ("GET", "/missions/{mission_id}/teams"): Row(m("/missions/{m}/teams"), staff(200)),
    # --- templates
    ("POST", "/missions/{mission_id}/templates"): Row(_template, admin_only(201)),
    ("GET", "/missions/{mission_id}/templates"): Row(m("/missions/{m}/templates"), members(200)),
    ("GET", "/missions/{mission_id}/templates/{code}/{version}"): Row(
        m("/missions/{m}/templates/default/1"), members(200)
    ),
    ("POST", "/missions/{mission_id}/templates/{code}/{version}/publish"): Row(
        _publish, admin_only(200)
    ),
    # --- checklists; "other" gets 404 (or 422 at intake): another mission's ids do not exist
    ("POST", "/checklists"): Row(_checklist, _gate({"observer": 201, "analyst": 201}, other=422)),
    ("GET", "/checklists/{checklist_id}"): Row(
        m("/checklists/{c}"),
        _gate({"admin": 200, "analyst": 200, "observer": 200, "viewer": 404}, 404),
    ),
    ("GET", "/checklists/{checklist_id}/versions"): Row(
        m("/checklists/{c}/versions"),
        _gate({"admin": 200, "analyst": 200, "observer": 200, "viewer": 404}, 404),
    ),
    ("GET", "/missions/{mission_id}/checklists"): Row(m("/missions/{m}/checklists"), staff(200)),
    # --- review and audit
    ("POST", "/checklists/{checklist_id}/review"): Row(
        with_json("/checklists/{c}/review", lambda w: {"state": "verified", "comment": "ok"}),
        _gate({"analyst": 201}, other=404),
    ),
    ("GET", "/checklists/{checklist_id}/reviews"): Row(
        m("/checklists/{c}/reviews"), staff(200, other=404)
    ),
    ("GET", "/missions/{mission_id}/review-queue"): Row(
        m("/missions/{m}/review-queue"), staff(200)
    ),
    ("GET", "/missions/{mission_id}/audit"): Row(m("/missions/{m}/audit"), admin_only(200)),
    ("GET", "/missions/{mission_id}/audit/export"): Row(
        m("/missions/{m}/audit/export"), admin_only(200)
    ),
    # --- findings (issue 3): dashboards (viewers) and staff, never observers
    ("GET", "/missions/{mission_id}/findings"): Row(m("/missions/{m}/findings"), readers(200)),
    # --- the live event stream (issue 15): whoever may read the findings
    ("GET", "/missions/{mission_id}/events"): Row(m("/missions/{m}/events"), readers(200)),
    ("GET", "/missions/{mission_id}/findings/coverage"): Row(
        m("/missions/{m}/findings/coverage"), readers(200)
    ),
    ("GET", "/missions/{mission_id}/findings/incidents"): Row(
        m("/missions/{m}/findings/incidents"), readers(200)
    ),
    ("GET", "/missions/{mission_id}/findings/map"): Row(
        m("/missions/{m}/findings/map"), readers(200)
    ),
    ("GET", "/missions/{mission_id}/findings/critical"): Row(
        m("/missions/{m}/findings/critical"), readers(200)
    ),
    ("GET", "/missions/{mission_id}/findings/counting"): Row(
        m("/missions/{m}/findings/counting"), readers(200)
    ),
    ("GET", "/missions/{mission_id}/findings/version"): Row(
        m("/missions/{m}/findings/version"), readers(200)
    ),
    ("GET", "/missions/{mission_id}/statement"): Row(m("/missions/{m}/statement"), readers(200)),
    # --- phone sync (issue 4): the observer's own day, batch and reconcile
    ("GET", "/sync/day"): Row(m("/sync/day"), observer_only(200, other=200)),
    ("POST", "/sync/checklists"): Row(
        with_json("/sync/checklists", lambda w: {"items": [checklist_payload("S-1")]}),
        observer_only(200, other=200),  # each item has its own result; B's fail inside
    ),
    ("GET", "/sync/checklists"): Row(m("/sync/checklists"), observer_only(200, other=200)),
    # --- attachments (issue 4): nothing declared here, so readers get 404, never the file
    ("GET", "/checklists/{checklist_id}/attachments"): Row(
        m("/checklists/{c}/attachments"),
        _gate({"admin": 200, "analyst": 200, "observer": 200, "viewer": 404}, 404),
    ),
    ("PUT", "/checklists/{checklist_id}/attachments/{name}"): Row(
        lambda w, _: Req(
            f"/checklists/{w.checklist_id}/attachments/photo.jpg",
            content="x",
            headers={"Content-Type": "image/jpeg"},
        ),
        _gate({"observer": 404, "analyst": 404}, 404),
    ),
    ("GET", "/checklists/{checklist_id}/attachments/{name}"): Row(
        m("/checklists/{c}/attachments/photo.jpg"),
        _gate({"admin": 404, "analyst": 404, "observer": 404, "viewer": 404}, 404),
    ),
    # --- exports and the OData feed (issue 17): checklist-level for staff, the rest readers
    ("GET", "/missions/{mission_id}/exports/{kind}"): Row(
        m("/missions/{m}/exports/checklists"), staff(200)
    ),
    ("GET", "/missions/{mission_id}/odata"): Row(m("/missions/{m}/odata"), readers(200)),
    ("GET", "/missions/{mission_id}/odata/$metadata"): Row(
        m("/missions/{m}/odata/$metadata"), readers(200)
    ),
    ("GET", "/missions/{mission_id}/odata/Checklists"): Row(
        m("/missions/{m}/odata/Checklists"), staff(200)
    ),
    ("GET", "/missions/{mission_id}/odata/Checklists/$count"): Row(
        m("/missions/{m}/odata/Checklists/$count"), staff(200)
    ),
    ("GET", "/missions/{mission_id}/odata/Stations"): Row(
        m("/missions/{m}/odata/Stations"), readers(200)
    ),
    ("GET", "/missions/{mission_id}/odata/Stations/$count"): Row(
        m("/missions/{m}/odata/Stations/$count"), readers(200)
    ),
    # --- ODK Collect and Enketo (issue 19): observers only, by the key in the path; another
    # mission's observer sees that mission's forms (none named default-v1 is theirs: 404)
    ("GET", "/key/{token}/formList"): Row(key("/key/{t}/formList"), observer_only(200, 200)),
    ("GET", "/key/{token}/forms/{form_id}"): Row(
        key("/key/{t}/forms/default-v1"), observer_only(200, 200)
    ),
    ("HEAD", "/key/{token}/submission"): Row(key("/key/{t}/submission"), observer_only(204, 204)),
    ("POST", "/key/{token}/submission"): Row(
        lambda w, who: Req(
            key("/key/{t}/submission")(w, who).path,
            content='--b\r\nContent-Disposition: form-data; name="x"\r\n\r\n1\r\n--b--\r\n',
            headers={"Content-Type": "multipart/form-data; boundary=b", "X-Token-In-Path": "1"},
        ),
        observer_only(422, 422),  # no xml_submission_file: the caller got past the gate
    ),
    # --- SMS (issue 21): the webhook answers to the gateway's secret, never to a token
    ("POST", "/sms/{gateway}/{mission_id}"): Row(
        with_json("/sms/generic/{m}", lambda w: {"id": "1", "from": "+77011234567", "text": "x"}),
        anyone(404),  # no gateway set up: a bearer token of any kind changes nothing
    ),
    ("GET", "/missions/{mission_id}/sms/card"): Row(m("/missions/{m}/sms/card"), staff(200)),
    ("GET", "/missions/{mission_id}/sms/messages"): Row(
        m("/missions/{m}/sms/messages"), staff(200)
    ),
    ("GET", "/missions/{mission_id}/sms/gateways"): Row(
        m("/missions/{m}/sms/gateways"), admin_only(200)
    ),
    ("PUT", "/missions/{mission_id}/sms/gateways/{gateway}"): Row(
        with_json("/missions/{m}/sms/gateways/generic", lambda w: {"secret": "x" * 20}),
        admin_only(200),
    ),
    ("GET", "/missions/{mission_id}/sms/numbers"): Row(m("/missions/{m}/sms/numbers"), staff(200)),
    ("PUT", "/missions/{mission_id}/sms/numbers/{phone}"): Row(
        with_json("/missions/{m}/sms/numbers/+77011234567", lambda w: {"revoked": True}),
        admin_only(200),
    ),
    # --- the observers' web app: public files (the token stays on the phone)
    ("GET", "/app"): Row(m("/app"), anyone(200)),
    # --- the core team's console: public files (data needs a token)
    ("GET", "/console"): Row(m("/console"), anyone(200)),
}


def app_routes() -> set[tuple[str, str]]:
    app: Any = create_app()
    while not hasattr(app, "routes"):
        app = app.app
    found = set()
    for ctx in routing.iter_route_contexts(app.routes):
        route = _get_api_route_for_openapi(ctx)
        if route is not None:
            found |= {(method, route.path_format) for method in route.methods}
    return found


@pytest.fixture(scope="module")
def world(database_url: str) -> Iterator[tuple[TestClient, World]]:
    # Every route is asked with no token and with a revoked one, from one address: more
    # bad tokens than an address's burst (120), which the matrix is not about.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POLLCHECK_LIMIT_FAILED_AUTH_BURST", "10000")
        get_settings.cache_clear()
        try:
            yield from _world()
        finally:
            mp.undo()
            get_settings.cache_clear()


def _world() -> Iterator[tuple[TestClient, World]]:
    with session_scope() as s:
        mission, admin = make_mission(s)
        make_station(s, mission.id, "S-1")
        observer, obs_token = make_observer(s, mission.id, ["S-1"], code="O-A")
        tokens = {
            "admin": admin,
            "analyst": make_token(s, mission.id, Role.analyst),
            "observer": obs_token,
            "viewer": make_token(s, mission.id, Role.viewer),
        }
        revoked = credentials.issue(s, mission.id, Role.admin, "revoked")
        credentials.revoke(s, mission.id, revoked.id)
        tokens["revoked"] = revoked.token
        other, other_admin = make_mission(s, name="Another mission")
        make_station(s, other.id, "T-1")
        _, other_observer = make_observer(s, other.id, ["T-1"])
        others = {
            "admin": other_admin,
            "analyst": make_token(s, other.id, Role.analyst),
            "observer": other_observer,
            "viewer": make_token(s, other.id, Role.viewer),
        }
    w = World(mission.id, observer.id, tokens, others)
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        r = client.post("/checklists", json=checklist_payload("S-1"), headers=auth(obs_token))
        assert r.status_code == 201, r.text
        w.checklist_id = r.json()["id"]
        yield client, w
    _empty_tables()


def test_every_route_has_a_row() -> None:
    routes = app_routes()
    missing = sorted(routes - MATRIX.keys())
    stale = sorted(MATRIX.keys() - routes)
    assert not missing, f"routes without a row in the authorisation matrix: {missing}"
    assert not stale, f"rows for routes that no longer exist: {stale}"


def _token(w: World, row: Row, who: str) -> str | None:
    if who == "none" or "X-Token-In-Path" in row.request(w, who).headers:
        return None
    if who == "other":
        role = next((r for r in ROLES if row.expect[r] not in (401, 403)), "admin")
        return w.others[role]
    return w.tokens[who]


@pytest.mark.parametrize("route", sorted(MATRIX), ids=" ".join)
def test_route_answers_each_caller_as_the_matrix_says(
    world: tuple[TestClient, World], route: tuple[str, str]
) -> None:
    client, w = world
    row = MATRIX[route]
    method = route[0]
    got = {}
    for who in CALLERS:
        req = row.request(w, who)
        token = _token(w, row, who)
        headers = req.headers | (auth(token) if token else {})
        r = client.request(method, req.path, json=req.json, content=req.content, headers=headers)
        got[who] = r.status_code
        if r.status_code < 400 and method == "POST" and req.path == "/checklists":
            w.checklist_id = r.json()["id"]
        assert r.status_code != 500, r.text
    assert got == row.expect
