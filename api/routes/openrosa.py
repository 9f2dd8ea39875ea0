"""The OpenRosa API for ODK Collect and Enketo, under a per-observer key path as ODK Central
has it (`/key/{token}/…`): the token in the path is the observer's bearer token (revoking it
locks the phone out), since Collect cannot send a bearer header.

Every answer carries `X-OpenRosa-Version: 1.0`; errors are `OpenRosaResponse` bodies in the
observer's language (Collect shows their message), never the JSON error shape. These routes
come before the audit dependency: a submission records its audit notes in its own
transaction, as JSON intake does, and no audit row ever holds the path with the token.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials
from lxml import etree
from sqlalchemy.orm import Session
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.checklist_schema import TemplateDefinition
from api.config import Settings
from api.db import session_scope
from api.deps import SettingsDep, check_role, in_intake_trip, principal_of, record_write
from api.errors import AppError, ErrorBody, Invalid, TooLarge
from api.services.openrosa import forms, messages, submission, xform
from models import Role
from models.attachment import ATTACHMENT_NAME

router = APIRouter(tags=["openrosa"])
PREFIX = "/key/"
OPENROSA = {"X-OpenRosa-Version": "1.0"}
RESPONSE_NS = "http://openrosa.org/http/response"
LIST_NS = "http://openrosa.org/xforms/xformsList"
XML = "text/xml; charset=utf-8"
INCOMPLETE = "*isIncomplete*"  # Collect's mark on every part of a split submission but the last
Token = Annotated[str, Path(description="The observer's token, as in the Collect QR code")]
_PROBLEM = {"content": {"text/xml": {}}, "description": "An OpenRosaResponse naming the problem"}
XML_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/xml": {}}, "description": "OpenRosa XML"},
    401: _PROBLEM | {"description": "Unknown or revoked key"},
    403: _PROBLEM | {"description": "Not an observer's key"},
    404: _PROBLEM | {"description": "No such form, or no longer published"},
    429: _PROBLEM | {"description": "Too many requests"},
    503: {"model": ErrorBody, "description": "The database is away; retry (the app's JSON)"},
    # A path the body sanitiser refuses (control characters) gets the app's JSON error.
    422: {"model": ErrorBody, "description": "Every problem, each naming its question"}
    | {"content": {"text/xml": {}}},
}
SUBMIT_DOC = XML_DOC | {
    201: {"content": {"text/xml": {}}, "description": "Stored, or already had"},
    409: _PROBLEM | {"description": "Another form was received under this instance id"},
    413: _PROBLEM | {"description": "Over X-OpenRosa-Accept-Content-Length"},
}


def _auth(
    request: Request, session: Session, settings: Settings, token: str, checklists: int = 0
) -> forms.Caller:
    credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=token)
    principal = principal_of(request, session, settings, credentials, checklists)
    # A submission (it charges a checklist) needs the observer's language, not their forms.
    return forms.caller(session, check_role(principal, Role.observer), stations=not checklists)


def _xml(root: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return Response(body, status_code, headers=OPENROSA | (headers or {}), media_type=XML)


def openrosa_message(
    status_code: int, message: str, nature: str = "", headers: dict[str, str] | None = None
) -> Response:
    root = etree.Element(f"{{{RESPONSE_NS}}}OpenRosaResponse", nsmap={None: RESPONSE_NS})
    m = etree.SubElement(root, f"{{{RESPONSE_NS}}}message")
    if nature:
        m.set("nature", nature)
    m.text = message
    return _xml(root, status_code, headers)


def _error(exc: AppError, language: str, definition: TemplateDefinition | None = None) -> Response:
    headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() != "www-authenticate"}
    return openrosa_message(
        exc.status_code, messages.problem(exc, language, definition), "", headers
    )


def _served(
    request: Request, settings: Settings, token: str, form_id: str | None, need_one: bool
) -> list[xform.ServedForm] | Response:
    """The caller's forms (only `form_id` if given), or the OpenRosa error to answer."""
    language = "en"
    try:
        with session_scope() as session:
            caller = _auth(request, session, settings, token)
            language = caller.language
            found = forms.served(session, caller, form_id)
            if need_one and not found:
                raise submission.not_found_form(form_id or "")
    except AppError as exc:
        return _error(exc, language)
    return found


@router.get("/key/{token}/formList", responses=XML_DOC, response_class=Response)
def form_list(
    token: Token,
    request: Request,
    settings: SettingsDep,
    form_id: Annotated[str | None, Query(alias="formID")] = None,
) -> Response:
    """The observer's forms (OpenRosa form list): one per published template version."""
    served = _served(request, settings, token, form_id, need_one=False)
    if isinstance(served, Response):
        return served
    root = etree.Element(f"{{{LIST_NS}}}xforms", nsmap={None: LIST_NS})
    base = str(request.base_url).rstrip("/")
    for f in served:
        x = etree.SubElement(root, f"{{{LIST_NS}}}xform")
        for name, value in (
            ("formID", f.form_id),
            ("name", f.title),
            ("version", f.version),
            ("hash", f.md5),
            ("downloadUrl", f"{base}/key/{token}/forms/{f.form_id}"),
        ):
            etree.SubElement(x, f"{{{LIST_NS}}}{name}").text = value
    return _xml(root)


@router.get("/key/{token}/forms/{form_id}", responses=XML_DOC, response_class=Response)
def form_download(token: Token, form_id: str, request: Request, settings: SettingsDep) -> Response:
    """One form's XForm, as the form list announced it."""
    served = _served(request, settings, token, form_id, need_one=True)
    if isinstance(served, Response):
        return served
    return Response(served[0].xml, headers=OPENROSA, media_type=XML)


@router.head(
    "/key/{token}/submission",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=XML_DOC | {204: {"description": "Ready: send the submission"}},
    response_class=Response,
)
def submission_head(token: Token, request: Request, settings: SettingsDep) -> Response:
    """Collect asks first: where to send, and how big one request may be."""
    try:
        with session_scope() as session:
            _auth(request, session, settings, token)
    except AppError as exc:
        return _error(exc, "en")
    limit = str(settings.openrosa_max_submission_bytes)
    return Response(status_code=204, headers=OPENROSA | {"X-OpenRosa-Accept-Content-Length": limit})


@router.post(
    "/key/{token}/submission",
    status_code=status.HTTP_201_CREATED,
    responses=SUBMIT_DOC,
    response_class=Response,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "xml_submission_file": {"type": "string", "format": "binary"},
                            "*isIncomplete*": {
                                "type": "string",
                                "enum": ["yes"],
                                "description": "More parts of this submission follow",
                            },
                        },
                        # The photos the form names, each part named by its file name.
                        "patternProperties": {
                            ATTACHMENT_NAME: {"type": "string", "format": "binary"}
                        },
                        "additionalProperties": False,
                        "required": ["xml_submission_file"],
                    }
                }
            },
        }
    },
)
async def submission_post(token: Token, request: Request, settings: SettingsDep) -> Response:
    """Store one filled form (multipart: `xml_submission_file` and its photos)."""
    language = "en"
    try:
        caller = await run_in_threadpool(_caller_for_post, request, settings, token)
        language = caller.language
        data = await _read_limited(request, settings.openrosa_max_submission_bytes, language)
        form = await _multipart(_replay(request, data), settings)
        xml_part = form.get("xml_submission_file")
        if not isinstance(xml_part, UploadFile):
            raise Invalid(
                "the request has no xml_submission_file part",
                code="no_submission_file",
                errors=[{"path": ["xml_submission_file"], "code": "required", "message": ""}],
            )
        xml = await xml_part.read()
        parts = [
            submission.Part(v.filename or key, await v.read(), v.content_type or "")
            for key, v in form.multi_items()
            if isinstance(v, UploadFile) and key != "xml_submission_file"
        ]
        incomplete = str(form.get(INCOMPLETE, "")).lower() == "yes"
        unknown = sorted(
            {k for k, v in form.multi_items() if not isinstance(v, UploadFile)} - {INCOMPLETE}
        )
        if unknown:
            raise Invalid(
                f"unknown form field(s) {unknown}: only xml_submission_file, {INCOMPLETE} "
                "and the photos' files are sent",
                code="unknown_field",
            )
    except AppError as exc:
        return _error(exc, language)
    return await in_intake_trip(_submit, request, settings, caller, xml, parts, incomplete)


async def _multipart(request: Request, settings: Settings) -> FormData:
    """The parts; a body that is not readable multipart, or has more files than a checklist
    may declare, is the caller's problem (422), told in the OpenRosa shape."""
    try:
        return await request.form(
            max_files=settings.attachments_per_checklist + 1,
            max_part_size=settings.openrosa_max_submission_bytes,
        )
    except StarletteHTTPException as exc:
        raise Invalid(
            f"the multipart body could not be read: {exc.detail} (a checklist may have "
            f"{settings.attachments_per_checklist} photos)",
            code="bad_multipart",
        ) from exc


def _caller_for_post(request: Request, settings: Settings, token: str) -> forms.Caller:
    with session_scope() as session:
        return _auth(request, session, settings, token, checklists=1)


async def _read_limited(request: Request, limit: int, language: str) -> bytes:
    declared = request.headers.get("content-length")
    too_large = TooLarge(messages.text(language, "too_large", n=limit), code="body_too_large")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _replay(request: Request, data: bytes) -> Request:
    """The request again, its body read already (to count it against the limit)."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": data, "more_body": False}

    return Request(request.scope, receive)


def _submit(
    request: Request,
    settings: Settings,
    caller: forms.Caller,
    xml: bytes,
    parts: list[submission.Part],
    incomplete: bool,
) -> Response:
    language = caller.language
    definition = None
    principal = caller.principal
    try:
        submission.check_names([p.name for p in parts])
        with session_scope() as session:
            session.connection()  # one transaction: the checklist and its client row together
            found = submission.parse(
                session, principal.mission_id, xml, request.headers.get("date")
            )
            definition = found.template
            # Collect also names the device in the URL (`?deviceID=`); a form without the
            # meta field (made elsewhere) still gets it.
            found.device_id = (
                found.device_id or (request.query_params.get("deviceID") or "")[:200] or None
            )
            client = (request.headers.get("user-agent") or "")[:300] or None
            done = submission.store(session, principal, settings, found, parts, incomplete, client)
            if done.state == "part":
                return openrosa_message(201, messages.text(language, "part"), "submit_success")
            record_write(request, session, "/checklists", done.raw.encode())
        submission.forget(done.staging)
    except AppError as exc:
        return _error(exc, language, definition)
    return openrosa_message(201, messages.text(language, done.state), "submit_success")
