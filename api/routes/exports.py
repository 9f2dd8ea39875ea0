"""Exports as plain GET links: the findings' query parameters, a format, streamed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials

from api.compression import negotiated
from api.config import Settings
from api.db import session_scope
from api.deps import READERS, BearerDep, SettingsDep, check_mission, get_principal
from api.errors import COMMON_ERRORS, NotFound, error_responses
from api.routes.findings import FiltersDep, Language
from api.services import audit
from api.services.exports import service
from api.services.exports.common import (
    MEDIA_TYPES,
    STAFF_KINDS,
    Format,
    Kind,
    Options,
    Values,
    Versions,
    snapshot,
)
from api.services.findings.scope import Filters
from models import Role

router = APIRouter(prefix="/missions/{mission_id}/exports", tags=["exports"])
STAFF = (Role.admin, Role.analyst)


def _start(
    request: Request,
    mission_id: uuid.UUID,
    auth: HTTPAuthorizationCredentials | None,
    settings: Settings,
    kind: Kind,
    fmt: Format,
    filters: Filters,
    options: Options,
    sheet: str | None,
) -> StreamingResponse:
    """Authorise, resolve the filters and record the export before the first byte, so that
    a bad filter is a clean 4xx; then stream from a snapshot the response owns."""
    with session_scope() as write:
        principal = get_principal(request, write, settings, auth)
        check_mission(principal, mission_id, *(STAFF if kind in STAFF_KINDS else READERS))
    service.check_format(kind, fmt)
    stack = ExitStack()
    try:
        session = stack.enter_context(snapshot())
        export = service.build(session, settings, kind, mission_id, filters, options)
        body = service.chunks(export, fmt, sheet)
        actor = audit.Actor(principal.mission_id, principal.credential_id, principal.role.value)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        with session_scope() as write:
            service.record(write, actor, export, fmt, target, filters, options)
    except BaseException:
        stack.close()
        raise

    def stream() -> Iterator[bytes]:
        with stack:  # closed when the last chunk is out or the client has gone
            yield from body

    name = f"{export.stem}.{fmt.value}"
    headers = {
        "Content-Disposition": f"attachment; filename=\"{name}\"; filename*=UTF-8''{quote(name)}",
        "Cache-Control": "no-store",
        "X-Data-Version": str(export.data_version),
    }
    # An XLSX is a zip already: it goes as it is.
    out = stream() if fmt == Format.xlsx else negotiated(request, stream(), headers)
    return StreamingResponse(out, media_type=MEDIA_TYPES[fmt], headers=headers)


@router.get(
    "/{kind}",
    response_class=StreamingResponse,
    responses=COMMON_ERRORS
    | error_responses(NotFound)
    | {
        200: {
            "description": "The export as a file, streamed",
            "content": {media: {} for media in MEDIA_TYPES.values()},
        }
    },
)
async def export_data(
    request: Request,
    mission_id: Annotated[uuid.UUID, Path(description="Mission id")],
    kind: Annotated[Kind, Path(description="What to export")],
    auth: BearerDep,
    settings: SettingsDep,
    filters: FiltersDep,
    format: Annotated[  # noqa: A002 - the query parameter's public name
        Format, Query(description="csv, xlsx, or geojson (stations)")
    ] = Format.csv,
    versions: Annotated[
        Versions,
        Query(description="Checklists: latest (default), all versions, or counting only"),
    ] = Versions.latest,
    values: Annotated[
        Values, Query(description="Checklists: answers as codes or as labels in `lang`")
    ] = Values.codes,
    lang: Language = None,
    sheet: Annotated[
        str | None, Query(max_length=31, description="CSV: a sheet other than the first")
    ] = None,
) -> StreamingResponse:
    """An export (checklists wide, findings long, counting, incidents, critical answers,
    stations) as CSV, XLSX or GeoJSON, with the findings' filters. Checklists: analysts and
    admins; the rest: viewers too. Every export is recorded in the audit trail."""
    options = Options(versions=versions, values=values, language=lang)
    return await run_in_threadpool(
        _start, request, mission_id, auth, settings, kind, format, filters, options, sheet
    )
