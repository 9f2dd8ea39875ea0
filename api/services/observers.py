"""Observers, teams and the deployment plan (assignments)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session
from sqlmodel import col

from api.errors import Invalid, NotFound
from api.sanitize import CsvReader
from api.services import audit
from api.services.sql import insert_ignore
from models import Assignment, Observer, Station, Team
from models.base import table_of, utcnow
from models.observer import ObserverCreate, ObserverPublic, ObserverUpdate
from models.station import ImportProblem, ImportReport

ASG = table_of(Assignment)
TEAM = table_of(Team)
OBS_CSV_COLUMNS = ("code", "name", "team", "phone", "language", "stations")


def team_id(session: Session, mission_id: uuid.UUID, name: str | None) -> uuid.UUID | None:
    if not name:
        return None
    insert_ignore(
        session,
        TEAM,
        [
            {
                "id": uuid.uuid4(),
                "mission_id": mission_id,
                "name": name,
                "created_at": utcnow(),
            }
        ],
        ["mission_id", "name"],
    )
    return session.scalar(
        select(col(Team.id)).where(col(Team.mission_id) == mission_id, col(Team.name) == name)
    )


def station_ids(session: Session, mission_id: uuid.UUID, codes: list[str]) -> dict[str, uuid.UUID]:
    """Map codes to ids, or raise naming every unknown code."""
    if not codes:
        return {}
    found = dict(
        session.execute(
            select(col(Station.code), col(Station.id)).where(
                col(Station.mission_id) == mission_id, col(Station.code).in_(codes)
            )
        ).all()
    )
    unknown = [c for c in codes if c not in found]
    if unknown:
        raise Invalid(
            f"unknown station code(s): {', '.join(unknown[:20])}",
            code="unknown_station",
            errors=[
                {
                    "path": ["stations", codes.index(c)],
                    "code": "unknown_station",
                    "message": f"no station {c!r} in this mission",
                }
                for c in unknown
            ],
        )
    return found


def plan_changed(session: Session, mission_id: uuid.UUID) -> None:
    """The deployment plan, or an observer's name, changed: coverage (missing teams and
    observers, by name) is due again, even before any checklist moves the data version."""
    from api.services.findings.fold import bump_versions  # the fold imports the services

    bump_versions(session, [mission_id])


def _replanned(
    session: Session,
    mission_id: uuid.UUID,
    observer_id: uuid.UUID,
    left_team: uuid.UUID | None = None,
) -> None:
    """The observer's stations or team changed: the fold counts its coverage rows again
    (and those of the team it left)."""
    from api.services.findings import plans  # the findings import the services

    plans.replanned(session, mission_id, observer_id, left_team)


def set_assignments(
    session: Session,
    mission_id: uuid.UUID,
    observer_id: uuid.UUID,
    codes: list[str],
    announce: bool = True,
) -> bool:
    """Replace the observer's assigned stations; True if they changed (and, with
    `announce`, the mission's views are due again)."""
    ids = station_ids(session, mission_id, list(dict.fromkeys(codes)))
    before = set(session.scalars(select(ASG.c.station_id).where(ASG.c.observer_id == observer_id)))
    if before == set(ids.values()):
        return False
    session.execute(delete(ASG).where(ASG.c.observer_id == observer_id))
    insert_ignore(
        session,
        ASG,
        [
            {"observer_id": observer_id, "station_id": sid, "mission_id": mission_id}
            for sid in ids.values()
        ],
        ["observer_id", "station_id"],
    )
    _replanned(session, mission_id, observer_id)
    if announce:
        plan_changed(session, mission_id)
    return True


def create_or_update(
    session: Session, mission_id: uuid.UUID, body: ObserverCreate, announce: bool = True
) -> tuple[Observer, bool]:
    """Upsert by the observer's code; the station list replaces the previous plan. Also
    whether what coverage shows of it changed (its stations, team or name; with
    `announce`, the views are due)."""
    # Locked: the team it may leave is read here, and no other change may move it meanwhile.
    obs = session.scalar(
        select(Observer)
        .where(col(Observer.mission_id) == mission_id, col(Observer.code) == body.code)
        .with_for_update()
    )
    tid = team_id(session, mission_id, body.team)
    moved = obs is not None and obs.team_id != tid
    renamed = obs is not None and obs.name != body.name
    if obs is not None and moved:
        _replanned(session, mission_id, obs.id, left_team=obs.team_id or obs.id)
    if obs is None:
        obs = Observer(
            mission_id=mission_id,
            code=body.code,
            name=body.name,
            phone=body.phone,
            language=body.language,
            team_id=tid,
        )
        session.add(obs)
    else:
        obs.name, obs.phone, obs.language, obs.team_id = body.name, body.phone, body.language, tid
    session.flush()
    changed = set_assignments(session, mission_id, obs.id, body.stations, announce=False)
    if (changed or moved or renamed) and announce:
        plan_changed(session, mission_id)
    return obs, changed or moved or renamed


def get(
    session: Session, mission_id: uuid.UUID, observer_id: uuid.UUID, for_update: bool = False
) -> Observer:
    """The mission's observer; `for_update` locks its row until the transaction ends (a
    change of its team reads the team it leaves, which no other change may move meanwhile)."""
    obs = session.get(Observer, observer_id, with_for_update=for_update)
    if obs is None or obs.mission_id != mission_id:
        raise NotFound(f"no observer {observer_id} in this mission", code="observer_not_found")
    return obs


def update(
    session: Session, mission_id: uuid.UUID, observer_id: uuid.UUID, body: ObserverUpdate
) -> Observer:
    data = body.model_dump(exclude_unset=True)
    obs = get(session, mission_id, observer_id, for_update="team" in data)
    before = obs.model_dump(mode="json", include=set(data) - {"team"})
    if "team" in before or "team" in data:
        before["team_id"] = str(obs.team_id) if obs.team_id else None
    audit.note(session, "observer.update", f"observer/{observer_id}", before, dict(data))
    if "team" in data:
        tid = team_id(session, mission_id, data.pop("team"))
        if tid != obs.team_id:
            _replanned(session, mission_id, obs.id, left_team=obs.team_id or obs.id)
            plan_changed(session, mission_id)  # teams_missing counts per team
        obs.team_id = tid
    if data.get("name", obs.name) != obs.name:
        plan_changed(session, mission_id)  # coverage names its missing observers
    for k, v in data.items():
        setattr(obs, k, v)
    session.flush()
    return obs


def public(session: Session, observers: list[Observer]) -> list[ObserverPublic]:
    if not observers:
        return []
    ids = [o.id for o in observers]
    teams = dict(
        session.execute(
            select(col(Team.id), col(Team.name)).where(
                col(Team.id).in_({o.team_id for o in observers if o.team_id})
            )
        ).all()
    )
    plan: dict[uuid.UUID, list[str]] = {i: [] for i in ids}
    for oid, code in session.execute(
        select(col(Assignment.observer_id), col(Station.code))
        .join(Station, col(Station.id) == col(Assignment.station_id))
        .where(col(Assignment.observer_id).in_(ids))
        .order_by(col(Station.code))
    ):
        plan[oid].append(code)
    return [
        ObserverPublic(
            id=o.id,
            code=o.code,
            name=o.name,
            phone=o.phone,
            language=o.language,
            team=teams.get(o.team_id) if o.team_id else None,
            stations=plan[o.id],
        )
        for o in observers
    ]


def list_observers(
    session: Session, mission_id: uuid.UUID, offset: int, limit: int
) -> tuple[list[ObserverPublic], int]:
    count = (
        session.scalar(
            select(func.count()).select_from(Observer).where(col(Observer.mission_id) == mission_id)
        )
        or 0
    )
    rows = list(
        session.scalars(
            select(Observer)
            .where(col(Observer.mission_id) == mission_id)
            .order_by(col(Observer.code))
            .offset(offset)
            .limit(limit)
        )
    )
    return public(session, rows), count


def parse_csv(text: str) -> Iterable[tuple[int, dict[str, Any]]]:
    reader = CsvReader(text)
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    unknown = [h for h in header if h not in OBS_CSV_COLUMNS]
    missing = [h for h in ("code", "name") if h not in header]
    if missing or unknown:
        raise Invalid(
            f"line 1 (header): missing {missing}, unknown {unknown}; the columns are "
            f"{', '.join(OBS_CSV_COLUMNS)}",
            code="csv_header",
        )
    reader.fieldnames = header
    for row in reader:
        clean = {k: v.strip() for k, v in row.items() if k and v and v.strip()}
        clean["stations"] = (clean.get("stations") or "").split()
        yield reader.line_num, clean


def import_csv(
    session: Session, mission_id: uuid.UUID, text: str, dry_run: bool = False
) -> ImportReport:
    """Upsert observers by code with their team and stations (space-separated codes)."""
    problems: list[ImportProblem] = []
    bodies: list[ObserverCreate] = []
    known = set(
        session.scalars(select(col(Station.code)).where(col(Station.mission_id) == mission_id))
    )
    existing = set(
        session.scalars(select(col(Observer.code)).where(col(Observer.mission_id) == mission_id))
    )
    for line, raw in parse_csv(text):
        try:
            body = ObserverCreate.model_validate(raw)
        except ValidationError as exc:
            problems.append(
                ImportProblem(
                    line=line,
                    reason="; ".join(
                        f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()
                    ),
                )
            )
            continue
        unknown = [c for c in body.stations if c not in known]
        if unknown:
            problems.append(
                ImportProblem(line=line, reason=f"unknown station(s) {', '.join(unknown)}")
            )
            continue
        bodies.append(body)
    created = sum(1 for b in bodies if b.code not in existing)
    report = ImportReport(
        dry_run=dry_run,
        rows=len(bodies) + len(problems),
        created=created,
        updated=len(bodies) - created,
        unchanged=0,
        problems=problems,
    )
    if not dry_run and not problems:
        changed = [create_or_update(session, mission_id, b, announce=False)[1] for b in bodies]
        if any(changed):
            plan_changed(session, mission_id)
    return report
