from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from api.compression import negotiated
from api.db import session_scope
from api.deps import AdminOfMission, ReadSessionDep
from api.errors import COMMON_ERRORS
from api.services import audit as audit_service
from models.audit import AuditEventsPublic

router = APIRouter(prefix="/missions/{mission_id}/audit", tags=["audit"])


@router.get("", response_model=AuditEventsPublic, responses=COMMON_ERRORS)
def read_audit_trail(
    mission_id: uuid.UUID,
    _: AdminOfMission,
    session: ReadSessionDep,
    after_id: Annotated[
        int, Query(ge=0, le=2**62, description="`next_cursor` of the previous page")
    ] = 0,
    action: Annotated[
        str | None, Query(max_length=200, description="Action prefix, e.g. `review`")
    ] = None,
    credential_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """The mission's audit trail, oldest first, a page at a time (admins)."""
    data, next_cursor = audit_service.list_events(
        session,
        mission_id,
        after_id=after_id,
        action=action,
        credential_id=credential_id,
        limit=limit,
    )
    return AuditEventsPublic(data=data, count=len(data), next_cursor=next_cursor)


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses=COMMON_ERRORS
    | {200: {"description": "CSV, one row per event", "content": {"text/csv": {}}}},
)
def export_audit_trail(
    request: Request,
    mission_id: uuid.UUID,
    _: AdminOfMission,
    include_intake: Annotated[
        bool, Query(description="Merge in every checklist version received")
    ] = False,
) -> StreamingResponse:
    """The audit trail as CSV, safe to open in a spreadsheet (admins)."""

    def rows() -> Iterator[bytes]:
        # Its own session: the response streams after the request's session has closed.
        with session_scope(read=True) as session:
            for text in audit_service.export_csv(session, mission_id, include_intake):
                yield text.encode()

    headers = {"Content-Disposition": f'attachment; filename="audit-{mission_id}.csv"'}
    body = negotiated(request, rows(), headers)
    return StreamingResponse(body, media_type="text/csv; charset=utf-8", headers=headers)
