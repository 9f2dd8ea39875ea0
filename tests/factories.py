"""Plain factory functions for tests: each takes a session (or client) and overrides."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from api.checklist_schema import CompiledTemplate, QuestionType, TemplateDefinition
from api.services import credentials, missions, observers, stations, templates
from models import Mission, Observer, Role
from models.mission import MissionCreate
from models.observer import ObserverCreate


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_mission(session: Session, **overrides: Any) -> tuple[Mission, str]:
    """A mission with the default checklist published; returns it and an admin token."""
    data: dict[str, Any] = {
        "name": "Test mission",
        "country": "Kazakhstan",
        "election_date": date(2024, 10, 6),
        "timezone": "Asia/Almaty",
        "languages": ["en", "ru"],
        "sampling": "purposive",
    }
    data.update(overrides)
    mission, admin = missions.create(session, MissionCreate(**data))
    session.commit()
    return mission, admin.token


def make_station(
    session: Session, mission_id: uuid.UUID, code: str = "S-001", **overrides: Any
) -> str:
    row: dict[str, Any] = {
        "code": code,
        "name": f"Station {code}",
        "region": "Astana",
        "district": "Esil district",
        "registered_voters": 1500,
    }
    row.update(overrides)
    if "country" in overrides:
        row.pop("region", None)
        row.pop("district", None)
    report = stations.upsert_stations(session, mission_id, [(1, row)])
    assert not report.problems, report.problems
    session.commit()
    return code


def make_observer(
    session: Session,
    mission_id: uuid.UUID,
    stations_: list[str] | None = None,
    code: str | None = None,
    team: str | None = "Team 1",
    **overrides: Any,
) -> tuple[Observer, str]:
    """An observer assigned to `stations_`, with an observer token."""
    code = code or f"O-{uuid.uuid4().hex[:6]}"
    obs, _ = observers.create_or_update(
        session,
        mission_id,
        ObserverCreate(
            code=code,
            name=overrides.pop("name", f"Observer {code}"),
            team=team,
            stations=stations_ or [],
            **overrides,
        ),
    )
    issued = credentials.issue(session, mission_id, Role.observer, f"phone {code}", obs.id)
    session.commit()
    return obs, issued.token


def make_token(session: Session, mission_id: uuid.UUID, role: Role) -> str:
    issued = credentials.issue(session, mission_id, role, f"test {role.value}")
    session.commit()
    return issued.token


def app_with_settings(**changes: Any) -> Any:
    """The app with some settings changed, e.g. `app_with_settings(rate_limit_per_minute=3)`."""
    from api.config import Settings
    from api.deps import current_settings
    from api.main import create_app

    app = create_app()
    inner = app
    while not hasattr(inner, "dependency_overrides"):  # through the body middlewares
        inner = inner.app
    inner.dependency_overrides[current_settings] = lambda: Settings(**changes)
    return app


def default_template() -> CompiledTemplate:
    return CompiledTemplate(templates.default_definition())


def answers_for(
    phase: str,
    overrides: dict[str, Any] | None = None,
    definition: TemplateDefinition | None = None,
) -> dict[str, Any]:
    """A complete, valid, unremarkable answer set for one phase (overrides win)."""
    ct = CompiledTemplate(definition) if definition else default_template()
    overrides = overrides or {}
    answers: dict[str, Any] = {}
    chosen: dict[str, set[str]] = {}
    for code, cq in ct.questions.items():
        if phase not in cq.phases:
            continue
        if cq.show_if_question and not (chosen.get(cq.show_if_question, set()) & cq.show_if_values):
            continue
        value = overrides[code] if code in overrides else _plain_answer(cq)
        if value is None:
            continue
        answers[code] = value
        chosen[code] = {str(v) for v in value} if isinstance(value, list) else {str(value)}
    return answers


def _plain_answer(cq: Any) -> Any:
    q = cq.q
    if q.type == QuestionType.text:
        return "all calm" if q.required else None
    if q.type == QuestionType.integer:
        return q.min if q.min is not None else 0
    if q.type == QuestionType.time:
        return "08:00"
    if q.type == QuestionType.scale4:
        return "good"
    if q.type == QuestionType.yes_no:
        return "no" if "yes" in cq.critical else "yes"
    codes = [o.code for o in q.options if o.code not in cq.critical and not o.na]
    if q.type == QuestionType.multi:
        return None if not q.required else [codes[0]]
    if "none" in codes:
        return "none"
    return codes[0]


def checklist_payload(
    station: str, phase: str = "voting", answers: dict[str, Any] | None = None, **overrides: Any
) -> dict[str, Any]:
    """A valid checklist body for the default template."""
    body: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "station": station,
        "template": "default",
        "template_version": 1,
        "phase": phase,
        "observed_at": (datetime.now(UTC) - timedelta(minutes=5)).astimezone().isoformat(),
        "answers": answers if answers is not None else answers_for(phase),
    }
    body.update(overrides)
    return body


__all__ = [
    "auth",
    "make_mission",
    "make_station",
    "make_observer",
    "make_token",
    "app_with_settings",
    "answers_for",
    "checklist_payload",
    "templates",
]


def mission_with_staff(session: Any) -> dict[str, Any]:
    """A mission with station S-1, an observer assigned to it, and an analyst: the tokens
    of the admin, the observer and the analyst, and the mission."""
    mission, admin = make_mission(session)
    make_station(session, mission.id, "S-1")
    _, observer = make_observer(session, mission.id, ["S-1"])
    analyst = make_token(session, mission.id, Role.analyst)
    return {"mission": mission, "admin": admin, "observer": observer, "analyst": analyst}


def every_kind_template(code: str = "every", version: int = 1) -> TemplateDefinition:
    """A small template with every question type and rule a form can carry: integer bounds,
    'not applicable' on numbers and times, show_if on closed, number and text answers, a
    section for all phases and one for a single phase, a third language."""

    def lab(en: str) -> dict[str, str]:
        return {"en": en, "ru": f"{en} (ru)", "kk": f"{en} (kk)"}

    return TemplateDefinition.model_validate(
        {
            "code": code,
            "version": version,
            "title": lab("Every kind"),
            "languages": ["en", "ru", "kk"],
            "sections": [
                {
                    "code": "K",
                    "title": lab("All phases"),
                    "questions": [
                        {"code": "K1", "type": "yes_no", "required": True, "label": lab("Open?"),
                         "critical": ["no"]},
                        {"code": "K2", "type": "integer", "label": lab("Voters in the queue"),
                         "min": 0, "max": 5000, "allow_na": True, "required": True,
                         "hint": lab("Count them")},
                        {"code": "K3", "type": "multi", "label": lab("Which problems"),
                         "allow_na": True, "show_if": {"question": "K1", "equals": "no"},
                         "options": [{"code": "late", "label": lab("It's late")},
                                     {"code": "closed", "label": lab("Closed")}]},
                        {"code": "K4", "type": "text", "label": lab("Why"), "max_length": 50,
                         "show_if": {"question": "K2", "in": [0, 1]}},
                        {"code": "K5", "type": "time", "label": lab("Arrival"), "allow_na": True},
                        {"code": "K6", "type": "scale4", "label": lab("Overall"),
                         "required": True},
                    ],
                },
                {
                    "code": "L",
                    "title": lab("Closing only"),
                    "phases": ["closing"],
                    "questions": [
                        {"code": "L1", "type": "integer", "label": lab("Ballots"), "min": 0},
                        {"code": "L2", "type": "integer", "label": lab("Spoiled"), "max": 100},
                        {"code": "L3", "type": "single", "label": lab("Protocol"),
                         "options": [{"code": "posted", "label": lab("Posted")},
                                     {"code": "n_a", "label": lab("No protocol"), "na": True}],
                         "show_if": {"question": "K2", "equals": 3}},
                    ],
                },
            ],
        }
    )  # fmt: skip


def migrated_mission(url: str, stations: list[str]) -> tuple[Any, uuid.UUID]:
    """Migrate the database at `url` and make a mission with `stations`: (engine, mission
    id), for the tests that run real servers against a database of their own."""
    from api import migrate
    from api.db import make_engine

    migrate.upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session:
        mission_id = make_mission(session)[0].id
        for code in stations:
            make_station(session, mission_id, code)
    return engine, mission_id
