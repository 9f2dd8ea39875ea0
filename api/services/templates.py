"""Checklist templates: load from YAML/JSON, check, store as drafts, publish (then frozen)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlmodel import col

from api.checklist_schema import CompiledTemplate, TemplateDefinition
from api.errors import Conflict, Invalid, NotFound
from api.sanitize import TooComplex, load_yaml
from models import ChecklistTemplate, TemplateStatus
from models.base import utcnow

DEFAULT_TEMPLATE = "default_checklist.yaml"


def parse_definition(text: str, source: str = "template") -> TemplateDefinition:
    """Parse YAML (a superset of JSON) and check it; every problem is reported with its path."""
    try:
        data = load_yaml(text)
    except TooComplex as exc:
        raise exc.invalid() from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise Invalid(
            f"{source} is not valid YAML/JSON{where}",
            code="template_syntax",
            errors=[{"path": [], "code": "syntax", "message": str(exc)}],
        ) from exc
    return check_definition(data, source)


def check_definition(data: Any, source: str = "template") -> TemplateDefinition:
    if not isinstance(data, dict):
        raise Invalid(
            f"{source} must be a mapping with code, version, sections…", code="template_invalid"
        )
    try:
        definition = TemplateDefinition.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"path": list(e["loc"]), "code": e["type"], "message": e["msg"]} for e in exc.errors()
        ]
        raise _invalid(source, errors) from exc
    missing = missing_labels(definition)
    if missing:
        raise _invalid(source, missing)
    return definition


def _invalid(source: str, errors: list[dict[str, Any]]) -> Invalid:
    return Invalid(
        f"{source} has {len(errors)} problem(s): {errors[0]['message']}",
        code="template_invalid",
        errors=errors,
    )


def missing_labels(definition: TemplateDefinition) -> list[dict[str, Any]]:
    """Every text shown to observers that lacks one of the template's languages.

    Checked when a template is loaded or checked, not when a stored one is read back: a
    template published before this check keeps working as it was.
    """
    langs = definition.languages
    problems: list[dict[str, Any]] = []

    def need(labels: dict[str, str] | None, path: list[Any], what: str) -> None:
        for lang in langs:
            if labels is not None and lang not in labels:
                problems.append(
                    {
                        "path": [*path, lang],
                        "code": "label_missing",
                        "message": f"{what} has no text in {lang!r}, one of the template's "
                        f"languages {', '.join(langs)}",
                    }
                )

    need(definition.title, ["title"], "the title")
    for i, section in enumerate(definition.sections):
        at = ["sections", i]
        need(section.title, [*at, "title"], f"section {section.code}")
        for j, q in enumerate(section.questions):
            qat = [*at, "questions", j]
            need(q.label, [*qat, "label"], f"question {q.code}")
            need(q.hint, [*qat, "hint"], f"question {q.code}'s hint")
            for k, o in enumerate(q.options or []):
                need(o.label, [*qat, "options", k, "label"], f"question {q.code} option {o.code}")
    return problems


@lru_cache(maxsize=1)
def default_definition() -> TemplateDefinition:
    """The shipped checklist (parsed once per process; callers copy before changing it)."""
    text = resources.files("api.data").joinpath(DEFAULT_TEMPLATE).read_text(encoding="utf-8")
    return parse_definition(text, DEFAULT_TEMPLATE)


def title_of(definition: dict[str, Any]) -> str:
    title = definition.get("title") or {}
    langs = definition.get("languages") or []
    return str(
        title.get(langs[0]) if langs and langs[0] in title else next(iter(title.values()), "")
    )


def create(
    session: Session, mission_id: uuid.UUID, definition: TemplateDefinition, publish: bool = False
) -> ChecklistTemplate:
    existing = session.scalar(
        select(ChecklistTemplate).where(
            col(ChecklistTemplate.mission_id) == mission_id,
            col(ChecklistTemplate.code) == definition.code,
            col(ChecklistTemplate.version) == definition.version,
        )
    )
    data = definition.model_dump(mode="json", by_alias=True, exclude_none=True)
    if existing is not None:
        if existing.status != TemplateStatus.draft:
            if existing.definition == data:
                return existing  # loading the same published template again changes nothing
            raise Conflict(
                f"template {definition.code} version {definition.version} is published and "
                "cannot change; give the new form a higher version",
                code="template_published",
            )
        existing.definition = data
        tpl = existing
    else:
        tpl = ChecklistTemplate(
            mission_id=mission_id,
            code=definition.code,
            version=definition.version,
            definition=data,
        )
        session.add(tpl)
    session.flush()
    if publish:
        publish_template(session, tpl)
    return tpl


def publish_template(session: Session, tpl: ChecklistTemplate) -> ChecklistTemplate:
    if tpl.status == TemplateStatus.draft:
        tpl.status = TemplateStatus.published
        tpl.published_at = utcnow()
        session.flush()
        # The findings read labels, the protocol and the statement's roles from the
        # published templates: their views are due again, checklists or not, and the
        # counting figures are counted again if the protocol changed.
        from api.services.findings.fold import counting_due

        counting_due(session, tpl.mission_id)
    return tpl


def get(session: Session, mission_id: uuid.UUID, code: str, version: int) -> ChecklistTemplate:
    tpl = session.scalar(
        select(ChecklistTemplate).where(
            col(ChecklistTemplate.mission_id) == mission_id,
            col(ChecklistTemplate.code) == code,
            col(ChecklistTemplate.version) == version,
        )
    )
    if tpl is None:
        raise NotFound(
            f"no template {code} version {version} in this mission", code="template_not_found"
        )
    return tpl


def list_for_mission(
    session: Session, mission_id: uuid.UUID, published_only: bool = False
) -> list[ChecklistTemplate]:
    q = select(ChecklistTemplate).where(col(ChecklistTemplate.mission_id) == mission_id)
    if published_only:
        q = q.where(col(ChecklistTemplate.status) == TemplateStatus.published)
    return list(
        session.scalars(q.order_by(col(ChecklistTemplate.code), col(ChecklistTemplate.version)))
    )


def next_version(session: Session, mission_id: uuid.UUID, code: str) -> int:
    current = session.scalar(
        select(func.max(col(ChecklistTemplate.version))).where(
            col(ChecklistTemplate.mission_id) == mission_id, col(ChecklistTemplate.code) == code
        )
    )
    return (current or 0) + 1


@dataclass(frozen=True, slots=True)
class IntakeTemplate:
    id: uuid.UUID
    compiled: CompiledTemplate | None  # None while the version is a draft


# Published versions never change, so each process keeps their compiled form after the first
# read: intake then neither queries nor re-parses the (large) definition. Drafts are read
# afresh every time, so publishing takes effect at once on every process.
_published: dict[tuple[uuid.UUID, str, int], IntakeTemplate] = {}


def for_intake(
    session: Session, mission_id: uuid.UUID, code: str, version: int
) -> IntakeTemplate | None:
    """The template a checklist names, compiled if published; None if there is no such one."""
    key = (mission_id, code, version)
    cached = _published.get(key)
    if cached is not None:
        return cached
    row = session.execute(
        select(
            col(ChecklistTemplate.id),
            col(ChecklistTemplate.status),
            col(ChecklistTemplate.definition),
        ).where(
            col(ChecklistTemplate.mission_id) == mission_id,
            col(ChecklistTemplate.code) == code,
            col(ChecklistTemplate.version) == version,
        )
    ).first()
    if row is None:
        return None
    if row.status != TemplateStatus.published:
        return IntakeTemplate(row.id, None)
    found = IntakeTemplate(
        row.id, CompiledTemplate(TemplateDefinition.model_validate(row.definition))
    )
    _published[key] = found
    return found


def forget_published() -> None:
    """Drop the cache (only for tests that delete templates, which the service never does)."""
    _published.clear()


def dump_json(definition: TemplateDefinition) -> str:
    return json.dumps(definition.model_dump(mode="json", by_alias=True, exclude_none=True))
