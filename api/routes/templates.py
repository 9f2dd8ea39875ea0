from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, status

from api.body import raw_body
from api.deps import AdminOfMission, MemberOfMission, SessionDep
from api.errors import COMMON_ERRORS, Conflict, NotFound, error_responses
from api.services import templates as template_service
from models import ChecklistTemplate, Role
from models.template import TemplatePublic, TemplatesPublic, TemplateSummary

router = APIRouter(prefix="/missions/{mission_id}/templates", tags=["templates"])
# Bounded like the stored columns: an out-of-range version was a database error (500).
TemplateCode = Annotated[str, Path(max_length=32)]
TemplateVersion = Annotated[int, Path(ge=1, le=1_000_000)]
ERRORS = COMMON_ERRORS | error_responses(NotFound, Conflict)
TEMPLATE_BODY = {
    "requestBody": {
        "required": True,
        "description": "The template as YAML or JSON (see api/data/default_checklist.yaml)",
        "content": {
            "application/yaml": {"schema": {"type": "string"}},
            "application/json": {"schema": {"$ref": "#/components/schemas/TemplateDefinition"}},
        },
    }
}


def _summary(t: ChecklistTemplate) -> TemplateSummary:
    return TemplateSummary(
        **t.model_dump(warnings=False), title=template_service.title_of(t.definition)
    )


def _public(t: ChecklistTemplate) -> TemplatePublic:
    return TemplatePublic(**_summary(t).model_dump(), definition=t.definition)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TemplatePublic,
    responses=ERRORS,
    openapi_extra=TEMPLATE_BODY,
)
def upload_template(
    mission_id: uuid.UUID,
    session: SessionDep,
    _: AdminOfMission,
    raw: Annotated[bytes, Depends(raw_body)],
    publish: Annotated[bool, Query(description="Publish at once (then it never changes)")] = False,
) -> Any:
    """Upload a template version as a draft (or publish it); every problem is listed."""
    definition = template_service.parse_definition(raw.decode("utf-8", errors="replace"))
    return _public(template_service.create(session, mission_id, definition, publish=publish))


@router.get("", response_model=TemplatesPublic, responses=COMMON_ERRORS)
def list_templates(mission_id: uuid.UUID, session: SessionDep, principal: MemberOfMission) -> Any:
    """Template versions of the mission (observers and viewers see only published ones)."""
    staff = principal.role in (Role.admin, Role.analyst)
    rows = template_service.list_for_mission(session, mission_id, published_only=not staff)
    return TemplatesPublic(data=[_summary(t) for t in rows], count=len(rows))


@router.get("/{code}/{version}", response_model=TemplatePublic, responses=ERRORS)
def read_template(
    mission_id: uuid.UUID,
    code: TemplateCode,
    version: TemplateVersion,
    session: SessionDep,
    principal: MemberOfMission,
) -> Any:
    """One template version with its full definition."""
    tpl = template_service.get(session, mission_id, code, version)
    if tpl.status == "draft" and principal.role not in (Role.admin, Role.analyst):
        raise NotFound(
            f"no template {code} version {version} in this mission", code="template_not_found"
        )
    return _public(tpl)


@router.post("/{code}/{version}/publish", response_model=TemplatePublic, responses=ERRORS)
def publish_template(
    mission_id: uuid.UUID,
    code: TemplateCode,
    version: TemplateVersion,
    session: SessionDep,
    _: AdminOfMission,
) -> Any:
    """Publish a draft: phones may use it from now on and it can no longer change."""
    tpl = template_service.get(session, mission_id, code, version)
    return _public(template_service.publish_template(session, tpl))
