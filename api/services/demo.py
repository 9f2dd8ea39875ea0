"""A demo mission shaped like a small international mission (24 stations in the capital,
four abroad), for trying Pollcheck out. Loading it again changes nothing."""

from __future__ import annotations

import uuid
from datetime import date
from importlib import resources
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlmodel import col

from api.security import token_digest
from api.services import credentials, observers, stations, templates
from models import Credential, Mission, Observer, Role, Sampling
from models.base import utcnow
from models.mission import MissionCreate

DEMO_MISSION_ID = uuid.UUID("5e1ec7ed-0000-4000-8000-000000000001")
DEMO_TOKENS_LABEL = "demo"


def _data(name: str) -> str:
    return resources.files("api.data").joinpath(name).read_text(encoding="utf-8")


def load(session: Session, credentials_file: Path) -> dict[str, str]:
    """Create the demo mission once; return its tokens (kept in `credentials_file`)."""
    if session.get(Mission, DEMO_MISSION_ID) is None:
        body = MissionCreate(
            name="Demo mission: referendum observation",
            country="Kazakhstan",
            election_date=date(2024, 10, 6),
            timezone="Asia/Almaty",
            languages=["en", "ru"],
            sampling=Sampling.purposive,
        )
        mission = Mission.model_validate(body)
        mission.id = DEMO_MISSION_ID
        session.add(mission)
        session.flush()
        templates.create(session, mission.id, templates.default_definition(), publish=True)
        stations.import_csv(session, mission.id, _data("demo_stations.csv"))
        observers.import_csv(session, mission.id, _data("demo_observers.csv"))
    tokens = _read(credentials_file)
    if tokens and _all_valid(session, tokens):
        return tokens
    # Tokens are stored only as hashes: when the file with the plain ones is gone, the old
    # demo tokens are revoked and new ones issued.
    for cred in session.scalars(
        select(Credential).where(
            col(Credential.mission_id) == DEMO_MISSION_ID, col(Credential.revoked_at).is_(None)
        )
    ):
        cred.revoked_at = utcnow()
    first = session.scalar(
        select(Observer)
        .where(col(Observer.mission_id) == DEMO_MISSION_ID)
        .order_by(col(Observer.code))
    )
    assert first is not None
    tokens = {
        "admin": credentials.issue(session, DEMO_MISSION_ID, Role.admin, "demo admin").token,
        "analyst": credentials.issue(session, DEMO_MISSION_ID, Role.analyst, "demo analyst").token,
        "viewer": credentials.issue(session, DEMO_MISSION_ID, Role.viewer, "demo dashboard").token,
        f"observer {first.code}": credentials.issue(
            session, DEMO_MISSION_ID, Role.observer, f"demo {first.code}", first.id
        ).token,
    }
    credentials_file.parent.mkdir(parents=True, exist_ok=True)
    credentials_file.write_text("".join(f"{k}={v}\n" for k, v in tokens.items()))
    credentials_file.chmod(0o600)
    return tokens


def _all_valid(session: Session, tokens: dict[str, str]) -> bool:
    digests = {token_digest(t) for t in tokens.values()}
    live = session.scalars(
        select(col(Credential.token_hash)).where(
            col(Credential.mission_id) == DEMO_MISSION_ID,
            col(Credential.revoked_at).is_(None),
            col(Credential.token_hash).in_(digests),
        )
    ).all()
    return len(live) == len(digests)


def _read(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
