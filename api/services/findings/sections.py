"""Coverage, incident reports and critical answers, mostly from what the fold keeps counted.

Critical answers per problem, region and phase come from the tallies (`critical_counts`),
incident reports per region, type, source and hour from `finding_incident`
(`incident_counts`), arrivals per hour from `finding_arrival`, visits from
`finding_visit`: rows bounded by the form, the plan and the hours, not by the checklists.
Where a filter needs what those counts are not kept by, the same figures are counted from
the fold's narrow rows of the counting checklists (`FA`, `applied_predicate`) and critical
answers (`FC`), and the arrivals (every checklist as it first came in, counted or not)
from the checklists; the tests hold both ways equal."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from sqlalchemy import and_, case, func, literal_column, or_, select
from sqlalchemy.orm import Session

from api.services.findings import plans
from api.services.findings.fold import AN, CRITICAL_ANY, FAR, FC, FI, FS, FT
from api.services.findings.plans import FOP, FTP
from api.services.findings.questions import QuestionInfo, incident_questions, incident_roles_key
from api.services.findings.scope import (
    CL,
    FA,
    FV,
    LOC,
    OBS,
    ST,
    TEAM,
    Scope,
    applied_predicate,
    checklist_predicate,
    kept_state,
    local_hour,
    once_per_snapshot,
    utc_hour,
)
from api.services.findings.stats import FindingsSettings, ratio_value, share_value
from api.services.sql import bound_or, one_of
from models import Assignment
from models.base import table_of
from models.checklist import Phase
from models.views import (
    ClusteringRule,
    CoverageSection,
    CriticalChecklist,
    CriticalProblem,
    CriticalRegion,
    CriticalSection,
    HourArrivals,
    HourCount,
    IncidentReport,
    IncidentsSection,
    IncidentType,
    MapSection,
    MissingObserver,
    MissingObservers,
    MissingTeam,
    MissingTeams,
    PhaseObserved,
    RegionCount,
    RegionCoverage,
    TeamMember,
)

ASG = table_of(Assignment)
LIST_LIMIT = 500
MAP_PHASES = tuple(p.value for p in Phase)  # a map station's phases, in the day's order


def _counted_regions(session: Session, scope: Scope) -> list[Any] | None:
    """The regions a scope takes in, where the fold's counts per region (incidents,
    arrivals) can answer it; None for the filters they are not kept by (team, time window,
    template, a place below a region)."""
    if scope.filters.needs_raw:
        return None
    return _regions_in_scope(scope, _region_names(session, scope))


def _regions_in_scope(scope: Scope, regions: dict[Any, tuple[str, bool]]) -> list[Any] | None:
    """Of the scope's top-level places (`_region_names`), those it takes in; None for a
    place below a region."""
    if scope.location_id is None:
        return list(regions)
    return [scope.location_id] if scope.location_id in regions else None


def _region_names(session: Session, scope: Scope) -> dict[Any, tuple[str, bool]]:
    """The scope's top-level places (regions, and countries abroad): with `abroad=`, only
    those on its side, so that no figure read per region (the observations a critical
    problem's spread is compared with) takes in places outside the scope."""
    query = select(LOC.c.id, LOC.c.path, LOC.c.abroad).where(
        LOC.c.mission_id == scope.mission_id, LOC.c.parent_id.is_(None)
    )
    if scope.filters.abroad is not None:
        query = query.where(LOC.c.abroad.is_(scope.filters.abroad))
    return once_per_snapshot(
        session,
        ("regions", scope.mission_id, scope.filters.abroad),
        lambda: {r.id: (r.path, r.abroad) for r in session.execute(query)},
    )


def _station_scope(scope: Scope) -> list[Any]:
    conds = [ST.c.mission_id == scope.mission_id]
    if scope.filters.abroad is not None:
        conds.append(ST.c.abroad.is_(scope.filters.abroad))
    if scope.location_id is not None:
        assert scope.location_path is not None
        conds.append(
            ST.c.location_id.in_(
                select(LOC.c.id).where(
                    LOC.c.mission_id == scope.mission_id,
                    (LOC.c.path == scope.location_path)
                    | LOC.c.path.startswith(scope.location_path + "/", autoescape=True),
                )
            )
        )
    return conds


def _assignments(scope: Scope, joined: Any) -> tuple[Any, list[Any]]:
    """The assignments in scope: `joined` (a join that starts from them) and the conditions
    to select them by. The stations are joined only for a place or `abroad=`: the
    assignments carry their mission."""
    if scope.location_id is None and scope.filters.abroad is None:
        return joined, [ASG.c.mission_id == scope.mission_id]
    return joined.join(ST, ST.c.id == ASG.c.station_id), _station_scope(scope)


def coverage(session: Session, scope: Scope) -> CoverageSection:
    """Stations planned and observed per region and phase, missing observers, arrivals."""
    regions = _region_names(session, scope)
    stations, assigned = _planned_per_region(session, scope, regions)
    observed: dict[Any, dict[str, tuple[int, int]]] = defaultdict(dict)
    # The tallies are kept per region: they answer a region's scope too, not a place below.
    counted = None if scope.filters.needs_raw else _regions_in_scope(scope, regions)
    if counted is None:
        rows = session.execute(
            select(
                ST.c.region_id,
                FA.c.phase,
                func.count(),
                func.count(FA.c.station_id.distinct()),
            )
            .select_from(FA.join(ST, ST.c.id == FA.c.station_id))
            .where(applied_predicate(scope))
            .group_by(ST.c.region_id, FA.c.phase)
        )
        for region_id, phase, n, s in rows:
            observed[region_id][phase] = (n, s)
        # Stations seen in any phase, as the tallies' phase `all` has them: whatever the
        # phase filter, as there.
        rows = session.execute(
            select(ST.c.region_id, func.count(), func.count(FA.c.station_id.distinct()))
            .select_from(FA.join(ST, ST.c.id == FA.c.station_id))
            .where(applied_predicate(scope, phase=False))
            .group_by(ST.c.region_id)
        )
        for region_id, n, s in rows:
            observed[region_id]["all"] = (n, s)
    elif not scope.empty:
        q = select(FT.c.node_id, FT.c.phase, FT.c.observations, FT.c.stations).where(
            FT.c.mission_id == scope.mission_id,
            FT.c.node_id.in_(counted or [scope.mission_id]),
            FT.c.question_code == "_",
            FT.c.observations > 0,
        )
        if scope.filters.phase is not None:
            q = q.where(FT.c.phase.in_([scope.filters.phase, "all"]))
        for node_id, phase, n, s in session.execute(q):
            observed[node_id][phase] = (n, s)
    by_region = []
    for region_id, (path, abroad) in sorted(regions.items(), key=lambda kv: kv[1]):
        if region_id not in stations:
            continue
        phases = observed.get(region_id, {})
        by_region.append(
            RegionCoverage(
                region=path,
                abroad=abroad,
                stations=stations.get(region_id, 0),
                assigned=assigned.get(region_id, 0),
                observed={
                    p: PhaseObserved(observations=n, stations=s)
                    for p, (n, s) in sorted(phases.items())
                    if p != "all"
                },
                observed_any_phase=phases.get("all", (0, 0))[1],
            )
        )
    return CoverageSection(
        regions=by_region,
        teams_missing=_teams_missing(session, scope),
        observers_missing=_observers_missing(session, scope),
        arrivals_per_hour=_arrivals(session, scope),
    )


def _planned_per_region(
    session: Session, scope: Scope, regions: dict[Any, tuple[str, bool]]
) -> tuple[dict[Any, int], dict[Any, int]]:
    """Per region in scope, its stations and those with an assigned observer: the fold's
    rows per region (`plans.FRP`) while they are current, whatever the filters but a
    place below a region; else counted from the stations and assignments."""
    in_scope = _regions_in_scope(scope, regions)
    if in_scope is not None and plans.current(session, scope.mission_id):
        query = select(plans.FRP.c.region_id, plans.FRP.c.stations, plans.FRP.c.assigned).where(
            plans.FRP.c.mission_id == scope.mission_id, plans.FRP.c.region_id.in_(in_scope)
        )
    else:
        counted = plans.per_region(*_station_scope(scope)).subquery("planned")
        query = select(counted.c.region_id, counted.c.stations, counted.c.assigned)
    rows = session.execute(query).all()
    return {r: int(n) for r, n, _ in rows}, {r: int(a) for r, _, a in rows if a}


def _visits(scope: Scope) -> Any:
    """Per observer and station, whether the observer filed a counting checklist there in
    scope and when the last came in (one row per pair that has one): from the fold's
    visits (`FV`, per phase and in any phase), or from the applied rows for filters the
    visits cannot answer (team, time window, template). The station's own scope (place,
    abroad) is the caller's, through the assignment it is joined to."""
    if scope.filters.needs_raw:
        return (
            select(
                FA.c.observer_id,
                FA.c.station_id,
                func.max(FA.c.received_at).label("last_received_at"),
            )
            .where(applied_predicate(scope))
            .group_by(FA.c.observer_id, FA.c.station_id)
            .subquery("visits")
        )
    return (
        select(FV.c.observer_id, FV.c.station_id, FV.c.last_received_at)
        .where(FV.c.mission_id == scope.mission_id, FV.c.phase == (scope.filters.phase or "all"))
        .subquery("visits")
    )


def _teams_missing(session: Session, scope: Scope) -> MissingTeams:
    """Teams with an assigned station that no member of the team has reported from.

    The unit is the team's station: observers work in pairs and file one checklist per
    visit, so a station is covered when any member of the team it is assigned to reported
    there. An observer without a team is a team of one. (`observers_missing` keeps each
    observer's own figures.) From the fold's plan rows where they answer the scope
    (`plans.counted`), else joined from the plan and the visits."""
    visits = _visits(scope)
    assigned, in_scope = _assignments(scope, ASG.join(OBS, OBS.c.id == ASG.c.observer_id))
    if scope.team_id is not None:
        in_scope = [*in_scope, OBS.c.team_id == scope.team_id]

    def planned(observers: Any = None) -> Any:
        """Each team's planned stations (of the teams of `observers`; all when None), with
        the station where a member reported there."""
        plan = plans.team_plan(assigned, in_scope, observers).subquery("plan")
        seen = plans.team_seen(visits, ["station_id"], observers).subquery("seen")
        return (
            select(plan.c.team_key, plan.c.station_id, seen.c.station_id.label("seen_station"))
            .select_from(
                plan.outerjoin(
                    seen,
                    and_(
                        seen.c.team_key == plan.c.team_key,
                        seen.c.station_id == plan.c.station_id,
                    ),
                )
            )
            .subquery("planned")
        )

    if plans.counted(session, scope):
        grouped = plans.missing(FTP, scope, FTP.c.team_key)
    else:
        every = planned()
        reported = func.count(every.c.seen_station)
        grouped = (
            select(every.c.team_key, func.count().label("assigned"), reported.label("reported"))
            .group_by(every.c.team_key)
            .having(reported < func.count())
            .subquery("grouped")
        )
    rows = session.execute(
        select(grouped, func.count().over().label("total"))
        .order_by(grouped.c.reported, grouped.c.team_key)
        .limit(LIST_LIMIT)
    ).all()
    if not rows:
        return MissingTeams(count=0, unit="team", data=[])
    keys = [r.team_key for r in rows]
    members: dict[Any, list[TeamMember]] = defaultdict(list)
    names: dict[Any, str | None] = {}
    ids = []
    key = plans.team_key()
    for team, team_name, observer_id, code, name in session.execute(
        select(key, TEAM.c.name, OBS.c.id, OBS.c.code, OBS.c.name)
        .select_from(OBS.outerjoin(TEAM, TEAM.c.id == OBS.c.team_id))
        .where(OBS.c.mission_id == scope.mission_id, one_of(key, keys))
        .order_by(OBS.c.code)
    ).all():
        members[team].append(TeamMember(code=code, name=name))
        names[team] = team_name
        ids.append(observer_id)
    missing_at: dict[Any, list[str]] = defaultdict(list)
    # The members by their ids rather than by a query of the teams, where one statement can
    # bind them: the planner then knows how few they are, and reads their assignments and
    # visits by index (half the time at 100,000 checklists).
    shown = planned(bound_or(session, ids, plans.members(keys)))
    # The stations' codes joined in, in one statement. Read apart by their ids (each
    # missing station's id sent back, then its code read), the Python that matched
    # 6,500 ids to their codes twice cost more than PostgreSQL's join, which hashes
    # every station of the mission (coverage at dawn on 100,000 stations, medians of 15:
    # 55 to 58 ms of its Python against 68 to 93, and 57 ms of SQL against 40).
    unseen = (
        select(shown.c.team_key, ST.c.code)
        .select_from(shown.join(ST, ST.c.id == shown.c.station_id))
        .where(shown.c.seen_station.is_(None))
        .order_by(ST.c.code)
    )
    for team, code in session.execute(unseen).all():
        missing_at[team].append(code)
    data = []
    for r in rows:
        team = names.get(r.team_key)
        data.append(
            MissingTeam(
                # A team of one is named by its observer's code.
                team=team if team is not None else members[r.team_key][0].code,
                members=members[r.team_key],
                assigned=int(r.assigned),
                reported=int(r.reported),
                missing=int(r.assigned) - int(r.reported),
                missing_stations=missing_at[r.team_key],
            )
        )
    return MissingTeams(count=int(rows[0].total), unit="team", data=data)


def _observers_missing(session: Session, scope: Scope) -> MissingObservers:
    """Observers with an assigned station they have not reported from, with their own
    figures: from the fold's plan rows where they answer the scope (`plans.counted`), else
    joined from the plan and the visits."""
    if plans.counted(session, scope):
        return _observers_missing_kept(session, scope)
    visits = _visits(scope)
    # Counted per observer first, over one row per assignment (assignments and visits
    # are both one per observer and station): no DISTINCT, and no sort of the joined
    # rows.
    reported = func.count(visits.c.station_id)
    assigned, in_scope = _assignments(scope, ASG)
    per_observer = (
        select(
            ASG.c.observer_id,
            func.count().label("assigned"),
            reported.label("reported"),
            func.max(visits.c.last_received_at).label("last_received_at"),
        )
        .select_from(
            assigned.outerjoin(
                visits,
                and_(
                    visits.c.observer_id == ASG.c.observer_id,
                    visits.c.station_id == ASG.c.station_id,
                ),
            )
        )
        .where(*in_scope)
        .group_by(ASG.c.observer_id)
        .having(reported < func.count())
        .subquery("per_observer")
    )
    query = select(
        OBS.c.code,
        OBS.c.name,
        TEAM.c.name.label("team"),
        per_observer.c.assigned,
        per_observer.c.reported,
        per_observer.c.last_received_at,
    ).select_from(
        per_observer.join(OBS, OBS.c.id == per_observer.c.observer_id).outerjoin(
            TEAM, TEAM.c.id == OBS.c.team_id
        )
    )
    if scope.team_id is not None:
        query = query.where(OBS.c.team_id == scope.team_id)
    sub = query.subquery()
    # The count of all of them rides on the first page (a window over the whole result):
    # counting in a query of its own ran the grouping twice, half a second each at 3,000
    # observers and 100,000 checklists.
    rows = session.execute(
        select(sub, func.count().over().label("total"))
        .order_by(sub.c.reported, sub.c.code)
        .limit(LIST_LIMIT)
    ).all()
    return MissingObservers(count=rows[0].total if rows else 0, data=_listed(rows))


def _observers_missing_kept(session: Session, scope: Scope) -> MissingObservers:
    """The missing observers of the mission from the fold's rows: the first page in the
    list's order from their index (`ix_finding_observer_plan_missing`), counted apart,
    rather than every observer's row joined and sorted (28 ms at 15,000 observers)."""
    missing = plans.missing_where(FOP, scope)
    first = (
        select(
            FOP.c.observer_id,
            FOP.c.code,
            FOP.c.assigned,
            FOP.c.reported,
            FOP.c.last_received_at,
        )
        .where(*missing)
        .order_by(FOP.c.reported, FOP.c.code)
        .limit(LIST_LIMIT)
        .subquery("first")
    )
    rows = session.execute(
        select(first, OBS.c.name, TEAM.c.name.label("team"))
        .select_from(
            first.join(OBS, OBS.c.id == first.c.observer_id).outerjoin(
                TEAM, TEAM.c.id == OBS.c.team_id
            )
        )
        .order_by(first.c.reported, first.c.code)
    ).all()
    total = len(rows)
    if total == LIST_LIMIT:
        total = session.scalar(select(func.count()).select_from(FOP).where(*missing)) or 0
    return MissingObservers(count=total, data=_listed(rows))


def _listed(rows: Sequence[Any]) -> list[MissingObserver]:
    """The listed observers with their own figures."""
    return [
        MissingObserver(
            code=r.code,
            name=r.name,
            team=r.team,
            assigned=r.assigned,
            reported=r.reported,
            last_received_at=r.last_received_at,
            missing=r.assigned - r.reported,
        )
        for r in rows
    ]


def _arrivals(session: Session, scope: Scope) -> list[HourArrivals]:
    """Checklists as they first arrived, per UTC hour and phase: as the fold counted them
    (`finding_arrival`), or, for filters those counts are not kept by (team, time window,
    template, a place below a region) or until the fold has counted the mission, from the
    checklists."""
    counted = _counted_arrivals(session, scope)
    rows = sorted(arrival_groups(session, scope) if counted is None else counted)
    out: dict[str, HourArrivals] = {}
    for h, phase, n in rows:
        slot = out.setdefault(h, HourArrivals(hour=h, checklists=0, phases={}))
        slot.checklists += n
        slot.phases[phase] = slot.phases.get(phase, 0) + n
    return list(out.values())


def arrival_groups(session: Session, scope: Scope) -> list[tuple[str, str, int]]:
    """(hour, phase, checklists) counted from the checklists in scope."""
    pred = checklist_predicate(scope, first_versions=True)
    if session.get_bind().dialect.name == "postgresql":
        # Truncated, then written out here: formatting every checklist's time in SQL
        # took half the query. (Read from the index alone: see `Checklist`'s indexes.)
        hour: Any = func.date_trunc("hour", func.timezone("UTC", CL.c.received_at))
    else:
        hour = utc_hour(session, CL.c.received_at)
    return [
        (h if isinstance(h, str) else h.strftime("%Y-%m-%dT%H:00Z"), phase, int(n))
        for h, phase, n in session.execute(
            select(hour, CL.c.phase, func.count()).where(pred).group_by(hour, CL.c.phase)
        )
    ]


def _counted_arrivals(session: Session, scope: Scope) -> list[tuple[str, str, int]] | None:
    """The arrivals the fold counted, in scope; None where those counts cannot answer."""
    in_scope = _counted_regions(session, scope)
    if in_scope is None or not kept_state(session, scope.mission_id).arrivals_counted:
        return None
    query = (
        select(FAR.c.hour, FAR.c.phase, func.sum(FAR.c.checklists))
        .where(FAR.c.mission_id == scope.mission_id, FAR.c.region_id.in_(in_scope))
        .group_by(FAR.c.hour, FAR.c.phase)
    )
    if scope.filters.phase is not None:
        query = query.where(FAR.c.phase == scope.filters.phase)
    return [(h, phase, int(n)) for h, phase, n in session.execute(query)]


def _answer_of(code: str | None, checklist_id: Any) -> Any:
    """A checklist's first answer to a question, read from its answers (exports)."""
    if code is None:
        return literal_column("NULL")
    return (
        select(AN.c.value)
        .where(AN.c.checklist_id == checklist_id, AN.c.question_code == code, AN.c.position == 0)
        .scalar_subquery()
    )


def incidents(
    session: Session, scope: Scope, questions: dict[str, QuestionInfo]
) -> IncidentsSection:
    """Incident reports counted by type, region and hour, with the reports behind them."""
    if scope.filters.phase not in (None, "incident") or scope.empty:
        return IncidentsSection(count=0, by_type=[], by_region=[], by_hour=[], reports=[])
    iq = incident_questions(questions)
    base = incident_reports(session, scope, iq)
    regions = _region_names(session, scope)
    grouped = incident_counts(session, scope, iq)
    if grouped is None:
        grouped = incident_groups(session, base)
    # Per type: reports in all, seen by the observer, reported to them.
    by_type: dict[str, list[int]] = {}
    by_region: dict[str, int] = defaultdict(int)
    by_hour: dict[int, int] = defaultdict(int)
    for k, src, region_id, h, n in grouped:
        counts = by_type.setdefault(k or "unknown", [0, 0, 0])
        counts[0] += n
        if src == "observed":
            counts[1] += n
        elif src == "reported":
            counts[2] += n
        by_region[regions.get(region_id, ("?", False))[0]] += n
        by_hour[int(h) if h is not None else -1] += n
    type_labels = iq["type"].options if "type" in iq else {}
    critical_types = iq["type"].critical if "type" in iq else frozenset()
    reports = session.execute(
        select(base).order_by(base.c.observed_at.desc(), base.c.id).limit(LIST_LIMIT)
    ).all()
    return IncidentsSection(
        count=sum(counts[0] for counts in by_type.values()),
        by_type=[
            IncidentType(
                type=key,
                label=type_labels.get(key, key),
                count=count,
                observed=observed,
                reported=reported,
                critical=key in critical_types,
            )
            for key, (count, observed, reported) in sorted(
                by_type.items(), key=lambda kv: (-kv[1][0], kv[0])
            )
        ],
        by_region=[RegionCount(region=r, count=n) for r, n in sorted(by_region.items())],
        by_hour=[HourCount(hour=h, count=n) for h, n in sorted(by_hour.items()) if h >= 0],
        reports=[
            IncidentReport(
                checklist_id=r.id,
                station=r.station,
                region=regions.get(r.region_id, ("?", False))[0],
                type=r.kind,
                source=r.source,
                time=r.time,
                observed_at=r.observed_at,
                description=r.description,
            )
            for r in reports
        ],
    )


def incident_reports(session: Session, scope: Scope, iq: dict[str, QuestionInfo]) -> Any:
    """The incident reports in scope with what the view shows of each: a subquery over
    the applied rows."""

    def answer(role: str) -> Any:
        """The report's first answer to the question in this role, as the fold keeps it."""
        if role not in iq:
            return literal_column("NULL").label(role)
        return FA.c.answers[iq[role].code].as_string().label(role)

    return (
        select(
            FA.c.checklist_id.label("id"),
            FA.c.observed_at,
            FA.c.station_id,
            ST.c.code.label("station"),
            ST.c.region_id,
            answer("type").label("kind"),
            answer("source"),
            local_hour(session).label("hour"),
            answer("description"),
            answer("time"),
        )
        .select_from(FA.join(ST, ST.c.id == FA.c.station_id))
        .where(applied_predicate(scope, phase=False), FA.c.phase == "incident")
        .subquery()
    )


def incident_groups(session: Session, reports: Any) -> list[tuple[Any, ...]]:
    """(type, source, region, hour, reports) grouped from the reports themselves."""
    keys = (reports.c.kind, reports.c.source, reports.c.region_id, reports.c.hour)
    return [tuple(r) for r in session.execute(select(*keys, func.count()).group_by(*keys)).all()]


def incident_counts(
    session: Session, scope: Scope, iq: dict[str, QuestionInfo]
) -> list[tuple[Any, ...]] | None:
    """(type, source, region, hour, reports) as the fold counts them (`finding_incident`),
    or None where those counts cannot answer: a filter they are not kept by (team, time
    window, template, a place below a region), or counts by other questions than the
    mission's incident form now has (`finding_state.incident_roles`)."""
    in_scope = _counted_regions(session, scope)
    if in_scope is None:
        return None
    counted_by = session.scalar(
        select(FS.c.incident_roles).where(FS.c.mission_id == scope.mission_id)
    )
    if counted_by != incident_roles_key(iq):
        return None
    keys = (FI.c.kind, FI.c.source, FI.c.region_id, FI.c.hour)
    reports = func.sum(FI.c.reports)
    rows = session.execute(
        select(*keys, reports)
        .where(FI.c.mission_id == scope.mission_id, FI.c.region_id.in_(in_scope))
        .group_by(*keys)
        .having(reports > 0)
    )
    return [
        (kind or None, source or None, region_id, hour if hour >= 0 else None, int(n))
        for kind, source, region_id, hour, n in rows
    ]


def clustering_rule(cfg: FindingsSettings) -> ClusteringRule:
    """The rule `cluster_pattern` applies, as the critical view states it."""
    return ClusteringRule(
        rule="a problem is clustered in the region with most of its cases when it has at "
        "least min_cases cases, that region holds at least min_share of them, and that share "
        "is at least min_lift times the region's share of all observations in scope; with "
        "fewer cases no pattern is claimed (too_few); otherwise it is scattered",
        min_cases=cfg.cluster_min_cases,
        min_share=cfg.cluster_min_share,
        min_lift=cfg.cluster_min_lift,
    )


def cluster_pattern(
    count: int, top_share: float, observation_share: float, cfg: FindingsSettings
) -> str:
    """`too_few`, `clustered` or `scattered`: a problem's share of cases in a region is
    judged against that region's share of the observations, so that a region where most
    observers were does not look like a cluster only for holding most of the cases."""
    if count < cfg.cluster_min_cases:
        return "too_few"
    if top_share >= cfg.cluster_min_share and top_share >= cfg.cluster_min_lift * observation_share:
        return "clustered"
    return "scattered"


def critical(
    session: Session,
    scope: Scope,
    questions: dict[str, QuestionInfo],
    cfg: FindingsSettings,
) -> CriticalSection:
    """Critical answers by question and region, the checklists behind them, and whether each
    problem clusters in a region or is scattered (`clustering_rule`)."""
    if scope.empty:
        return CriticalSection(
            count=0,
            observations=0,
            stations=0,
            clustering=clustering_rule(cfg),
            by_question=[],
            regions=[],
            checklists=[],
        )
    regions = _region_names(session, scope)
    counted = critical_counts(session, scope) or critical_groups(session, scope)
    # Observations per region, to compare a problem's spread with where observers were.
    per_region = _observations_per_region(session, scope, list(regions))
    total_obs = sum(per_region.values()) or 1
    # Per answer (code, value): its checklists per phase and per region.
    phases: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    spread: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    table: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for code, value, phase, region_id, n in counted.grouped:
        key = (code, value)
        region = regions.get(region_id, ("?", False))[0]
        phases[key][phase] = phases[key].get(phase, 0) + n
        spread[key][region] = spread[key].get(region, 0) + n
        table[region][f"{code}={value}"] += n
    by_question = []
    for (code, value), in_regions in spread.items():
        count = sum(in_regions.values())
        top_region, top_n = max(in_regions.items(), key=lambda kv: (kv[1], kv[0]))
        top_share = Fraction(top_n, count)
        expected = Fraction(per_region.get(top_region, 0), total_obs)
        info = questions.get(code)
        by_question.append(
            CriticalProblem(
                code=code,
                value=value,
                label=info.label if info else code,
                answer=info.options.get(value, value) if info else value,
                count=count,
                stations=counted.stations.get((code, value), 0),
                phases=phases[(code, value)],
                regions=[RegionCount(region=r, count=n) for r, n in sorted(in_regions.items())],
                regions_affected=len(in_regions),
                top_region=top_region,
                top_region_share=share_value(top_share),
                top_region_observation_share=share_value(expected),
                lift=ratio_value(top_share / expected) if expected else None,
                # Clustering (issue 18): the region's share of the cases against its share
                # of the observations, and no claim below `cluster_min_cases`.
                pattern=cluster_pattern(count, float(top_share), float(expected), cfg),
            )
        )
    by_question.sort(key=lambda p: (-p.count, p.code, p.value))
    joined, pred = _critical_answers(scope)
    listing = session.execute(
        select(
            FC.c.checklist_id,
            FC.c.question_code,
            FC.c.value,
            FC.c.phase,
            FC.c.observed_at,
            ST.c.code.label("station"),
            ST.c.region_id,
        )
        .select_from(joined)
        .where(pred)
        .order_by(FC.c.observed_at.desc(), FC.c.checklist_id, FC.c.question_code)
        .limit(LIST_LIMIT)
    ).all()
    return CriticalSection(
        count=sum(p.count for p in by_question),
        observations=counted.observations,
        stations=counted.observed_stations,
        clustering=clustering_rule(cfg),
        by_question=by_question,
        regions=[
            CriticalRegion(
                region=r, observations=per_region.get(r, 0), problems=dict(sorted(cells.items()))
            )
            for r, cells in sorted(table.items())
        ],
        checklists=[
            CriticalChecklist(
                checklist_id=r.checklist_id,
                code=r.question_code,
                value=r.value,
                phase=r.phase,
                observed_at=r.observed_at,
                station=r.station,
                region=regions.get(r.region_id, ("?", False))[0],
            )
            for r in listing
        ],
    )


@dataclass(frozen=True, slots=True)
class CriticalCounts:
    """What the critical view counts of the critical answers in scope."""

    grouped: list[tuple[str, str, str, Any, int]]  # code, value, phase, region, checklists
    stations: dict[tuple[str, str], int]  # per answer, stations with it in any phase
    observations: int  # checklists with a critical answer
    observed_stations: int  # their stations


def _critical_answers(scope: Scope) -> tuple[Any, Any]:
    """The critical answers in scope with their stations: (from, where). They carry their
    checklist's station, phase and time; the applied rows are joined only for the filters
    they alone hold (team, time window, template)."""
    joined = FC.join(ST, ST.c.id == FC.c.station_id)
    if scope.filters.needs_raw:
        joined = joined.join(FA, FA.c.checklist_id == FC.c.checklist_id)
        pred = applied_predicate(scope)
    else:
        pred = checklist_predicate(scope, cl=FC, versions="applied")
    return joined, and_(FC.c.mission_id == scope.mission_id, pred)


def critical_groups(session: Session, scope: Scope) -> CriticalCounts:
    """The critical view's counts, counted from the critical answers themselves."""
    joined, pred = _critical_answers(scope)
    grouped = session.execute(
        select(
            FC.c.question_code,
            FC.c.value,
            FC.c.phase,
            ST.c.region_id,
            func.count(FC.c.checklist_id.distinct()),
        )
        .select_from(joined)
        .where(pred)
        .group_by(FC.c.question_code, FC.c.value, FC.c.phase, ST.c.region_id)
    ).all()
    # Stations counted once per answer across phases: a question asked at opening and again
    # during voting (observers' access) may find the same problem at one station twice.
    stations = session.execute(
        select(FC.c.question_code, FC.c.value, func.count(FC.c.station_id.distinct()))
        .select_from(joined)
        .where(pred)
        .group_by(FC.c.question_code, FC.c.value)
    ).all()
    overall = session.execute(
        select(func.count(FC.c.checklist_id.distinct()), func.count(FC.c.station_id.distinct()))
        .select_from(joined)
        .where(pred)
    ).one()
    return CriticalCounts(
        grouped=[(c, v, p, r, int(n)) for c, v, p, r, n in grouped],
        stations={(c, v): int(n) for c, v, n in stations},
        observations=int(overall[0]),
        observed_stations=int(overall[1]),
    )


def critical_counts(session: Session, scope: Scope) -> CriticalCounts | None:
    """The critical view's counts read from the tallies (`fold._critical_rows`): per
    region and phase the critical answers (`critical`), per answer the stations with it in
    any phase, and the checklists and stations with any (`!`). None where the tallies
    cannot answer: a filter they are not kept by (team, time window, template, a place
    below a region), tallies folded before they kept these rows and not yet
    counted (`finding_state.critical_counted`), a critical count (`critical_min`), which
    the tallies sum rather than keep per value, or, with a phase filter, an answer that
    was critical in some checklists only (a form changed)."""
    in_scope = _counted_regions(session, scope)
    if in_scope is None:
        return None
    if not kept_state(session, scope.mission_id).critical_counted:
        return None
    phase = scope.filters.phase
    per_region = and_(FT.c.node_id.in_(in_scope), FT.c.phase != "all", FT.c.critical > 0)
    if phase is not None:
        per_region = and_(per_region, FT.c.phase == phase)
    summary = and_(
        FT.c.node_id == scope.node_id,
        FT.c.phase == (phase or "all"),
        or_(FT.c.question_code == CRITICAL_ANY, FT.c.critical > 0),
    )
    rows = session.execute(
        select(
            FT.c.question_code,
            FT.c.value,
            FT.c.phase,
            FT.c.node_id,
            FT.c.critical,
            FT.c.stations,
            FT.c.observations,
            per_region.label("per_region"),
            summary.label("summary"),
        ).where(FT.c.mission_id == scope.mission_id, or_(per_region, summary))
    ).all()
    grouped, stations, overall = [], {}, (0, 0)
    for code, value, row_phase, node_id, critical, n_stations, observations, *kinds in rows:
        if value == "#":
            return None  # a critical count: the tallies sum its numbers
        if kinds[0]:
            grouped.append((code, value, row_phase, node_id, int(critical)))
        if not kinds[1]:
            continue
        if code == CRITICAL_ANY:
            overall = (int(observations), int(n_stations))
        elif observations > 0:
            # Within one phase a value's stations are those where any checklist gave it:
            # the stations with it as a critical answer only if every such answer was one.
            if phase is not None and observations != critical:
                return None
            stations[(code, value)] = int(n_stations)
    return CriticalCounts(grouped, stations, *overall)


def _observations_per_region(
    session: Session, scope: Scope, region_ids: list[Any]
) -> dict[str, int]:
    names = _region_names(session, scope)
    if scope.filters.needs_raw or scope.location_id is not None:
        rows = session.execute(
            select(ST.c.region_id, func.count())
            .select_from(FA.join(ST, ST.c.id == FA.c.station_id))
            .where(applied_predicate(scope))
            .group_by(ST.c.region_id)
        )
    else:
        phase = scope.filters.phase or "all"
        rows = session.execute(
            select(FT.c.node_id, FT.c.observations).where(
                FT.c.mission_id == scope.mission_id,
                FT.c.node_id.in_(region_ids or [scope.mission_id]),
                FT.c.phase == phase,
                FT.c.question_code == "_",
            )
        )
    return {names[r][0]: int(n) for r, n in rows if r in names and n}


def station_map(session: Session, scope: Scope) -> MapSection:
    """The stations in scope that have coordinates, each with the phases it was observed
    in and whether a checklist from it has a critical answer, within the filters, in one
    statement: from the fold's visits and critical answers, or the applied rows for
    filters the visits are not kept by (team, time window, template). The console's map
    reads it; it used to fetch every station and every latest checklist (50 MB at
    500,000 checklists)."""
    phase = scope.filters.phase
    if scope.filters.needs_raw:
        visits = select(FA.c.station_id, FA.c.phase).where(applied_predicate(scope))
    else:
        visits = select(FV.c.station_id, FV.c.phase).where(
            FV.c.mission_id == scope.mission_id,
            FV.c.phase == phase if phase is not None else FV.c.phase != plans.ANY_PHASE,
        )
    joined, pred = _critical_answers(scope)
    critical = select(FC.c.station_id).select_from(joined).where(pred)
    v = visits.subquery("visits")
    seen = (
        select(
            v.c.station_id,
            *[func.max(case((v.c.phase == p, 1), else_=0)).label(p) for p in MAP_PHASES],
        )
        .group_by(v.c.station_id)
        .subquery("seen")
    )
    crit = critical.distinct().subquery("crit")
    in_scope = _station_scope(scope)
    placed = and_(ST.c.latitude.is_not(None), ST.c.longitude.is_not(None))
    rows = session.execute(
        select(
            ST.c.code,
            ST.c.name,
            ST.c.latitude,
            ST.c.longitude,
            *[func.coalesce(seen.c[p], 0) for p in MAP_PHASES],
            crit.c.station_id.is_not(None),
        )
        .select_from(
            ST.outerjoin(seen, seen.c.station_id == ST.c.id).outerjoin(
                crit, crit.c.station_id == ST.c.id
            )
        )
        .where(*in_scope, placed)
        .order_by(ST.c.code)
    ).all()
    # Validated in one call, as plain dicts: a model per station made apart took 5 to 10
    # times as long for 20,000 of them.
    stations = [
        {
            "code": code,
            "name": name,
            "latitude": lat,
            "longitude": lon,
            "phases": [p for p, flag in zip(MAP_PHASES, flags[:-1], strict=True) if flag],
            "critical": bool(flags[-1]),
        }
        for code, name, lat, lon, *flags in rows
    ]
    placeless = session.scalar(select(func.count()).where(*in_scope, ~placed))
    return MapSection.model_validate(
        {
            "stations": stations,
            "observed": sum(1 for st in stations if st["phases"]),
            "placeless": int(placeless or 0),
        }
    )
