"""Builds the FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import Depends, FastAPI
from fastapi.middleware.gzip import GZipMiddleware
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import access, deps, memory, pacing, ratelimit
from api.body import declare_media_errors, require_media_type
from api.checklist_schema import TemplateDefinition
from api.compression import GunzipRequest, refuse
from api.config import Settings, get_settings
from api.errors import TooLarge, install_error_handlers
from api.routes import (
    apidocs,
    attachments,
    checklists,
    events,
    exports,
    findings,
    health,
    me,
    missions,
    observers,
    odata,
    openrosa,
    sms,
    stations,
    sync,
    templates,
    web,
)
from api.services.exports.common import MEDIA_TYPES
from api.services.findings.fold import progress_now as fold_progress

# Files the gzip middleware leaves alone: an XLSX is a zip already (gzip would spend a second
# of CPU on a large export to save nothing); CSV and GeoJSON files gzip themselves, fast
# (`compression.negotiated`).
NOT_GZIPPED = (*DEFAULT_EXCLUDED_CONTENT_TYPES, *MEDIA_TYPES.values())

DESCRIPTION = """
Pollcheck takes election-observation checklists from phones on bad networks, stores each
exactly once with its history, and turns them into defensible findings.

Authenticate with `Authorization: Bearer <token>`; tokens come from `pollcheck` (the CLI)
or from a mission admin. Every error has one shape: `{"error", "detail", "code", "errors"}`.
"""


class BodyLimit:
    """Refuse request bodies over the configured size with 413, before reading them whole."""

    def __init__(self, app: ASGIApp, max_bytes: int, own_limit: tuple[str, ...] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.own_limit = own_limit  # path prefixes whose routes bound their bodies themselves

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.own_limit):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        received = 0
        refused = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refused = True
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            if refused:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        await refuse(
            send,
            413,
            "PayloadTooLarge",
            "body_too_large",
            f"the request body is over {self.max_bytes} bytes",
        )


class OpenRosaVersion:
    """`X-OpenRosa-Version: 1.0` on every answer under the OpenRosa key paths, those the
    middlewares give (a flood refused, a body of the wrong type) as well as the routes'."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return

        async def send_with_version(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k != b"x-openrosa-version"
                ]
                message = {**message, "headers": [*headers, (b"x-openrosa-version", b"1.0")]}
            await send(message)

        await self.app(scope, receive, send_with_version)


class _TooLarge(TooLarge):
    """Raised from `receive`: inside the app (a route streaming a file) the error handlers
    answer 413 in the one shape; outside it (the body middlewares) BodyLimit does."""

    def __init__(self) -> None:
        super().__init__("the request body is over the size limit", code="body_too_large")


@asynccontextmanager
async def _lifespan(_: FastAPI) -> AsyncIterator[None]:
    # A request works in a worker thread while it holds a database connection, so the
    # process runs as many at once as its pool has connections; the rest wait for a thread
    # instead of opening overflow connections (seen in `make bench`: 40 new PostgreSQL
    # sessions a second, each costing milliseconds of CPU, when threads outnumbered them).
    limiter = anyio.to_thread.current_default_thread_limiter()
    limiter.total_tokens = max(1, get_settings().db_pool_size)
    # Dashboards' findings requests have threads of their own (`deps.dashboard_limiter`),
    # and observers' submissions a bound of their own when set (`deps.in_intake_trip`),
    # paced by the findings' lag when a target is set (`api.pacing`).
    deps.forget_limiters()
    turns = deps.intake_turns()
    memory.settle()  # what the process built to start lives as long as it does
    async with anyio.create_task_group() as tasks:
        if turns is not None and turns.target_s > 0:
            tasks.start_soon(pacing.steer, turns, fold_progress)
        yield
        tasks.cancel_scope.cancel()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="Pollcheck",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=_lifespan,
        docs_url=None,  # served from local files by apidocs.mount
        redoc_url=None,
    )
    install_error_handlers(app)
    # Every route, the intake's too: a body is of a type its route takes, or 415.
    app.router.dependencies.append(Depends(require_media_type))
    # Requests are matched against the routes in the order they are added, so the busiest
    # come first: checklist intake, phone sync, dashboards' findings. (In a profile, matching
    # POST /checklists after every other router was a tenth of its event-loop CPU.)
    # The checklist and phone-sync routes come before the audit dependency too: their only
    # writes, intake, record their own audit inside their transaction (`api.services.intake`;
    # each such route does all its database work in one session), and the dependency, with a
    # session of its own, would record a batch a second time and cost the hottest routes a
    # session and two context managers.
    app.include_router(checklists.router)
    app.include_router(sync.router)
    # ODK Collect's submissions record their audit notes themselves, as intake does; the
    # audit dependency would write the path, which holds the token.
    app.include_router(openrosa.router)
    access.install(app)
    for router in (
        findings.router,
        events.router,
        health.router,
        missions.router,
        stations.router,
        observers.router,
        templates.router,
        me.router,
        attachments.router,
        exports.router,
        odata.router,
        sms.router,
        *access.ROUTERS,
    ):
        app.include_router(router)
    web.mount(app, settings=settings)
    apidocs.mount(app)
    declare_media_errors(app)
    # Phones on 2G: JSON and the web app shrink four to ten times.
    app.add_middleware(GZipMiddleware, minimum_size=1000, exclude_content_types=NOT_GZIPPED)

    # The template upload route reads YAML or JSON itself; publish the JSON shape it accepts.
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        from models.checklist import ChecklistSubmit

        comps = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (TemplateDefinition, ChecklistSubmit):
            js = model.model_json_schema(ref_template="#/components/schemas/{model}")
            comps.update(js.pop("$defs", {}))
            comps[model.__name__] = js
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    inner = GunzipRequest(access.sanitize(app), settings.max_body_bytes)
    # Outermost: a flood of bad tokens from one address is refused before anything else.
    # OpenRosa submissions carry photos: their route counts them against
    # `openrosa_max_submission_bytes` and answers 413 as Collect reads it.
    limited = BodyLimit(inner, settings.max_body_bytes, own_limit=(openrosa.PREFIX,))
    return OpenRosaVersion(ratelimit.AddressGuard(limited), openrosa.PREFIX)  # type: ignore[return-value]


app = create_app()
