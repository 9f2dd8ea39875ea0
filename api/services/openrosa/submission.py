"""OpenRosa submissions: an XForm instance and its files, translated into the checklist the
JSON channel sends, and stored by the one intake (`api.services.checklists.submit`).

The instance id (`uuid:…`) is the checklist id and `deprecatedID` the version it corrects,
so the intake's rules hold unchanged: the same instance sent again is a replay (201,
nothing new), another content under the same id a conflict (409).

Files. Collect sends a big submission in several requests, each with the XML and some of
the files, all but the last marked `*isIncomplete*`; after a cut connection it sends the
whole submission again. The files of each request are kept under the instance id
(`<attachments_dir>/<mission>/openrosa/<instance id>/<name>`) until every photo the XML names
has arrived; only then is the checklist stored, declaring each photo with its SHA-256, and
the bytes moved to the mission's content-addressed store. A last part that still lacks a
named photo is refused with the photo's name, and what arrived is kept for the resend. A
resend of a stored instance stores the bytes of any photo not yet on disk.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import uuid
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Literal

import orjson
from lxml import etree
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.body import validate
from api.checklist_schema import NA, CompiledTemplate, QuestionType, TemplateDefinition
from api.config import Settings
from api.deps import Principal
from api.errors import AppError, Invalid, NotFound
from api.services import attachments as attachment_service
from api.services import checklists as checklist_service
from api.services.openrosa import xform
from models import Attachment, ChecklistClient, ChecklistTemplate, TemplateStatus
from models.attachment import ATTACHMENT_NAME
from models.base import table_of
from models.checklist import ChecklistSubmit

TPL = table_of(ChecklistTemplate)
AT = table_of(Attachment)
_NAME_RE = re.compile(ATTACHMENT_NAME)
_TIME_RE = re.compile(r"\d\d:\d\d")
_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, remove_comments=True, huge_tree=False
)
TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".heic": "image/heic",
    ".pdf": "application/pdf",
}


class FormGone(AppError):
    """The instance names a form this server no longer publishes (or never did)."""

    status_code = 404
    error = "NotFound"


@dataclass(slots=True)
class Instance:
    """A parsed instance: the checklist body as the JSON channel has it, and what else the
    XML said."""

    item: dict[str, Any]
    template: TemplateDefinition
    photos: list[str]
    device_id: str | None
    errors: list[dict[str, Any]] = field(default_factory=list)


def _local(el: Any) -> str:
    return str(etree.QName(el).localname)


def _children(el: Any) -> list[Any]:
    return [c for c in el if isinstance(c.tag, str)]


def _text(el: Any) -> str:
    return (el.text or "").strip() if el is not None else ""


def _child(el: Any, name: str) -> Any:
    return next((c for c in _children(el) if _local(c) == name), None)


def _uuid(value: str, what: str) -> uuid.UUID:
    raw = value.removeprefix("uuid:")
    try:
        return uuid.UUID(raw)
    except ValueError as exc:
        raise Invalid(
            f"the {what} {value!r} is not uuid:<uuid>",
            code="bad_instance_id",
            errors=[{"path": ["meta", what], "code": "bad_instance_id", "message": value}],
        ) from exc


def published_template(
    session: Session, mission_id: uuid.UUID, form_id: str
) -> tuple[uuid.UUID, TemplateDefinition]:
    """The published template version behind a form id, or FormGone saying why not."""
    parsed = xform.parse_form_id(form_id)
    row = None
    if parsed is not None:
        # Not the definition itself: a large JSON document, decoded again on every
        # submission, where the process holds it parsed already (`definition`).
        row = session.execute(
            select(TPL.c.id, TPL.c.status).where(
                TPL.c.mission_id == mission_id,
                TPL.c.code == parsed[0],
                TPL.c.version == parsed[1],
            )
        ).first()
    if row is None or row.status != TemplateStatus.published:
        raise FormGone(
            f"the form {form_id!r} is not published on this server (any more): get the "
            "current blank forms and fill the checklist again in the current form",
            code="form_not_published",
        )
    found = _definitions.get(row.id)
    if found is None:
        data = session.execute(select(TPL.c.definition).where(TPL.c.id == row.id)).scalar_one()
        found = definition(row.id, data)
    return row.id, found


_definitions: dict[uuid.UUID, TemplateDefinition] = {}


def definition(template_id: uuid.UUID, data: dict[str, Any]) -> TemplateDefinition:
    """Published versions never change: parsed once per process."""
    found = _definitions.get(template_id)
    if found is None:
        found = _definitions[template_id] = TemplateDefinition.model_validate(data)
    return found


def parse(session: Session, mission_id: uuid.UUID, xml: bytes, date: str | None) -> Instance:
    """The instance as the checklist the JSON channel would send (and the photos it names)."""
    try:
        root = etree.fromstring(xml, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise Invalid(
            f"xml_submission_file is not well-formed XML: {exc}",
            code="malformed_xml",
            errors=[
                {"path": ["xml_submission_file"], "code": "malformed_xml", "message": str(exc)}
            ],
        ) from exc
    form_id = root.get("id") or ""
    _, template = published_template(session, mission_id, form_id)
    compiled = _compiled(template)
    meta = _child(root, "meta")
    instance_id = _text(_child(meta, "instanceID")) if meta is not None else ""
    if not instance_id:
        raise Invalid(
            "the submission has no meta/instanceID",
            code="no_instance_id",
            errors=[{"path": ["meta", "instanceID"], "code": "required", "message": "missing"}],
        )
    deprecated = _text(_child(meta, "deprecatedID"))
    item: dict[str, Any] = {
        "id": str(_uuid(instance_id, "instanceID")),
        "station": _text(_child(root, xform.STATION)),
        "template": template.code,
        "template_version": template.version,
        "phase": _text(_child(root, xform.PHASE)),
        "observed_at": _text(_child(root, xform.OBSERVED)) or None,
        "answers": _answers(root, compiled),
    }
    if deprecated:
        item["replaces"] = str(_uuid(deprecated, "deprecatedID"))
    sent = _sent_at(date)
    if sent is not None:
        item["sent_at"] = sent
    photos = [
        _text(p)
        for group in _children(root)
        if _local(group) == xform.PHOTOS
        for p in _children(group)
        if _local(p) == xform.PHOTO and _text(p)
    ]
    device = _text(_child(meta, "deviceID")) if meta is not None else ""
    return Instance(item, template, photos, device[:200] or None)


_compiled_forms: dict[tuple[str, int], CompiledTemplate] = {}


def _compiled(definition: TemplateDefinition) -> CompiledTemplate:
    key = (definition.code, definition.version)
    found = _compiled_forms.get(key)
    if found is None or found.definition is not definition:
        found = _compiled_forms[key] = CompiledTemplate(definition)
    return found


def _answers(root: Any, compiled: CompiledTemplate) -> dict[str, Any]:
    """Answers by question code, typed as the JSON channel types them. A value the form's
    type cannot hold is passed on as written, so the intake names the question."""
    answers: dict[str, Any] = {}
    na: set[str] = set()
    for group in _children(root):
        if not _local(group).startswith(xform.SECTION_PREFIX):
            continue
        for node in _children(group):
            name, value = _local(node), _text(node)
            if name == xform.HEADING or not value:
                continue
            if name.endswith(xform.NA_SUFFIX):
                if NA in value.split():
                    na.add(name.removesuffix(xform.NA_SUFFIX))
                continue
            cq = compiled.questions.get(name)
            answers[name] = _typed(cq.q.type, value) if cq else value
    for code in na:
        answers[code] = NA
    return answers


def _typed(kind: QuestionType, value: str) -> Any:
    if kind == QuestionType.multi:
        return value.split()
    if kind == QuestionType.integer:
        try:
            return int(value)
        except ValueError:
            return value
    if kind == QuestionType.time and _TIME_RE.match(value):
        return value[:5]  # XForms times are HH:MM:SS.sss+hh:mm; checklists keep HH:MM
    return value


def _sent_at(date: str | None) -> str | None:
    """The device clock at sending, from the request's `Date` header (OpenRosa asks for it)."""
    if not date:
        return None
    try:
        when = parsedate_to_datetime(date)
    except (TypeError, ValueError):
        return None
    return when.isoformat() if when.tzinfo is not None else None


# --- files ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Part:
    name: str
    data: bytes
    content_type: str


def staging_dir(settings: Settings, mission_id: uuid.UUID, instance_id: str) -> Path:
    return settings.attachments_dir / str(mission_id) / "openrosa" / str(uuid.UUID(instance_id))


def check_names(names: list[str]) -> None:
    """File names become paths on disk: only plain names (no `/`, no leading dot)."""
    bad = [n for n in names if not _NAME_RE.fullmatch(n)]
    if bad:
        raise Invalid(
            f"file name(s) {bad} are not allowed: letters, digits, '.', '_' and '-' only",
            code="bad_file_name",
            errors=[{"path": ["files", n], "code": "bad_file_name", "message": n} for n in bad],
        )


def stage(where: Path, parts: list[Part]) -> None:
    """Keep this request's files until the submission is complete."""
    if parts:  # most forms carry no photo: no directory to make and remove
        where.mkdir(parents=True, exist_ok=True)
    for part in parts:
        tmp = where / f".{part.name}.{uuid.uuid4().hex}"
        tmp.write_bytes(part.data)
        tmp.replace(where / part.name)


def known(session: Session, mission_id: uuid.UUID, checklist_id: str) -> dict[str, dict[str, Any]]:
    """The photos a stored checklist with this id already declares, by name: a resend that
    lacks their bytes (the staged parts went when it was stored) still declares the same."""
    rows = session.execute(
        select(AT.c.name, AT.c.sha256, AT.c.size, AT.c.content_type).where(
            AT.c.checklist_id == uuid.UUID(checklist_id), AT.c.mission_id == mission_id
        )
    )
    return {r.name: dict(r._mapping) for r in rows}


def missing(where: Path, photos: list[str], had: dict[str, dict[str, Any]]) -> list[str]:
    return [p for p in photos if not (where / p).is_file() and p not in had]


def declared(
    where: Path, photos: list[str], parts: list[Part], had: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """The photos as the checklist declares them: name, SHA-256, size, type."""
    sent_types = {p.name: p.content_type for p in parts}
    out = []
    for name in dict.fromkeys(photos):
        if not (where / name).is_file():
            out.append(had[name])
            continue
        data = (where / name).read_bytes()
        ctype = TYPES.get(Path(name).suffix.lower()) or sent_types.get(name) or ""
        out.append(
            {
                "name": name,
                "sha256": hashlib.sha256(data).hexdigest(),
                "size": len(data),
                "content_type": ctype,
            }
        )
    return out


def store_files(
    session: Session,
    settings: Settings,
    mission_id: uuid.UUID,
    checklist_id: uuid.UUID,
    where: Path,
    files: list[dict[str, Any]],
) -> None:
    """Move the staged photos into the mission's store (checked against their SHA-256) and
    mark every declaration of them complete."""
    for f in files:
        target = attachment_service.Target(
            mission_id, checklist_id, f["name"], f["sha256"], f["size"], f["content_type"], False
        )
        if not attachment_service.on_disk(settings, target) and (where / f["name"]).is_file():
            with attachment_service.Upload(settings, target, 0).open() as upload:
                upload.write((where / f["name"]).read_bytes())
                upload.finish()
        attachment_service.mark_stored(session, mission_id, f["sha256"])


@dataclass(frozen=True, slots=True)
class Stored:
    state: Literal["part", "stored", "replayed"]
    raw: str  # the checklist as the intake keeps it
    staging: Path


def store(
    session: Session,
    principal: Principal,
    settings: Settings,
    found: Instance,
    parts: list[Part],
    incomplete: bool,
    client: str | None,
) -> Stored:
    """Keep this request's files; once every photo the form names is here, store the
    checklist through the one intake, its photos, and the device and app it came from."""
    mission_id = principal.mission_id
    check_names(found.photos)  # as the parts' names were: they are looked up on disk
    where = staging_dir(settings, mission_id, found.item["id"])
    stage(where, parts)
    had = known(session, mission_id, found.item["id"]) if found.photos else {}
    absent = missing(where, found.photos, had)
    if absent and incomplete:
        return Stored("part", "", where)
    if absent:
        raise Invalid(
            f"photo(s) {', '.join(absent)} named in the form did not arrive",
            code="photo_missing",
            errors=[
                {"path": ["photos", name], "code": "photo_missing", "message": _RESEND}
                for name in absent
            ],
        )
    files = declared(where, found.photos, parts, had)
    if files:
        found.item["attachments"] = files
    body = validate(ChecklistSubmit, found.item)
    # What the intake keeps: the checklist as the JSON channel would have sent it.
    raw = orjson.dumps(found.item).decode()
    outcome = checklist_service.submit(
        session, principal, body, found.item, raw, settings, savepoint=False
    )
    store_files(session, settings, mission_id, body.id, where, files)
    if outcome.created:
        session.add(
            ChecklistClient(
                checklist_id=body.id, channel="openrosa", device_id=found.device_id, client=client
            )
        )
    return Stored("stored" if outcome.created else "replayed", raw, where)


_RESEND = "did not arrive; send the form again"


def forget(where: Path) -> None:
    shutil.rmtree(where, ignore_errors=True)


def not_found_form(form_id: str) -> NotFound:
    return NotFound(f"no form {form_id!r} for you on this server", code="form_not_found")
