"""Phone sync: the day's work (ETag, gzip), batch intake and reconcile since a cursor."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from sqlalchemy.orm import Session

from api.body import parse_json, raw_body, validate
from api.deps import BearerDep, Principal, SettingsDep, in_one_trip, record_write
from api.errors import COMMON_ERRORS, TooLarge, error_responses
from api.services import sync as sync_service
from models import Role
from models.sync import DayOfWork, SyncBatch, SyncPage, SyncResult

router = APIRouter(prefix="/sync", tags=["sync"])
OBSERVERS = (Role.observer,)
LANGUAGE = r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})?$"
BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["items"],
                    "additionalProperties": False,
                    "properties": {
                        "items": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/ChecklistSubmit"},
                        }
                    },
                }
            }
        },
    }
}


@router.get(
    "/day",
    response_model=DayOfWork,
    responses=COMMON_ERRORS
    | {304: {"description": "Not modified: the phone's copy (If-None-Match) is current"}},
)
async def day_of_work(
    request: Request,
    auth: BearerDep,
    settings: SettingsDep,
    lang: Annotated[
        str | None,
        Query(
            pattern=LANGUAGE,
            description="Label language; else the observer's, else the mission's first",
        ),
    ] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The day's work in one call: mission, assigned stations and templates in one language."""
    # Every phone asks for it at the start of the day, all at once: one trip (`in_one_trip`).
    body, etag = await in_one_trip(
        request,
        auth,
        settings,
        OBSERVERS,
        lambda session, principal: sync_service.render(
            sync_service.day_of_work(session, principal, lang)
        ),
    )
    # `no-cache`: the phone may keep it but asks again each time; a 304 costs a few bytes.
    headers = {
        "ETag": etag,
        "Cache-Control": "private, no-cache",
        "Vary": "Authorization",  # the gzip layer adds Accept-Encoding
    }
    if sync_service.etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


@router.post(
    "/checklists",
    response_model=SyncResult,
    response_model_exclude_none=True,
    responses=COMMON_ERRORS | error_responses(TooLarge),
    openapi_extra=BATCH_BODY,
)
async def sync_checklists(
    request: Request,
    auth: BearerDep,
    settings: SettingsDep,
    raw: Annotated[bytes, Depends(raw_body)],
) -> Any:
    """Store a batch of queued checklists; each item gets its own result; resending is safe."""
    # All its database work in one trip (`in_one_trip`), as the single checklist's route.

    def store(session: Session, principal: Principal) -> SyncResult:
        batch = validate(SyncBatch, parse_json(raw))
        result = sync_service.submit_batch(session, principal, batch.items, settings)
        record_write(request, session, "/sync/checklists", raw)
        return result

    return await in_one_trip(request, auth, settings, OBSERVERS, store, intake=True)


@router.get(
    "/checklists",
    response_model=SyncPage,
    response_model_exclude_none=True,
    responses=COMMON_ERRORS,
)
async def reconcile(
    request: Request,
    auth: BearerDep,
    settings: SettingsDep,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous call")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> Any:
    """What the server holds of this observer's checklists since a cursor (ids, versions)."""
    return await in_one_trip(
        request,
        auth,
        settings,
        OBSERVERS,
        lambda session, principal: sync_service.reconcile(session, principal, cursor, limit),
    )
