"""Which template version SMS checklists of a mission use."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlmodel import col

from api.checklist_schema import TemplateDefinition
from api.errors import NotFound
from api.services.sms.codes import SmsCodes
from api.services.sms.config import SmsSettings
from models import ChecklistTemplate
from models.template import TemplateStatus


def sms_template(
    session: Session,
    mission_id: uuid.UUID,
    settings: SmsSettings,
    code: str | None = None,
    version: int | None = None,
) -> tuple[str, int, TemplateDefinition]:
    """The template `code` (else the one the SMS settings name, else the mission's only
    one), at `version` or its newest published version."""
    q = select(
        col(ChecklistTemplate.code),
        col(ChecklistTemplate.version),
        col(ChecklistTemplate.definition),
    ).where(
        col(ChecklistTemplate.mission_id) == mission_id,
        col(ChecklistTemplate.status) == TemplateStatus.published,
    )
    code = code or settings.template
    if code is not None:
        q = q.where(col(ChecklistTemplate.code) == code)
    if version is not None:
        q = q.where(col(ChecklistTemplate.version) == version)
    rows = session.execute(q.order_by(col(ChecklistTemplate.version).desc())).all()
    if not rows:
        raise NotFound(
            f"no published template {code or ''} {'version ' + str(version) if version else ''}"
            " for SMS in this mission".replace("  ", " "),
            code="sms_template_not_found",
        )
    if code is None and len({r.code for r in rows}) > 1:
        raise NotFound(
            "the mission has several templates: name the SMS one in settings.sms.template",
            code="sms_template_not_set",
        )
    row = rows[0]
    return row.code, row.version, TemplateDefinition.model_validate(row.definition)


# A published version never changes: its SMS codes are worked out once per process.
_codes: dict[tuple[uuid.UUID, str, int], SmsCodes] = {}


def sms_codes(
    session: Session, mission_id: uuid.UUID, settings: SmsSettings
) -> tuple[str, int, SmsCodes]:
    """The SMS template's code, version and SMS format, for each incoming message."""
    q = (
        select(col(ChecklistTemplate.code), col(ChecklistTemplate.version))
        .where(
            col(ChecklistTemplate.mission_id) == mission_id,
            col(ChecklistTemplate.status) == TemplateStatus.published,
        )
        .order_by(col(ChecklistTemplate.version).desc())
    )
    if settings.template is not None:
        q = q.where(col(ChecklistTemplate.code) == settings.template)
    newest = session.execute(q.limit(2)).all()
    if newest and (settings.template is not None or len({r.code for r in newest}) == 1):
        key = (mission_id, newest[0].code, newest[0].version)
        found = _codes.get(key)
        if found is not None:
            return key[1], key[2], found
    code, version, definition = sms_template(session, mission_id, settings)
    codes = SmsCodes(definition)
    if len(_codes) > 1000:
        _codes.clear()
    _codes[(mission_id, code, version)] = codes
    return code, version, codes
