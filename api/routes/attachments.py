"""Files a checklist declares: upload (idempotent, resumable), status, download."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from starlette.requests import ClientDisconnect

from api.deps import CurrentPrincipal, SessionDep, SettingsDep, Submitter
from api.errors import COMMON_ERRORS, Conflict, NotFound, TooLarge, error_responses
from api.services import attachments as attachment_service
from models.attachment import ATTACHMENT_NAME, AttachmentsStatus, AttachmentStatus

router = APIRouter(prefix="/checklists/{checklist_id}/attachments", tags=["attachments"])
ERRORS = COMMON_ERRORS | error_responses(NotFound)
UPLOAD_ERRORS = ERRORS | error_responses(Conflict, TooLarge)
Name = Annotated[str, Path(pattern=ATTACHMENT_NAME, description="The name declared")]
UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "description": "The file's bytes, whole or the range named by Content-Range",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.get("", response_model=AttachmentsStatus, responses=ERRORS)
def attachment_status(
    checklist_id: uuid.UUID,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
) -> Any:
    """The files the checklist declares, bytes received of each, and which are missing."""
    return attachment_service.status(session, principal, checklist_id, settings)


@router.put(
    "/{name}",
    response_model=AttachmentStatus,
    status_code=200,
    responses=UPLOAD_ERRORS
    | {201: {"model": AttachmentStatus, "description": "This request completed the file"}},
    openapi_extra=UPLOAD_BODY,
)
async def upload_attachment(
    checklist_id: uuid.UUID,
    name: Name,
    request: Request,
    response: Response,
    principal: Submitter,
    session: SessionDep,
    settings: SettingsDep,
    content_type: Annotated[str | None, Header()] = None,
    content_range: Annotated[str | None, Header()] = None,
) -> Any:
    """Upload a declared file, whole or from the offset the server holds; resending is safe."""
    target = await run_in_threadpool(
        attachment_service.find, session, principal, checklist_id, name
    )
    attachment_service.check_type(target, content_type)

    def done(created: bool) -> AttachmentStatus:
        response.status_code = 201 if created else 200
        response.headers["Upload-Offset"] = str(target.size)
        return target.status(target.size, complete=True)

    if target.stored or await run_in_threadpool(attachment_service.on_disk, settings, target):
        await run_in_threadpool(
            attachment_service.mark_stored, session, target.mission_id, target.sha256
        )
        return done(created=False)

    first, length = attachment_service.parse_range(content_range, target.size)
    upload = attachment_service.Upload(settings, target, first)
    with upload.open():
        try:
            async for chunk in request.stream():
                upload.write(chunk)
        except ClientDisconnect:
            # What arrived stays on disk: the phone resumes from the offset it will be told.
            return Response(status_code=400)
        attachment_service.check_length(length, upload.written)
        complete = await run_in_threadpool(upload.finish)
        held = target.size if complete else upload.held()
    if complete:
        await run_in_threadpool(
            attachment_service.mark_stored, session, target.mission_id, target.sha256
        )
        return done(created=True)
    response.headers["Upload-Offset"] = str(held)
    return target.status(held, complete=False)


@router.get(
    "/{name}",
    response_class=FileResponse,
    responses=ERRORS
    | {200: {"content": {"application/octet-stream": {}}, "description": "The file"}},
)
def download_attachment(
    checklist_id: uuid.UUID,
    name: Name,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
) -> Any:
    """The file's bytes, once it has been uploaded whole."""
    target = attachment_service.find(session, principal, checklist_id, name)
    path = attachment_service.blob_path(settings, target.mission_id, target.sha256)
    if not target.stored or not path.exists():
        raise NotFound(
            f"{name} has not been uploaded completely yet", code="attachment_not_uploaded"
        )
    return FileResponse(
        path,
        media_type=target.content_type,
        filename=name,
        headers={"Cache-Control": "private, max-age=86400, immutable"},
    )
