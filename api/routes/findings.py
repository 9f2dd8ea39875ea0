"""Findings for dashboards and the draft statement: read-only, cached, with ETags."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials

from api.compression import takes_gzip
from api.config import Settings, get_settings
from api.db import session_scope
from api.deps import (
    READERS,
    BearerDep,
    SettingsDep,
    check_mission,
    dashboard_limiter,
    get_principal,
)
from api.errors import COMMON_ERRORS, Invalid, NotFound, error_responses
from api.services.findings import freshness, views, word
from api.services.findings.fold import BackgroundFolder, folds_in_background
from api.services.findings.scope import Filters
from models.checklist import PLAUSIBLE_FROM, PLAUSIBLE_TO, Phase
from models.finding import DataVersionPublic
from models.views import (
    CountingPublic,
    CoveragePublic,
    CriticalPublic,
    FindingsEnvelope,
    FindingsPublic,
    IncidentsPublic,
    MapPublic,
    StatementPublic,
)


@asynccontextmanager
async def _folding(_: FastAPI) -> AsyncIterator[None]:
    """Each API process folds new changes in the background (the fold lock makes one work)."""
    settings = get_settings()
    folder = None
    if folds_in_background(settings):
        folder = BackgroundFolder(
            settings.findings_fold_interval_s, settings.findings_vacuum_interval_s
        )
        folder.start()
    try:
        yield
    finally:
        if folder is not None:
            folder.stop()


router = APIRouter(prefix="/missions/{mission_id}", tags=["findings"], lifespan=_folding)
ERRORS = COMMON_ERRORS | error_responses(NotFound)
# What every view's answer (a 304 too) says of how far behind its figures are.
LAG_HEADERS = {
    "X-Findings-Lag": {
        "description": "Seconds since the first of the mission's changes the fold has not "
        "looked at yet was stored (0.000: none); for a view computed before the newest data "
        "version, at least the time since it was computed",
        "schema": {"type": "string", "example": "1.204"},
    },
    "X-Replica-Lag": {
        "description": "Where the view was read from a streaming replica: how far that is "
        "behind the primary, in seconds",
        "schema": {"type": "string", "example": "0.000"},
    },
}
NOT_MODIFIED = {
    304: {"description": "Unchanged since the ETag given in If-None-Match", "headers": LAG_HEADERS}
}


def _utc(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    # Year 1 at +14:00 is before the first UTC instant Python has: stored as UTC, it was 500.
    if not PLAUSIBLE_FROM <= aware <= PLAUSIBLE_TO:
        raise Invalid(
            f"{name} must lie from {PLAUSIBLE_FROM.year} to {PLAUSIBLE_TO.year}",
            code="invalid_request",
            errors=[{"path": ["query", name], "code": "out_of_range", "message": "implausible"}],
        )
    return aware


async def findings_filters(  # async: pure work, no worker-thread trip for it
    location: Annotated[
        str | None,
        Query(
            max_length=500, description="A place of the location tree: 'Region', 'Region/District'"
        ),
    ] = None,
    abroad: Annotated[
        bool | None, Query(description="Only stations abroad (true) or in-country (false)")
    ] = None,
    phase: Annotated[Phase | None, Query(description="Only one phase")] = None,
    team: Annotated[
        str | None, Query(max_length=100, description="Only one team's checklists")
    ] = None,
    observed_from: Annotated[
        datetime | None, Query(description="Observed at or after (UTC when no offset is given)")
    ] = None,
    observed_to: Annotated[
        datetime | None, Query(description="Observed before (UTC when no offset is given)")
    ] = None,
    template: Annotated[str | None, Query(max_length=32, description="Template code")] = None,
    template_version: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
) -> Filters:
    start, end = _utc(observed_from, "observed_from"), _utc(observed_to, "observed_to")
    if start is not None and end is not None and start >= end:
        raise Invalid(
            "observed_from must be before observed_to",
            code="invalid_request",
            errors=[
                {
                    "path": ["query", "observed_to"],
                    "code": "empty_window",
                    "message": "the time window is empty",
                }
            ],
        )
    return Filters(
        location=location,
        abroad=abroad,
        phase=phase.value if phase else None,
        team=team,
        observed_from=start,
        observed_to=end,
        template=template,
        template_version=template_version,
    )


FiltersDep = Annotated[Filters, Depends(findings_filters)]
Language = Annotated[
    str | None,
    Query(min_length=2, max_length=8, description="Language of labels (default: the mission's)"),
]


GZ_ETAG = "-gz"  # the ETag of a view's gzip body: its own, with this before the last quote


def _variant(etag: str, suffix: str) -> str:
    """The ETag of another body of the same view (gzip, Markdown)."""
    return etag[:-1] + suffix + '"'


def _etags(request: Request) -> list[str]:
    """The ETags of `If-None-Match`, as the views' own: weak or strong alike, and a gzip
    body's ETag as the view's (`*` stays `*`)."""
    asked = request.headers.get("if-none-match")
    out = []
    for tag in (asked or "").split(","):
        tag = tag.strip().removeprefix("W/")
        if tag.endswith(GZ_ETAG + '"'):
            tag = tag[: -len(GZ_ETAG) - 1] + '"'  # the view's own
        if tag:
            out.append(tag)
    return out


def _answer(request: Request, view: views.View, media_type: str) -> Response:
    headers = {"ETag": view.etag, "Cache-Control": "no-cache"}
    if view.replica_lag_s is not None:  # read from a streaming replica this far behind
        headers["X-Replica-Lag"] = f"{view.replica_lag_s:.3f}"
    if view.findings_lag_s is not None:  # the findings this far behind the checklists
        headers["X-Findings-Lag"] = f"{view.findings_lag_s:.3f}"
    gzipped = view.gzipped if view.gzipped is not None and takes_gzip(request) else None
    if view.gzipped is not None:
        headers["Vary"] = "Accept-Encoding"
    if gzipped is not None:
        # Another body, so another (strong) ETag; either one sent back is a match.
        headers["ETag"] = _variant(view.etag, GZ_ETAG)
    held = _etags(request)
    if "*" in held or view.etag in held:
        return Response(status_code=304, headers=headers)
    if gzipped is not None:
        # Compressed once, when the view was computed (the gzip middleware leaves a
        # response that has its encoding already alone).
        headers["Content-Encoding"] = "gzip"
        return Response(content=gzipped, media_type=media_type, headers=headers)
    return Response(content=view.body, media_type=media_type, headers=headers)


VIEW_ROUTES: list[tuple[str, str, type[FindingsEnvelope], str]] = [
    (
        "findings",
        "/findings",
        FindingsPublic,
        "Every question's answer counts, denominators, shares and stations, per phase.",
    ),
    (
        "coverage",
        "/findings/coverage",
        CoveragePublic,
        "Stations planned and observed per region and phase, missing observers, hourly arrivals.",
    ),
    (
        "incidents",
        "/findings/incidents",
        IncidentsPublic,
        "Incident reports by type, region and hour, with the reports behind them.",
    ),
    (
        "critical",
        "/findings/critical",
        CriticalPublic,
        "Critical answers by question and region, with their checklists and clustering.",
    ),
    (
        "counting",
        "/findings/counting",
        CountingPublic,
        "Counting reports checked for consistency, conflicts, and totals (one report a station).",
    ),
    (
        "map",
        "/findings/map",
        MapPublic,
        "Stations with coordinates, each with the phases it was observed in and whether a "
        "checklist from it has a critical answer (the console's map).",
    ),
]


MissionId = Annotated[uuid.UUID, Path(description="Mission id")]


def _serve(
    request: Request,
    mission_id: uuid.UUID,
    auth: HTTPAuthorizationCredentials | None,
    settings: Settings,
    name: str,
    filters: Filters,
    lang: str | None,
    known: list[str],
) -> views.View:
    """A view request in one worker-thread trip, as the checklist intake does it: the token
    and the role, then the view. As `def` dependencies each of these was a trip of its own,
    and under load every trip waits for the worker's GIL behind the intake's threads.
    `known`: the client's ETags of this very body (its body is then not read)."""
    with session_scope() as write, session_scope(read=True) as session:
        who = check_mission(get_principal(request, write, settings, auth), mission_id, *READERS)
        return views.get_view(
            session, settings, mission_id, name, filters, lang, write, known, who.credential_id
        )


async def _in_dashboard_thread(*args: Any) -> views.View:
    """`_serve` on the dashboards' own worker threads (`dashboard_threads`), so that however
    many findings requests wait on the database, checklist intake keeps its threads."""
    return await anyio.to_thread.run_sync(_serve, *args, limiter=dashboard_limiter())


def _view_route(name: str, doc: str) -> Callable[..., Awaitable[Response]]:
    async def endpoint(
        request: Request,
        mission_id: MissionId,
        auth: BearerDep,
        settings: SettingsDep,
        filters: FiltersDep,
        lang: Language = None,
    ) -> Response:
        view = await _in_dashboard_thread(
            request, mission_id, auth, settings, name, filters, lang, _etags(request)
        )
        return _answer(request, view, "application/json")

    endpoint.__name__ = f"read_{name}"
    endpoint.__doc__ = doc
    return endpoint


for _name, _path, _model, _doc in VIEW_ROUTES:
    router.add_api_route(
        _path,
        _view_route(_name, _doc),
        methods=["GET"],
        response_model=None,
        responses=ERRORS | NOT_MODIFIED | {200: {"model": _model, "headers": LAG_HEADERS}},
    )


class StatementFormat(StrEnum):
    markdown = "markdown"
    json = "json"
    docx = "docx"


@router.get(
    "/statement",
    response_model=None,
    responses=ERRORS
    | NOT_MODIFIED
    | {
        200: {
            "model": StatementPublic,
            "headers": LAG_HEADERS,
            "content": {
                "text/markdown": {"schema": {"type": "string"}},
                word.MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
            },
            "description": "Markdown by default; JSON with every sentence's evidence; a Word "
            "document (docx) with footnotes and the evidence annex",
        }
    },
)
async def read_statement(
    request: Request,
    mission_id: MissionId,
    auth: BearerDep,
    settings: SettingsDep,
    filters: FiltersDep,
    lang: Language = None,
    format: Annotated[  # noqa: A002 - the query parameter's public name
        StatementFormat,
        Query(description="markdown, json with the evidence, or docx (Word, with footnotes)"),
    ] = StatementFormat.markdown,
) -> Response:
    """The draft preliminary statement built from the findings, each sentence with evidence."""
    # The Markdown is made from the JSON body, whose ETag the client does not hold.
    known = _etags(request) if format == StatementFormat.json else []
    view = await _in_dashboard_thread(
        request, mission_id, auth, settings, "statement", filters, lang, known
    )
    if format == StatementFormat.json:
        return _answer(request, view, "application/json")
    if format == StatementFormat.docx:
        return await _docx(request, view)
    markdown = view.parsed()["markdown"].encode()
    md_view = replace(view, body=markdown, etag=_variant(view.etag, "-md"), gzipped=None)
    return _answer(request, md_view, "text/markdown; charset=utf-8")


def _data_version(
    request: Request,
    mission_id: uuid.UUID,
    auth: HTTPAuthorizationCredentials | None,
    settings: Settings,
) -> DataVersionPublic:
    with session_scope() as write, session_scope(read=True) as session:
        check_mission(get_principal(request, write, settings, auth), mission_id, *READERS)
        views.ensure_fresh(session, settings, write)
        if not views.on_replica(settings, write):
            found = freshness.data_version(session, mission_id)
        else:  # the fold's state from the primary; whether the replica has caught up too
            found = freshness.data_version(write, mission_id)
            if found is not None:
                found = freshness.with_replica(session, found)
    if found is None:
        raise NotFound(f"no mission {mission_id}", code="mission_not_found")
    return found


@router.get("/findings/version", response_model=DataVersionPublic, responses=ERRORS)
async def read_data_version(
    request: Request, mission_id: MissionId, auth: BearerDep, settings: SettingsDep
) -> DataVersionPublic:
    """The findings' data version and whether they include every stored checklist yet."""
    return await anyio.to_thread.run_sync(
        _data_version, request, mission_id, auth, settings, limiter=dashboard_limiter()
    )


async def _docx(request: Request, view: views.View) -> Response:
    """The statement as a Word document, built only when the client lacks this very one."""
    etag = _variant(view.etag, "-docx")
    held = _etags(request)
    if "*" in held or etag in held:  # a 304, with the lags' headers
        return _answer(request, replace(view, body=b"", etag=etag, gzipped=None), word.MEDIA_TYPE)
    drafted = StatementPublic.model_validate_json(view.body)
    base = str(request.base_url).rstrip("/")
    body = await anyio.to_thread.run_sync(
        word.statement_docx, drafted, base, limiter=dashboard_limiter()
    )
    response = _answer(request, replace(view, body=body, etag=etag, gzipped=None), word.MEDIA_TYPE)
    name = f"statement-{drafted.language}.docx"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
