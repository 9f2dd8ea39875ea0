"""The deployment plan against the visits, per observer and per team: what coverage's
missing observers and teams list, kept by the fold in rows bounded by the observers and
teams (`finding_observer_plan`, `finding_team_plan`) rather than joined from every
assignment on each compute.

The fold moves the rows by the visits each batch changed (`count_visits`). A change of
the plan (an observer's stations or team) queues the observer, and the team it left
(`replanned`, into `finding_plan_change`); the next fold counts their rows again
(`count_replanned`), and until then coverage joins the plan as before (`counted`). A
mission's rows are counted whole by its first fold (`count_uncounted_missions`).

Per region the stations and those with an assigned observer (`finding_region_plan`) are
counted again for the whole mission after any queued change, stations imported or
moved included (`stations_changed`): a few rows, counted in well under a second, which
coverage's table would otherwise count from every station and assignment each time."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import (
    Select,
    and_,
    case,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.orm import Session

from api.services.findings.scope import FV, OBS, ST, Scope, kept_state
from api.services.sql import in_parts, one_of
from models import (
    Assignment,
    FindingObserverPlan,
    FindingPlanChange,
    FindingRegionPlan,
    FindingState,
    FindingTeamPlan,
)
from models.base import table_of
from models.checklist import Phase

ASG = table_of(Assignment)
FS = table_of(FindingState)
FOP = table_of(FindingObserverPlan)
FRP = table_of(FindingRegionPlan)
FTP = table_of(FindingTeamPlan)
PLC = table_of(FindingPlanChange)
ANY_PHASE = "all"  # the visits' and these rows' phase for a visit in any phase
PHASES = (ANY_PHASE, *(p.value for p in Phase))


def team_key(observers: Any = OBS) -> Any:
    """An observer's team, or the observer as a team of one."""
    return func.coalesce(observers.c.team_id, observers.c.id)


def replanned(
    session: Session,
    mission_id: uuid.UUID,
    observer_id: uuid.UUID,
    left_team: uuid.UUID | None = None,
) -> None:
    """An observer's stations or team changed (in this transaction): its plan rows and its
    team's are due again, and those of the team it left (`left_team`, a team key). The
    views are due again when the caller says so (`observers.plan_changed`)."""
    rows = [{"mission_id": mission_id, "observer_id": observer_id, "team_key": None}]
    if left_team is not None:
        rows.append({"mission_id": mission_id, "observer_id": None, "team_key": left_team})
    session.execute(PLC.insert(), rows)


def stations_changed(session: Session, mission_id: uuid.UUID) -> None:
    """The mission's stations were imported or changed (in this transaction): its rows per
    region are due again."""
    session.execute(PLC.insert(), [{"mission_id": mission_id}])


def counted(session: Session, scope: Scope) -> bool:
    """Whether the plan rows answer this scope's missing observers and teams: counted for
    the whole mission with no plan change waiting, and no filter they are not kept by (a
    place, `abroad=`, a team, a time window, a template)."""
    if scope.filters.needs_raw or scope.location_id is not None or scope.filters.abroad is not None:
        return False
    return current(session, scope.mission_id)


def current(session: Session, mission_id: uuid.UUID) -> bool:
    """Are the mission's plan rows counted, with no plan change waiting?"""
    return kept_state(session, mission_id).plan_current


def per_region(*where: Any) -> Select[Any]:
    """Per region of the stations `where` selects: its stations, and those with an
    assignment. The rows of `finding_region_plan`, or coverage's count without them.
    Counted apart and summed: the stations with an assignment found by a semi-join, as a
    filter (65 ms at 100,000 stations), not as a condition tested on each station (the
    two in one pass: 170 to 350 ms)."""
    assigned = exists().where(ASG.c.station_id == ST.c.id)
    keys = (ST.c.mission_id, ST.c.region_id)
    zero = literal(0)
    both = union_all(
        select(*keys, func.count().label("stations"), zero.label("assigned"))
        .where(*where)
        .group_by(*keys),
        select(*keys, zero, func.count()).where(*where, assigned).group_by(*keys),
    ).subquery("per_region")
    return select(
        both.c.mission_id,
        both.c.region_id,
        func.sum(both.c.stations).label("stations"),
        func.sum(both.c.assigned).label("assigned"),
    ).group_by(both.c.mission_id, both.c.region_id)


def _count_regions(session: Session, mission_id: Any) -> None:
    """Count the mission's rows per region again."""
    rows = per_region(ST.c.mission_id == mission_id)
    _count_again(session, FRP, FRP.c.mission_id == mission_id, rows)


def _phases() -> Any:
    return union_all(*(select(literal(p).label("phase")) for p in PHASES)).subquery("phases")


def _per_phase(plan: Any, seen: Any, key: str, *more: Any) -> Select[Any]:
    """Per `key` (an observer or a team) and phase, the stations of `plan` and those of
    them in `seen` (a visit of that phase), and `more` aggregates of `seen`: the rows
    these tables hold."""
    phases = _phases()
    return (
        select(
            plan.c[key],
            phases.c.phase,
            plan.c.mission_id,
            func.count().label("assigned"),
            func.count(seen.c.station_id).label("reported"),
            *more,
        )
        .select_from(
            plan.join(phases, true()).outerjoin(
                seen,
                and_(
                    seen.c[key] == plan.c[key],
                    seen.c.station_id == plan.c.station_id,
                    seen.c.phase == phases.c.phase,
                ),
            )
        )
        .group_by(plan.c[key], phases.c.phase, plan.c.mission_id)
    )


def _observer_rows(where: Any) -> Select[Any]:
    """Per observer (of the assignments `where` selects) and phase: stations assigned,
    reported from, and the last arrival among them, with the observer's code."""
    last = func.max(FV.c.last_received_at).label("last_received_at")
    counted = _per_phase(ASG, FV, "observer_id", last).where(where).subquery("counted")
    return select(*counted.c, OBS.c.code).join_from(counted, OBS, OBS.c.id == counted.c.observer_id)


def team_plan(joined: Any, conditions: list[Any], observers: Any = None) -> Select[Any]:
    """The stations of each team's plan (any member's assignment) among the assignments
    `joined` (a join that starts from them and takes in the observers) and `conditions`
    select, of the `observers` given (their ids, or a query of them; all when None)."""
    query = (
        select(team_key().label("team_key"), ASG.c.station_id, ASG.c.mission_id)
        .select_from(joined)
        .where(*conditions)
        .distinct()
    )
    return query.where(one_of(ASG.c.observer_id, observers)) if observers is not None else query


def team_seen(visits: Any, columns: list[str], observers: Any = None) -> Select[Any]:
    """The stations each team reported from: any member's visit among `visits` (with an
    `observer_id` and these `columns`), of the `observers` given (all when None)."""
    member = OBS.alias("member")
    query = (
        select(team_key(member).label("team_key"), *(visits.c[name] for name in columns))
        .select_from(visits.join(member, member.c.id == visits.c.observer_id))
        .distinct()
    )
    return query.where(one_of(visits.c.observer_id, observers)) if observers is not None else query


def members(keys: Any) -> Select[Any]:
    """The observers of the teams `keys` selects: the assignments and visits are read by
    observer (their keys start with it), not by team."""
    return select(OBS.c.id).where(team_key().in_(keys))


def _team_rows(plan_where: list[Any], seen_where: list[Any], keys: Any = None) -> Select[Any]:
    """Per team (of `keys`, or all those the conditions select) and phase: stations
    assigned to any member, and reported from by any."""
    joined = ASG.join(OBS, OBS.c.id == ASG.c.observer_id)
    observers = members(keys) if keys is not None else None
    plan = team_plan(joined, plan_where, observers).subquery("plan")
    seen = team_seen(FV, ["station_id", "phase"], observers).where(*seen_where).subquery("seen")
    return _per_phase(plan, seen, "team_key")


def missing_where(table: Any, scope: Scope) -> tuple[Any, ...]:
    """The rows of `table` (observers' or teams') with a station not reported from, in the
    scope's phase (any phase without one)."""
    return (
        table.c.mission_id == scope.mission_id,
        table.c.phase == (scope.filters.phase or ANY_PHASE),
        table.c.reported < table.c.assigned,
    )


def missing(table: Any, scope: Scope, *columns: Any) -> Any:
    """`columns` of the rows `missing_where` selects, as a subquery."""
    return (
        select(*columns, table.c.assigned, table.c.reported)
        .where(*missing_where(table, scope))
        .subquery("missing")
    )


def count_visits(session: Session, visits: Any) -> None:
    """Move the plan rows by the visits a fold batch changed (`visits`: each visit's
    observer, station and phase, and its last arrival before the batch and after it; NULL
    for no visit). Only what changed is read: an observer's row gains or loses the
    stations of its plan whose visit came or went, and keeps the later arrival (or counts
    it again from its visits where one left); a team's row gains or loses a station of its
    plan where the team's first visit came or its last one went. A mission whose plan
    is counted has a row for every observer and team with a station, in every phase."""
    was = case((visits.c.was_last.is_(None), 0), else_=1)
    now = case((visits.c.now_last.is_(None), 0), else_=1)
    lost = case(
        (
            and_(
                visits.c.was_last.is_not(None),
                or_(visits.c.now_last.is_(None), visits.c.now_last < visits.c.was_last),
            ),
            1,
        ),
        else_=0,
    )
    assigned = ASG.join(
        visits,
        and_(ASG.c.observer_id == visits.c.observer_id, ASG.c.station_id == visits.c.station_id),
    )
    moved = (
        select(
            visits.c.observer_id,
            visits.c.phase,
            func.sum(now - was).label("delta"),
            func.max(visits.c.now_last).label("newest"),
            func.max(lost).label("lost"),
        )
        .select_from(assigned)
        .group_by(visits.c.observer_id, visits.c.phase)
        .subquery("moved")
    )
    last_again = (
        select(func.max(FV.c.last_received_at))
        .select_from(
            FV.join(
                ASG,
                and_(ASG.c.observer_id == FV.c.observer_id, ASG.c.station_id == FV.c.station_id),
            )
        )
        .where(FV.c.observer_id == FOP.c.observer_id, FV.c.phase == FOP.c.phase)
        .scalar_subquery()
    )
    later = or_(FOP.c.last_received_at.is_(None), moved.c.newest > FOP.c.last_received_at)
    session.execute(
        update(FOP)
        .where(FOP.c.observer_id == moved.c.observer_id, FOP.c.phase == moved.c.phase)
        .values(
            reported=FOP.c.reported + moved.c.delta,
            last_received_at=case(
                (moved.c.lost == 1, last_again),
                (later, moved.c.newest),
                else_=FOP.c.last_received_at,
            ),
        )
    )
    # Per team, station and phase among the batch's visits: whether any of the members'
    # visits there was, and is. The other members' visits there did not change.
    each = (
        select(
            OBS.c.team_id,
            team_key().label("team_key"),
            visits.c.station_id,
            visits.c.phase,
            was.label("was"),
            now.label("now"),
        )
        .select_from(visits.join(OBS, OBS.c.id == visits.c.observer_id))
        .subquery("each")
    )
    changed = (
        select(
            each.c.team_id,
            each.c.team_key,
            each.c.station_id,
            each.c.phase,
            (func.max(each.c.now) - func.max(each.c.was)).label("delta"),
        )
        .group_by(each.c.team_id, each.c.team_key, each.c.station_id, each.c.phase)
        .having(func.max(each.c.now) != func.max(each.c.was))
        .subquery("changed")
    )
    member = OBS.alias("member")
    in_plan = exists(
        select(literal(1))
        .select_from(ASG.join(member, member.c.id == ASG.c.observer_id))
        .where(
            ASG.c.station_id == changed.c.station_id,
            or_(member.c.team_id == changed.c.team_id, member.c.id == changed.c.team_key),
        )
    )
    batch = visits.alias("batch")
    seen_by_another = exists(
        select(literal(1))
        .select_from(FV.join(member, member.c.id == FV.c.observer_id))
        .where(
            member.c.team_id == changed.c.team_id,
            FV.c.station_id == changed.c.station_id,
            FV.c.phase == changed.c.phase,
            ~exists(
                select(literal(1)).where(
                    batch.c.observer_id == FV.c.observer_id,
                    batch.c.station_id == FV.c.station_id,
                    batch.c.phase == FV.c.phase,
                )
            ),
        )
    )
    per_team = (
        select(changed.c.team_key, changed.c.phase, func.sum(changed.c.delta).label("delta"))
        .where(in_plan, ~seen_by_another)
        .group_by(changed.c.team_key, changed.c.phase)
        .subquery("per_team")
    )
    session.execute(
        update(FTP)
        .where(FTP.c.team_key == per_team.c.team_key, FTP.c.phase == per_team.c.phase)
        .values(reported=FTP.c.reported + per_team.c.delta)
    )


def count_uncounted_missions(session: Session) -> None:
    """Count every plan row of the missions not counted whole yet (after the upgrade that
    added them, a rebuild, or a mission's first fold)."""
    missions = session.scalars(
        select(FS.c.mission_id).where(or_(FS.c.plan_counted.is_(None), ~FS.c.plan_counted))
    ).all()
    for mission_id in missions:
        observers = _observer_rows(ASG.c.mission_id == mission_id)
        _count_again(session, FOP, FOP.c.mission_id == mission_id, observers)
        teams = _team_rows([ASG.c.mission_id == mission_id], [FV.c.mission_id == mission_id])
        _count_again(session, FTP, FTP.c.mission_id == mission_id, teams)
        _count_regions(session, mission_id)
        session.execute(update(FS).where(FS.c.mission_id == mission_id).values(plan_counted=True))


def count_replanned(session: Session) -> None:
    """Count again the rows of the observers and teams whose plan changed (the queue), and
    the rows per region of their missions, and take from the queue exactly the changes
    read: on PostgreSQL one committed meanwhile, with a lower id, waits for the next fold.
    The plan they changed committed with them, so the counts below, read after them, see
    it."""
    queued = session.execute(
        select(PLC.c.id, PLC.c.mission_id, PLC.c.observer_id, PLC.c.team_key)
    ).all()
    if not queued:
        return
    for mission_id in {r.mission_id for r in queued}:
        _count_regions(session, mission_id)
    observers = {r.observer_id for r in queued if r.observer_id is not None}
    keys = {r.team_key for r in queued if r.team_key is not None}  # the teams left
    for part in in_parts(sorted(observers)):
        keys.update(session.scalars(select(team_key()).where(OBS.c.id.in_(part))))
        _count_again(
            session, FOP, FOP.c.observer_id.in_(part), _observer_rows(ASG.c.observer_id.in_(part))
        )
    for part in in_parts(sorted(keys)):
        _count_again(session, FTP, FTP.c.team_key.in_(part), _team_rows([], [], part))
    for part in in_parts(sorted(r.id for r in queued)):
        session.execute(delete(PLC).where(PLC.c.id.in_(part)))


def _count_again(session: Session, table: Any, stale: Any, rows: Select[Any]) -> None:
    """Replace the rows of `table` that `stale` selects with those `rows` counts."""
    session.execute(delete(table).where(stale))
    session.execute(table.insert().from_select(list(rows.selected_columns.keys()), rows))
