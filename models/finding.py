"""Findings tables: incrementally folded tallies, their fold cursor, and a shared result cache.

Everything here is derived from checklists and answers, and can be rebuilt from them
(`api.services.findings.fold.rebuild`). It lives in the database so that every API process
sees the same state; nothing about findings is kept inside one process.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    text,
)
from sqlmodel import Field, SQLModel

from models.base import JSONType, UTCDateTime, utcnow

# Tally nodes that are not places of the location tree.
NODE_ALL = uuid.UUID(int=0)  # the whole mission
NODE_IN_COUNTRY = uuid.UUID(int=1)
NODE_ABROAD = uuid.UUID(int=2)


class FindingFold(SQLModel, table=True):
    """The fold's cursor over the change outbox (one row): changes up to it are folded."""

    __tablename__ = "finding_fold"

    id: int = Field(default=1, primary_key=True)
    last_change_id: int = Field(default=0, sa_type=BigInteger)
    seen_change_id: int = Field(default=0, sa_type=BigInteger)
    gap_xmax: int | None = Field(
        default=None, sa_type=BigInteger, description="PostgreSQL: transactions then in flight"
    )
    gap_hi: int | None = Field(
        default=None, sa_type=BigInteger, description="The newest change id seen with gap_xmax"
    )
    folded_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class FindingApplied(SQLModel, table=True):
    """The checklists whose answers are currently inside the tallies: the counting
    checklists, each with what the dashboard views select and group them by, and the
    answers they read of a closing or incident checklist.

    The views read these narrow rows instead of the checklists (whose payloads make them
    ten times as wide); the counting view reads the protocol figures here instead of
    pivoting the answers of every closing checklist, and the incidents view an incident's
    type and source. The fold keeps the rows current, review state included, from the same
    outbox as the tallies."""

    __tablename__ = "finding_applied"
    __table_args__ = (
        # A station's rows of one phase: the fold's reread of a batch's stations and of
        # their counting reports.
        Index("ix_finding_applied_station_id_phase", "station_id", "phase"),
        # Also the incidents view's newest reports first.
        Index(
            "ix_finding_applied_mission_id_phase_observed_at", "mission_id", "phase", "observed_at"
        ),
        Index("ix_finding_applied_observer_id_station_id", "observer_id", "station_id"),
    )

    checklist_id: uuid.UUID = Field(primary_key=True)
    mission_id: uuid.UUID
    station_id: uuid.UUID
    phase: str = Field(sa_type=String(16))
    observer_id: uuid.UUID
    template_id: uuid.UUID
    observed_at: datetime = Field(sa_type=UTCDateTime)
    observed_utc_offset_min: int = Field(sa_type=SmallInteger)
    received_at: datetime = Field(sa_type=UTCDateTime)
    review_state: str = Field(sa_type=String(16))
    # By question code: a closing checklist's numbers, an incident report's first answers
    # (`api.services.findings.fold.answers_of`); None in other phases.
    answers: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType, nullable=True))


class FindingHeld(SQLModel, table=True):
    """Per station and phase, what its counting checklists hold: how many of them hold
    each value of each question (`"A1:yes"`, `"C3:#"` for a number), answer each question
    (`"A1:*"`), and in all (`"_:_"`); values held by none are left out. A station counts
    for a value while one of its checklists holds it, so the fold reads here whether a
    batch's checklists make the station start or stop counting, instead of reading again
    the answers of every earlier checklist of the station and phase (at fifty checklists
    a station, three quarters of a million answers in a fold of a thousand). Kept by the
    fold from a station and phase's tenth checklist on (`fold.HELD_FROM`); without a row
    (fewer checklists, or none folded since the upgrade that added the table) the fold
    reads what they hold from their answers."""

    __tablename__ = "finding_held"
    __table_args__ = {"postgresql_with": {"fillfactor": 70}}

    station_id: uuid.UUID = Field(primary_key=True)
    phase: str = Field(sa_type=String(16), primary_key=True)
    held: dict[str, int] = Field(sa_column=Column(JSONType, nullable=False))


class FindingVisit(SQLModel, table=True):
    """Per observer, station and phase, the counting checklists the observer filed there
    and when the last came in, and the same in any phase (phase `all`): what coverage's
    missing teams and observers read, in rows bounded by the deployment plan rather than
    by the checklists. Kept by the fold."""

    __tablename__ = "finding_visit"
    __table_args__ = (Index("ix_finding_visit_mission_id_phase", "mission_id", "phase"),)

    observer_id: uuid.UUID = Field(primary_key=True)
    station_id: uuid.UUID = Field(primary_key=True)
    phase: str = Field(sa_type=String(16), primary_key=True)
    mission_id: uuid.UUID
    checklists: int = Field(sa_type=Integer)
    last_received_at: datetime = Field(sa_type=UTCDateTime)


class FindingObserverPlan(SQLModel, table=True):
    """Per observer and phase (and any phase, `all`): the stations assigned to the observer
    and how many of them the observer filed a counting checklist at, with the last one's
    arrival. Coverage's missing observers read these rows, one per observer, instead of
    joining every assignment to the visits. Moved by the fold with each batch's visits,
    and counted again for the observers a plan change queued (`finding_plan_change`)."""

    __tablename__ = "finding_observer_plan"
    __table_args__ = (
        Index("ix_finding_observer_plan_mission_id_phase", "mission_id", "phase"),
        # Coverage's list of them, fewest stations reported from first, by code: its first
        # page read from the index rather than by sorting every observer of the mission.
        Index(
            "ix_finding_observer_plan_missing",
            "mission_id",
            "phase",
            "reported",
            "code",
            postgresql_where=text("reported < assigned"),
            sqlite_where=text("reported < assigned"),
        ),
    )

    observer_id: uuid.UUID = Field(primary_key=True)
    phase: str = Field(sa_type=String(16), primary_key=True)
    mission_id: uuid.UUID
    code: str = Field(max_length=64, description="The observer's code (it never changes)")
    assigned: int = Field(sa_type=Integer)
    reported: int = Field(sa_type=Integer)
    last_received_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class FindingTeamPlan(SQLModel, table=True):
    """Per team and phase (and `all`): the stations assigned to any member and how many of
    them any member reported from. An observer without a team is a team of one, keyed by
    the observer's id. Coverage's missing teams read these rows. Kept as
    `finding_observer_plan` is."""

    __tablename__ = "finding_team_plan"
    __table_args__ = (Index("ix_finding_team_plan_mission_id_phase", "mission_id", "phase"),)

    team_key: uuid.UUID = Field(primary_key=True)
    phase: str = Field(sa_type=String(16), primary_key=True)
    mission_id: uuid.UUID
    assigned: int = Field(sa_type=Integer)
    reported: int = Field(sa_type=Integer)


class FindingRegionPlan(SQLModel, table=True):
    """Per region: its stations, and those of them with an assigned observer, which
    coverage's table gives beside what was observed. Counted again for the mission by the
    fold after a change of the plan (stations imported or moved, observers' stations),
    queued in `finding_plan_change` like the other plan rows."""

    __tablename__ = "finding_region_plan"

    mission_id: uuid.UUID = Field(primary_key=True)
    region_id: uuid.UUID = Field(primary_key=True)
    stations: int = Field(sa_type=Integer)
    assigned: int = Field(sa_type=Integer)


class FindingTally(SQLModel, table=True):
    """Counts per tree node, phase, question and answer, kept current by the fold.

    `node_id` is a place of the location tree (each checklist counts at its station's
    place and at every place above it) or one of NODE_ALL / NODE_IN_COUNTRY / NODE_ABROAD.
    Special rows: question `_` value `_` counts checklists; value `*` counts checklists that
    answered the question (not `na`); value `#` sums the numbers of a count question.
    For the critical view, phase `all` also holds each critical answer (the stations with it
    in any phase), and question `!` value `!` counts the checklists with a critical answer
    (in each phase and in `all`).
    """

    __tablename__ = "finding_tally"

    mission_id: uuid.UUID = Field(primary_key=True)
    node_id: uuid.UUID = Field(primary_key=True)
    phase: str = Field(sa_type=String(16), primary_key=True)
    question_code: str = Field(max_length=32, primary_key=True)
    value: str = Field(max_length=64, primary_key=True)
    observations: int = Field(default=0, sa_type=BigInteger)
    stations: int = Field(default=0, sa_type=BigInteger)
    total: int = Field(default=0, sa_type=BigInteger)
    critical: int = Field(default=0, sa_type=BigInteger)


class FindingCount(SQLModel, table=True):
    """The counting view's figures per tree node (as `finding_tally`'s nodes), kept by the
    fold: reports and stations with counting figures, each check's failures, the reports
    failing, inconsistent or incomplete, the stations whose reports disagree, and over the
    one report chosen per station the totals and the quick count's sums (`measure` names
    each: `reports`, `fail.<check>`, `sum.<figure>`, `sample.sxy.<option>`, ...).

    Counted by the mission's protocol and thresholds (`finding_state.counting_key`); the
    view reads these rows only while they are the mission's current ones."""

    __tablename__ = "finding_count"

    mission_id: uuid.UUID = Field(primary_key=True)
    node_id: uuid.UUID = Field(primary_key=True)
    measure: str = Field(sa_type=String(48), primary_key=True)
    amount: int = Field(default=0, sa_type=BigInteger)


# The counting view's lists, each a partial index of `finding_count_report` in the lists'
# order (station code, arrival, id): the name of its index, and its condition on
# PostgreSQL and on SQLite, written as each database is asked it (SQLite has no boolean
# type: SQLAlchemy asks `conflict = 1`, and SQLite uses an index only for its own terms).
COUNT_LISTS = {
    "failing": ("fails <> 0", "fails <> 0"),
    "conflicts": ("conflict", "conflict = 1"),
    "included": ("reason IS NULL", "reason IS NULL"),
    "excluded": ("reason IS NOT NULL", "reason IS NOT NULL"),
}


class FindingCountReport(SQLModel, table=True):
    """Per counting report that counts, what the counting view lists it for, checked by
    the mission's protocol and thresholds (`finding_state.counting_key`): the checks it
    fails, whether its station's reports disagree, whether the totals use it or why not,
    and its figures. Kept by the fold with `finding_count`, station by station, so that each list's
    first reports come from an index of their own, however many reports the mission has."""

    __tablename__ = "finding_count_report"
    __table_args__ = (
        Index("ix_finding_count_report_station_id", "station_id"),
        *[
            Index(
                f"ix_finding_count_report_{name}",
                "mission_id",
                "station_code",
                "received_at",
                "checklist_id",
                postgresql_where=text(pg_where),
                sqlite_where=text(sqlite_where),
            )
            for name, (pg_where, sqlite_where) in COUNT_LISTS.items()
        ],
        # The review queue's failing reports, newest first (`api.services.queue`), and
        # those of them whose checklist has a critical answer: the queue lists them first.
        Index(
            "ix_finding_count_report_failing_newest",
            "mission_id",
            "received_at",
            "checklist_id",
            postgresql_where=text(COUNT_LISTS["failing"][0]),
            sqlite_where=text(COUNT_LISTS["failing"][1]),
        ),
        Index(
            "ix_finding_count_report_failing_critical",
            "mission_id",
            "received_at",
            "checklist_id",
            postgresql_where=text(f"{COUNT_LISTS['failing'][0]} AND critical"),
            sqlite_where=text(f"{COUNT_LISTS['failing'][1]} AND critical = 1"),
        ),
    )

    checklist_id: uuid.UUID = Field(primary_key=True)
    mission_id: uuid.UUID
    station_id: uuid.UUID
    station_code: str = Field(max_length=64, description="The station's code, the lists' order")
    received_at: datetime = Field(sa_type=UTCDateTime)
    review_state: str = Field(max_length=16)
    fails: int = Field(
        sa_type=Integer, description="The checks it fails: bit i for the i-th of counting.CHECKS"
    )
    conflict: bool = Field(description="Its station's reports disagree in a figure")
    critical: bool = Field(
        default=False,
        sa_column_kwargs={"server_default": text("false")},
        description="Its checklist has a critical answer (`checklist.critical`)",
    )
    reason: str | None = Field(
        default=None,
        max_length=32,
        description="None: the totals use it; else why not (inconsistent, incomplete, "
        "another_report_used)",
    )
    figures: dict[str, Any] = Field(
        sa_type=JSONType,
        description="Its protocol figures by the pivot's names (registered … valid, v1 … vn)",
    )


class FindingCritical(SQLModel, table=True):
    """Critical answers of the checklists that count (a small table, kept by the fold), each
    with its checklist's station, phase and time of observation: the critical view groups
    and lists them without reading the applied rows, newest first from an index."""

    __tablename__ = "finding_critical"
    __table_args__ = (
        Index("ix_finding_critical_mission_id_question_code", "mission_id", "question_code"),
        Index("ix_finding_critical_mission_id_observed_at", "mission_id", "observed_at"),
        Index("ix_finding_critical_station_id", "station_id"),  # the fold's earlier ones
    )

    checklist_id: uuid.UUID = Field(primary_key=True)
    question_code: str = Field(max_length=32, primary_key=True)
    position: int = Field(default=0, primary_key=True)
    mission_id: uuid.UUID
    value: str = Field(sa_column=Column(Text, nullable=False))
    station_id: uuid.UUID
    phase: str = Field(sa_type=String(16))
    observed_at: datetime = Field(sa_type=UTCDateTime)


class FindingIncident(SQLModel, table=True):
    """Incident reports that count, per region, type, source (observed or reported) and
    hour of the day on the observer's clock: what the incidents view groups, in rows
    bounded by the form's options rather than by the reports. Kept by the fold for the type
    and source questions named in the mission's `finding_state.incident_roles`; an empty
    `kind` or `source` is a report without that answer, hour -1 one without a time."""

    __tablename__ = "finding_incident"

    mission_id: uuid.UUID = Field(primary_key=True)
    region_id: uuid.UUID = Field(primary_key=True)
    kind: str = Field(max_length=64, primary_key=True)
    source: str = Field(max_length=64, primary_key=True)
    hour: int = Field(sa_type=SmallInteger, primary_key=True)
    reports: int = Field(default=0, sa_type=BigInteger)


class FindingArrival(SQLModel, table=True):
    """Checklists as they first arrived (counted or not), per region, UTC hour and phase:
    coverage's arrivals per hour read these. The fold adds each new checklist as its
    cursor passes the checklist's outbox row (so exactly once, however often a change
    past a gap is looked at), and counts a mission's checklists afresh while its
    `finding_state.arrivals_counted` is not set."""

    __tablename__ = "finding_arrival"

    mission_id: uuid.UUID = Field(primary_key=True)
    region_id: uuid.UUID = Field(primary_key=True)
    hour: str = Field(max_length=17, primary_key=True, description="YYYY-MM-DDTHH:00Z")
    phase: str = Field(sa_type=String(16), primary_key=True)
    checklists: int = Field(sa_type=BigInteger)


class FindingState(SQLModel, table=True):
    """Per mission: the data version of its findings (the newest change folded)."""

    __tablename__ = "finding_state"

    mission_id: uuid.UUID = Field(primary_key=True)
    version: int = Field(default=0, sa_type=BigInteger)
    folded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    incident_roles: str | None = Field(
        default=None,
        max_length=80,
        description="The incident type and source question codes `finding_incident` is "
        "counted by (`type source`); none until the fold first counts them",
    )
    critical_counted: bool | None = Field(
        default=True,  # a mission new to the tallies has those rows from its first fold on
        description="The tallies hold the critical view's own rows for all of the mission's "
        "checklists; none: folded before they were kept, until the fold counts them",
    )
    counting_key: str | None = Field(
        default=None,
        max_length=64,
        description="The protocol and thresholds `finding_count` is counted by (a digest); "
        "none until the fold counts the mission, or after they changed",
    )
    arrivals_counted: bool | None = Field(
        default=True,  # a mission new to the fold has its arrivals counted from the first on
        description="`finding_arrival` holds every arrival whose outbox row the fold's cursor "
        "has passed; none: until the next fold counts the mission's arrivals afresh",
    )
    plan_counted: bool | None = Field(
        default=None,
        description="The plan rows (`finding_observer_plan`, `finding_team_plan`) are counted "
        "for the whole mission; none: until the next fold counts them",
    )


class FindingPlanChange(SQLModel, table=True):
    """A change of the deployment plan the fold has not yet counted into the plan rows: an
    observer whose stations or team changed (its rows and its team's are counted again),
    the team it left (`team_key`), or the mission's stations (neither). Each counts the
    mission's rows per region again. Coverage joins the plan while a mission has any."""

    __tablename__ = "finding_plan_change"
    __table_args__ = (Index("ix_finding_plan_change_mission_id", "mission_id"),)

    id: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
    )
    mission_id: uuid.UUID
    observer_id: uuid.UUID | None = None
    team_key: uuid.UUID | None = None


class FindingCache(SQLModel, table=True):
    """Computed results shared by every API process, keyed by mission, view and filters."""

    __tablename__ = "finding_cache"

    mission_id: uuid.UUID = Field(primary_key=True)
    key: str = Field(max_length=64, primary_key=True)
    version: int = Field(sa_type=BigInteger)
    computed_at: datetime = Field(sa_type=UTCDateTime)
    body: str = Field(sa_column=Column(Text, nullable=False))
    duration_ms: int = Field(default=0, sa_type=Integer)
    etag: str | None = Field(default=None, max_length=40)
    body_gz: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))


class DataVersionPublic(SQLModel):
    """Whether the findings include everything stored so far, and their data version."""

    mission_id: uuid.UUID
    data_version: int = Field(
        description="The `version` every findings view of this data carries; moves with each fold"
    )
    folded_at: datetime | None = Field(description="When the findings last changed")
    latest_change: int = Field(description="The newest stored change of the mission")
    folded_through: int = Field(description="Changes up to this one are in the findings")
    pending_changes: int = Field(description="Stored changes of the mission not yet folded")
    caught_up: bool = Field(
        description="True when the findings include every stored change (and, with a "
        "replica, the replica has them too)"
    )
    findings_lag_s: float = Field(
        default=0.0,
        description="Seconds since the first of the mission's changes the fold has not looked "
        "at yet was stored (0: none). A change that commits late, below what the fold has "
        "looked at, is not counted here but in `pending_changes`. Views say it too, in "
        "`X-Findings-Lag`",
    )
    replica_version: int | None = Field(
        default=None, description="The data version on the dashboards' replica (null: no replica)"
    )
    replica_lag_s: float | None = Field(
        default=None, description="How far the replica is behind the primary, in seconds"
    )
