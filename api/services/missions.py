"""Missions: creation (with the default checklist and a first admin token), reading, updates."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from api import ratelimit
from api.errors import NotFound
from api.services import audit, credentials, templates
from api.services.findings import fold
from api.services.sms.config import sms_settings
from models import Mission, Role
from models.credential import CredentialIssued
from models.mission import MissionCreate, MissionPublic, MissionUpdate


def create(
    session: Session,
    body: MissionCreate,
    created_by_id: uuid.UUID | None = None,
    with_default_template: bool = True,
) -> tuple[Mission, CredentialIssued]:
    sms_settings(body.settings, ("body", "settings"))  # a broken block fails here, not per SMS
    mission = Mission.model_validate(body)
    session.add(mission)
    session.flush()
    if with_default_template:
        templates.create(session, mission.id, templates.default_definition(), publish=True)
    admin = credentials.issue(
        session, mission.id, Role.admin, "first admin", created_by_id=created_by_id
    )
    return mission, admin


def get(session: Session, mission_id: uuid.UUID) -> Mission:
    mission = session.get(Mission, mission_id)
    if mission is None:
        raise NotFound(f"no mission {mission_id}", code="mission_not_found")
    return mission


def update(session: Session, mission_id: uuid.UUID, body: MissionUpdate) -> Mission:
    mission = get(session, mission_id)
    if body.settings is not None:
        sms_settings(body.settings, ("body", "settings"))
    changes = body.model_dump(mode="json", exclude_unset=True)
    # Through the public model: a row read back holds `sampling` as text, not the enum,
    # and dumping the row itself warned on every update.
    before = MissionPublic.model_validate(mission).model_dump(mode="json", include=set(changes))
    for k, v in body.model_dump(exclude_unset=True).items():
        setattr(mission, k, v)
    session.flush()
    ratelimit.forget_mission(mission_id)  # this process reads its limits afresh at once
    if "settings" in changes:  # the counting checks' thresholds may have changed
        fold.counting_due(session, mission_id)
    audit.note(session, "mission.update", f"mission/{mission_id}", before, changes)
    return mission
