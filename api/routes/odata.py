"""The OData v4 feed: what Excel's and Power BI's "From OData feed" connect to.

Those clients send credentials as HTTP Basic, so a token is also accepted as the password
of Basic authentication (any user name); scripts may send it as a Bearer token as usual.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from api.config import Settings
from api.db import session_scope
from api.deps import READERS, Principal, SettingsDep, authenticate, check_mission
from api.errors import COMMON_ERRORS, NotFound, Unauthorized, error_responses
from api.routes.findings import FiltersDep
from api.services import audit
from api.services.exports import odata, stations
from api.services.exports.common import mission_info, snapshot
from api.services.findings.scope import Filters, resolve
from models import Role

router = APIRouter(prefix="/missions/{mission_id}/odata", tags=["odata"])
MissionId = Annotated[uuid.UUID, Path(description="Mission id")]
STAFF = (Role.admin, Role.analyst)
HEADERS = {"OData-Version": "4.0", "Cache-Control": "no-store"}
JSON = "application/json;odata.metadata=minimal;odata.streaming=true"
ERRORS = COMMON_ERRORS | error_responses(NotFound, odata.ODataError)
COUNT: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "A number"}
}
CHALLENGE = {"WWW-Authenticate": 'Basic realm="Pollcheck OData", charset="UTF-8", Bearer'}


def _token(request: Request) -> str:
    """The token: a Bearer token, or the password of Basic authentication."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    token = ""
    if scheme.lower() == "bearer":
        token = value.strip()
    elif scheme.lower() == "basic":
        try:
            token = base64.b64decode(value.strip(), validate=True).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            token = ""
    if not token:
        raise Unauthorized(
            "send a Pollcheck token as the password of Basic authentication (any user "
            "name) or as `Authorization: Bearer …`",
            code="missing_token",
            headers=CHALLENGE,
        )
    return token


def _principal(
    request: Request, settings: Settings, mission_id: uuid.UUID, roles: tuple[Role, ...]
) -> Principal:
    with session_scope() as write:
        principal = authenticate(write, _token(request), settings)
    request.state.principal = principal
    return check_mission(principal, mission_id, *roles)


def _sets_for(principal: Principal) -> list[str]:
    """Viewers see stations; checklists carry observers' identities (staff only)."""
    return ["Checklists", "Stations"] if principal.role in STAFF else ["Stations"]


def _base(request: Request, mission_id: uuid.UUID) -> str:
    return str(request.base_url).rstrip("/") + f"/missions/{mission_id}/odata"


def _json(body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), media_type=JSON, headers=HEADERS)


@router.get("", responses=ERRORS, response_model=None)
async def service_document(
    request: Request, mission_id: MissionId, settings: SettingsDep
) -> Response:
    """The OData service document: the entity sets this token may read."""
    principal = await run_in_threadpool(_principal, request, settings, mission_id, READERS)
    base = _base(request, mission_id)
    return _json(
        {
            "@odata.context": f"{base}/$metadata",
            "value": [{"name": s, "kind": "EntitySet", "url": s} for s in _sets_for(principal)],
        }
    )


def _metadata(request: Request, settings: Settings, mission_id: uuid.UUID) -> bytes:
    principal = _principal(request, settings, mission_id, READERS)
    with snapshot() as session:
        mission_info(session, mission_id)  # 404 for a mission that is not there
        types: dict[str, Any] = {"Stations": stations.STATION_COLUMNS}
        if "Checklists" in _sets_for(principal):
            types["Checklists"] = odata.checklist_columns(session, mission_id)
        return odata.metadata_xml(types)


@router.get(
    "/$metadata",
    responses=ERRORS | {200: {"content": {"application/xml": {}}, "description": "CSDL"}},
    response_model=None,
)
async def metadata(request: Request, mission_id: MissionId, settings: SettingsDep) -> Response:
    """The feed's CSDL: each entity set's properties and their types."""
    body = await run_in_threadpool(_metadata, request, settings, mission_id)
    return Response(body, media_type="application/xml", headers=HEADERS)


def _query(
    select_: str | None, top: int | None, skip: int | None, count: str | None,
    filter_: str | None, skiptoken: str | None, fmt: str | None,
) -> odata.Query:  # fmt: skip
    if fmt is not None and fmt.split(";")[0].strip().lower() != "json":
        raise odata.bad_query("$format", "only json")
    if count is not None and count.lower() not in ("true", "false"):
        raise odata.bad_query("$count", "true or false")
    chosen = [s.strip() for s in select_.split(",") if s.strip()] if select_ else None
    if chosen == ["*"]:
        chosen = None
    return odata.Query(
        select=chosen,
        top=top,
        skip=skip or 0,
        count=(count or "").lower() == "true",
        filter=filter_,
        skiptoken=skiptoken,
    )


def _entity_set(
    request: Request,
    settings: Settings,
    mission_id: uuid.UUID,
    entity_set: str,
    filters: Filters,
    query: odata.Query,
) -> dict[str, Any]:
    principal = _principal(
        request, settings, mission_id, STAFF if entity_set == "Checklists" else READERS
    )
    size = settings.odata_page_size
    prefer = request.headers.get("prefer", "")
    for part in prefer.split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "odata.maxpagesize" and value.strip().isdigit():
            size = max(1, min(size, int(value)))
    with snapshot() as session:
        mission = mission_info(session, mission_id)
        scope = resolve(session, mission_id, filters)
        pager = odata.checklist_page if entity_set == "Checklists" else odata.station_page
        page = pager(session, mission, scope, query, size)
    if query.skiptoken is None:  # a feed read is recorded once, at its first page
        actor = audit.Actor(principal.mission_id, principal.credential_id, principal.role.value)
        with session_scope() as write:
            audit.write(write, actor, [{
                "action": f"export.odata.{entity_set.lower()}",
                "target": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
                "after": {"filters": filters.key(), "$filter": query.filter,
                          "$select": query.select},
            }])  # fmt: skip
    base = _base(request, mission_id)
    body: dict[str, Any] = {"@odata.context": f"{base}/$metadata#{entity_set}"}
    if page.count is not None:
        body["@odata.count"] = page.count
    body["value"] = page.rows
    if page.next_token is not None and (page.remaining_top is None or page.remaining_top > 0):
        params = [
            (k, v)
            for k, v in request.query_params.multi_items()
            if k not in ("$skip", "$skiptoken", "$top", "$count")
        ]
        if page.remaining_top is not None:
            params.append(("$top", str(page.remaining_top)))
        params.append(("$skiptoken", page.next_token))
        body["@odata.nextLink"] = f"{base}/{entity_set}?{urlencode(params)}"
    return body


def _set_route(entity_set: str, doc: str) -> Any:
    async def read_set(
        request: Request,
        mission_id: MissionId,
        settings: SettingsDep,
        filters: FiltersDep,
        select_: Annotated[str | None, Query(alias="$select", max_length=10_000)] = None,
        top: Annotated[int | None, Query(alias="$top", ge=0, le=10**9)] = None,
        skip: Annotated[int | None, Query(alias="$skip", ge=0, le=10**9)] = None,
        count: Annotated[str | None, Query(alias="$count", max_length=5)] = None,
        filter_: Annotated[str | None, Query(alias="$filter", max_length=2000)] = None,
        skiptoken: Annotated[str | None, Query(alias="$skiptoken", max_length=500)] = None,
        fmt: Annotated[str | None, Query(alias="$format", max_length=100)] = None,
    ) -> Response:
        query = _query(select_, top, skip, count, filter_, skiptoken, fmt)
        body = await run_in_threadpool(
            _entity_set, request, settings, mission_id, entity_set, filters, query
        )
        return _json(body)

    read_set.__name__ = f"odata_{entity_set.lower()}"
    read_set.__doc__ = doc
    return read_set


def _count_route(entity_set: str) -> Any:
    async def count_set(
        request: Request,
        mission_id: MissionId,
        settings: SettingsDep,
        filters: FiltersDep,
        filter_: Annotated[str | None, Query(alias="$filter", max_length=2000)] = None,
    ) -> Response:
        def run() -> int:
            roles = STAFF if entity_set == "Checklists" else READERS
            _principal(request, settings, mission_id, roles)
            with snapshot() as session:
                scope = resolve(session, mission_id, filters)
                return odata.count_only(session, entity_set, scope, filter_)

        n = await run_in_threadpool(run)
        return Response(str(n), media_type="text/plain", headers=HEADERS)

    count_set.__name__ = f"odata_{entity_set.lower()}_count"
    count_set.__doc__ = f"How many {entity_set.lower()} the feed holds under these filters."
    return count_set


for _set, _doc in (
    ("Checklists", "Checklists (latest versions), a page at a time (analysts and admins)."),
    ("Stations", "Stations with coverage, a page at a time."),
):
    router.add_api_route(f"/{_set}", _set_route(_set, _doc), methods=["GET"],
                         responses=ERRORS, response_model=None)  # fmt: skip
    router.add_api_route(f"/{_set}/$count", _count_route(_set), methods=["GET"],
                         responses=ERRORS | COUNT, response_model=None)  # fmt: skip
