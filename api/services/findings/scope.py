"""What counts, and which checklists a findings request is about: shared SQL predicates."""

from __future__ import annotations

import typing
import uuid
from collections.abc import Callable, Hashable
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Integer, and_, cast, exists, func, literal_column, not_, or_, select
from sqlalchemy.orm import Session

from api.errors import NotFound
from models import (
    Checklist,
    ChecklistTemplate,
    FindingApplied,
    FindingPlanChange,
    FindingState,
    FindingVisit,
    Location,
    Observer,
    Station,
    Team,
)
from models.base import table_of
from models.finding import NODE_ABROAD, NODE_ALL, NODE_IN_COUNTRY

CL = table_of(Checklist)
ST = table_of(Station)
LOC = table_of(Location)
OBS = table_of(Observer)
TEAM = table_of(Team)
TPL = table_of(ChecklistTemplate)
# The counting checklists as the fold keeps them, narrow: what the dashboard views read.
FA = table_of(FindingApplied)
FV = table_of(FindingVisit)
FS = table_of(FindingState)
PLC = table_of(FindingPlanChange)


def counts(cl: Any = CL) -> Any:
    """The one rule of what counts: the latest version, not rejected, not quarantined, and
    not a correction still waiting for an analyst (`hold`). `is_latest` stays the plain
    column, not `is_latest IS true`: PostgreSQL proves the partial indexes' condition
    (`WHERE is_latest …`) from the plain one only."""
    return and_(
        cl.c.is_latest,
        cl.c.review_state != "rejected",
        not_(cl.c.quarantined),
        cl.c.hold.is_(None),
    )


@dataclass(frozen=True, slots=True)
class Filters:
    """A findings request's filters; every one is optional."""

    location: str | None = None
    abroad: bool | None = None
    phase: str | None = None
    team: str | None = None
    observed_from: datetime | None = None
    observed_to: datetime | None = None
    template: str | None = None
    template_version: int | None = None

    @property
    def needs_raw(self) -> bool:
        """True when the folded tallies cannot answer (they are kept per place and phase)."""
        return any(
            v is not None
            for v in (
                self.team,
                self.observed_from,
                self.observed_to,
                self.template,
                self.template_version,
            )
        )

    def whole_minutes(self) -> Filters:
        """The time window widened to whole minutes (`observed_from` down, `observed_to`
        up), so that dashboards asking for "the last hour" a few seconds apart share one
        computed view: every new second was a cache miss and a fresh compute."""
        start, end = self.observed_from, self.observed_to
        if start is not None:
            start = start.replace(second=0, microsecond=0)
        if end is not None and (end.second or end.microsecond):
            end = end.replace(second=0, microsecond=0) + timedelta(minutes=1)
        if start == self.observed_from and end == self.observed_to:
            return self
        return replace(self, observed_from=start, observed_to=end)

    def key(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if v is not None}
        for k in ("observed_from", "observed_to"):
            if k in out:
                out[k] = out[k].isoformat()
        return out


@dataclass(frozen=True, slots=True)
class Scope:
    """Filters resolved against the mission: ids instead of names, and the tally node."""

    mission_id: uuid.UUID
    filters: Filters
    location_id: uuid.UUID | None
    location_path: str | None
    location_abroad: bool | None
    team_id: uuid.UUID | None

    @property
    def empty(self) -> bool:
        """A place and an `abroad` flag that contradict each other select nothing."""
        return (
            self.location_abroad is not None
            and self.filters.abroad is not None
            and self.location_abroad != self.filters.abroad
        )

    @property
    def node_id(self) -> uuid.UUID:
        if self.location_id is not None:
            return self.location_id
        if self.filters.abroad is None:
            return NODE_ALL
        return NODE_ABROAD if self.filters.abroad else NODE_IN_COUNTRY


def resolve(session: Session, mission_id: uuid.UUID, filters: Filters) -> Scope:
    """Look the named place and team up; unknown names are a 404 that says what exists."""
    loc_id = loc_path = loc_abroad = team_id = None
    if filters.location is not None:
        path = "/".join(p.strip() for p in filters.location.strip("/").split("/"))
        row = session.execute(
            select(LOC.c.id, LOC.c.path, LOC.c.abroad).where(
                LOC.c.mission_id == mission_id, LOC.c.path == path
            )
        ).first()
        if row is None:
            raise NotFound(
                f"no place {filters.location!r} in this mission's location tree; "
                "give a path such as 'Region' or 'Region/District'",
                code="location_not_found",
            )
        loc_id, loc_path, loc_abroad = row.id, row.path, row.abroad
    if filters.team is not None:
        team_id = session.scalar(
            select(TEAM.c.id).where(TEAM.c.mission_id == mission_id, TEAM.c.name == filters.team)
        )
        if team_id is None:
            raise NotFound(f"no team {filters.team!r} in this mission", code="team_not_found")
    return Scope(mission_id, filters, loc_id, loc_path, loc_abroad, team_id)


def checklist_predicate(
    scope: Scope,
    cl: Any = CL,
    phase: bool = True,
    first_versions: bool = False,
    versions: str = "counting",
) -> Any:
    """SQL condition selecting the counting checklists a scope is about (or, with
    `first_versions`, every checklist as it first arrived). Exports choose other
    `versions`: "latest" (whatever their review state) or "all" (every version); over
    `finding_applied` (`applied_predicate`), every row counts already ("applied")."""
    f = scope.filters
    conds = [cl.c.mission_id == scope.mission_id]
    if first_versions:
        conds.append(cl.c.version == 1)
    elif versions == "counting":
        conds.append(counts(cl))
    elif versions == "latest":
        conds.append(cl.c.is_latest)  # plain, as in `counts`
    if phase and f.phase is not None:
        conds.append(cl.c.phase == f.phase)
    # Aliases: the caller's query may join these tables itself.
    if scope.location_id is not None or f.abroad is not None:
        st_, loc_ = ST.alias("scope_station"), LOC.alias("scope_location")
        st = select(st_.c.id).where(st_.c.id == cl.c.station_id)
        if f.abroad is not None:
            st = st.where(st_.c.abroad.is_(f.abroad))
        if scope.location_path is not None:
            st = st.join(loc_, loc_.c.id == st_.c.location_id).where(
                or_(
                    loc_.c.path == scope.location_path,
                    loc_.c.path.startswith(scope.location_path + "/", autoescape=True),
                )
            )
        conds.append(exists(st))
    if scope.team_id is not None:
        obs_ = OBS.alias("scope_observer")
        conds.append(
            exists(
                select(obs_.c.id).where(
                    obs_.c.id == cl.c.observer_id, obs_.c.team_id == scope.team_id
                )
            )
        )
    if f.observed_from is not None:
        conds.append(cl.c.observed_at >= f.observed_from)
    if f.observed_to is not None:
        conds.append(cl.c.observed_at < f.observed_to)
    if f.template is not None or f.template_version is not None:
        tpl_ = TPL.alias("scope_template")
        tq = select(tpl_.c.id).where(tpl_.c.id == cl.c.template_id)
        if f.template is not None:
            tq = tq.where(tpl_.c.code == f.template)
        if f.template_version is not None:
            tq = tq.where(tpl_.c.version == f.template_version)
        conds.append(exists(tq))
    return and_(*conds)


def applied_predicate(scope: Scope, phase: bool = True) -> Any:
    """`checklist_predicate` over the fold's narrow rows of the counting checklists (`FA`),
    which hold every column a scope filters on: the same checklists, as of the last fold."""
    return checklist_predicate(scope, cl=FA, phase=phase, versions="applied")


def local_hour(session: Session) -> Any:
    """The hour of an applied checklist's observation on the observer's own clock (0-23)."""
    if session.get_bind().dialect.name == "postgresql":
        shifted = func.timezone("UTC", FA.c.observed_at) + func.make_interval(
            0, 0, 0, 0, 0, FA.c.observed_utc_offset_min
        )
        return cast(func.extract("hour", shifted), Integer)
    return cast(
        func.strftime("%H", FA.c.observed_at, FA.c.observed_utc_offset_min.concat(" minutes")),
        Integer,
    )


def utc_hour(session: Session, column: Any) -> Any:
    """The UTC hour a timestamp falls in, as text 'YYYY-MM-DDTHH:00Z'."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(
            func.timezone("UTC", column), literal_column("'YYYY-MM-DD\"T\"HH24:00Z'")
        )
    return func.strftime("%Y-%m-%dT%H:00Z", column)


T = TypeVar("T")

# Where a view's compute keeps what it has read once (`views.one_snapshot`): `session.info`.
SNAPSHOT_MEMO = "pollcheck.snapshot_memo"


def once_per_snapshot(session: Session, key: Hashable, read: Callable[[], T]) -> T:
    """`read()`, once per key within one snapshot of a view's compute (`views.one_snapshot`,
    which the statement's sections share): there the same query answers the same, and
    each round trip saved counts when the database is busy (under saturated intake a
    statement of a fraction of a millisecond waited 10 to 30 ms for its turn). Outside
    such a snapshot, read every time."""
    memo: dict[Hashable, Any] | None = session.info.get(SNAPSHOT_MEMO)
    if memo is None:
        return read()
    if key not in memo:
        memo[key] = read()
    return typing.cast(T, memo[key])


@dataclass(frozen=True, slots=True)
class KeptState:
    """What the views ask of the fold's state for a mission (`kept_state`)."""

    plan_current: bool  # the plan rows are counted, with no plan change waiting
    arrivals_counted: bool
    critical_counted: bool


def kept_state(session: Session, mission_id: uuid.UUID) -> KeptState:
    """What the views ask of the fold's state for the mission, in one round trip per
    compute: whether the plan rows are current (counted, with no plan change waiting),
    and whether the arrivals and the critical view's rows are counted. A mission the fold
    has not seen yet has none of them."""

    def read() -> KeptState:
        waiting = exists(select(PLC.c.id).where(PLC.c.mission_id == mission_id))
        row = session.execute(
            select(
                (FS.c.plan_counted.is_(True) & ~waiting).label("plan_current"),
                FS.c.arrivals_counted.is_(True).label("arrivals_counted"),
                FS.c.critical_counted.is_(True).label("critical_counted"),
            ).where(FS.c.mission_id == mission_id)
        ).first()
        return KeptState(*(bool(flag) for flag in row)) if row else KeptState(False, False, False)

    return once_per_snapshot(session, ("kept_state", mission_id), read)
