"""Findings tables: incrementally folded tallies, their fold cursor, and a shared result cache.

Everything here is derived from checklists and answers, and can be rebuilt from them
(`api.services.findings.fold.rebuild`). It lives in the database so that every API process
sees the same state; nothing about findings is kept inside one process.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict
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
        # A station's rows of one phase: the fold's reread of a batch's stations, and the
        # counting view's lists (the closing reports of the stations they show).
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
    __table_args__ = (Index("ix_finding_observer_plan_mission_id_phase", "mission_id", "phase"),)

    observer_id: uuid.UUID = Field(primary_key=True)
    phase: str = Field(sa_type=String(16), primary_key=True)
    mission_id: uuid.UUID
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


class FindingCountStation(SQLModel, table=True):
    """Per station with counting reports, what the counting view's lists start from: how
    many reports, how many fail a check, how many the totals leave out, whether they
    disagree, and the report the totals use. Kept by the fold with `finding_count`."""

    __tablename__ = "finding_count_station"
    # Each list's first stations by code come from an index of its own, so that a list
    # of a few reports among thousands of stations does not walk all of them.
    __table_args__ = (
        Index("ix_finding_count_station_code", "mission_id", "station_code"),
        *[
            Index(
                f"ix_finding_count_station_{name}",
                "mission_id",
                "station_code",
                postgresql_where=text(f"{name} > 0"),
                sqlite_where=text(f"{name} > 0"),
            )
            for name in ("failing", "excluded", "conflict")
        ],
    )

    station_id: uuid.UUID = Field(primary_key=True)
    mission_id: uuid.UUID
    station_code: str = Field(max_length=64, description="The station's code, the lists' order")
    reports: int = Field(sa_type=Integer)
    failing: int = Field(sa_type=Integer)
    excluded: int = Field(sa_type=Integer)
    conflict: int = Field(sa_type=Integer, description="1: the station's reports disagree")
    chosen_checklist_id: uuid.UUID | None = Field(default=None)


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
    """Checklists as they first arrived (counted or not), per region, UTC hour and phase,
    for the hours that are over (before the mission's `finding_state.arrivals_through`):
    coverage's arrivals per hour read these and count only the hours since from the
    checklists. The fold adds each hour once no checklist can still arrive in it."""

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
    arrivals_through: datetime | None = Field(
        default=None,
        sa_type=UTCDateTime,
        description="`finding_arrival` holds the arrivals before this hour; none: no hour yet",
    )
    plan_counted: bool | None = Field(
        default=None,
        description="The plan rows (`finding_observer_plan`, `finding_team_plan`) are counted "
        "for the whole mission; none: until the next fold counts them",
    )


class FindingPlanChange(SQLModel, table=True):
    """A change of the deployment plan the fold has not yet counted into the plan rows: an
    observer whose stations or team changed (its rows and its team's are counted again),
    or the team it left (`team_key`). Coverage joins the plan while a mission has any."""

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


# --- The findings views: what every view carries, then each view's section ---


class FindingsEnvelope(SQLModel):
    """Fields every findings view has: what it is about and which data it reflects."""

    model_config = ConfigDict(extra="allow")  # type: ignore[assignment]
    mission_id: uuid.UUID
    view: str
    version: int = Field(description="Data version: changes whenever the inputs change")
    computed_at: datetime
    filters: dict[str, Any]
    sampling: str = Field(description="purposive, or random (then intervals are given)")
    language: str
    small_denominator: int = Field(description="Below this denominator shares read 'X of Y'")
    settings_problems: list[str] = Field(description="Mission settings ignored as invalid")
    replica_lag_s: float | None = Field(
        default=None,
        description="How far the streaming replica this view was computed from was behind "
        "the primary, in seconds (null: computed on the primary); each answer's "
        "`X-Replica-Lag` header gives the lag when it was served",
    )


# The sections of the findings views, typed: what `api.services.findings` builds, what the
# statement reads (`statement.draft`), what the cache stores as JSON and what the API
# documents. Each view is its section's fields after the envelope's.


class AnswerFindings(SQLModel):
    """One answer of a choice question: its count among the answers and its share."""

    value: str
    label: str
    count: int = Field(description="Observations with this answer")
    stations: int = Field(description="Stations where an observation gave it")
    share: float | None = Field(description="Of the observations that answered (null for n/a)")
    text: str | None = Field(
        description="The share as the statement writes it ('3 of 24' below the small denominator)"
    )
    ci95: tuple[float, float] | None = Field(
        description="Wilson 95% interval, for a random sample only"
    )
    critical: bool = Field(description="A critical answer")


class NegativeFindings(SQLModel):
    """A 4-point assessment's negative answers (bad and very bad) together."""

    count: int
    share: float | None
    text: str
    ci95: tuple[float, float] | None


class QuestionFindings(SQLModel):
    """A question's figures in one phase; `asked - answered - not_applicable` is
    `unanswered`."""

    code: str
    label: str
    type: str
    section: str
    asked: int = Field(description="Observations that were asked it (its condition met)")
    answered: int = Field(description="The denominator of its shares")
    not_applicable: int
    unanswered: int
    stations: int = Field(description="Stations with an answer")
    critical: int = Field(description="Critical answers given")


class IntegerFindings(QuestionFindings):
    type: Literal["integer"]
    total: int = Field(description="The numbers answered, summed")


class TimeFindings(QuestionFindings):
    type: Literal["time"]


class ChoiceFindings(QuestionFindings):
    type: Literal["yes_no", "single", "multi"]
    answers: list[AnswerFindings]


class ScaleFindings(QuestionFindings):
    type: Literal["scale4"]
    answers: list[AnswerFindings]
    negative: NegativeFindings


AnyQuestionFindings = Annotated[
    IntegerFindings | TimeFindings | ChoiceFindings | ScaleFindings,
    Field(discriminator="type"),
]


class PhaseTotals(SQLModel):
    phase: str
    observations: int
    stations: int


class PhaseFindings(PhaseTotals):
    questions: list[AnyQuestionFindings]


class FindingsTotals(SQLModel):
    observations: int = Field(description="Checklists counted, every phase")
    stations: int = Field(description="Stations they came from")
    phases: list[PhaseTotals]


class CountAt(SQLModel):
    count: int
    stations: int


class IrregularityFindings(SQLModel):
    """An irregularity question: what the observer saw and what was reported to them, apart."""

    phase: str
    code: str
    label: str
    answered: int
    observed: CountAt
    reported: CountAt
    cases: int = Field(description="Cases counted, where the form asks how many")


class FindingsSection(SQLModel):
    totals: FindingsTotals = Field(description="Observations and stations, overall and by phase")
    phases: list[PhaseFindings] = Field(
        description="Per phase: every question with counts, denominators, shares, stations"
    )
    irregularities: list[IrregularityFindings] = Field(
        description="Observed and reported-to-the-observer counts, kept apart"
    )


class PhaseObserved(SQLModel):
    observations: int
    stations: int


class RegionCoverage(SQLModel):
    region: str = Field(description="The region's path")
    abroad: bool
    stations: int
    assigned: int = Field(description="Stations with an observer assigned")
    observed: dict[str, PhaseObserved] = Field(description="Per phase")
    observed_any_phase: int = Field(description="Stations observed in any phase")


class TeamMember(SQLModel):
    code: str
    name: str | None


class MissingTeam(SQLModel):
    team: str = Field(description="The team's name; a team of one is named by its observer's code")
    members: list[TeamMember]
    assigned: int
    reported: int
    missing: int
    missing_stations: list[str] = Field(description="Codes of the stations no member reported from")


class MissingTeams(SQLModel):
    count: int = Field(description="Every such team (the list holds the first 500)")
    unit: str
    data: list[MissingTeam]


class MissingObserver(SQLModel):
    code: str
    name: str | None
    team: str | None
    assigned: int
    reported: int
    last_received_at: datetime | None
    missing: int


class MissingObservers(SQLModel):
    count: int = Field(description="Every such observer (the list holds the first 500)")
    data: list[MissingObserver]


class HourArrivals(SQLModel):
    hour: str = Field(description="YYYY-MM-DDTHH:00Z")
    checklists: int
    phases: dict[str, int]


class CoverageSection(SQLModel):
    regions: list[RegionCoverage]
    teams_missing: MissingTeams = Field(
        description="Teams with assigned stations no member reported from, with the members"
    )
    observers_missing: MissingObservers = Field(description="The same, observer by observer")
    arrivals_per_hour: list[HourArrivals]


class IncidentType(SQLModel):
    type: str
    label: str
    count: int
    observed: int
    reported: int = Field(description="Reported to the observer")
    critical: bool


class RegionCount(SQLModel):
    region: str
    count: int


class HourCount(SQLModel):
    hour: int = Field(description="Local hour of the day")
    count: int


class IncidentReport(SQLModel):
    checklist_id: uuid.UUID
    station: str
    region: str
    type: str | None
    source: str | None
    time: str | None
    observed_at: datetime
    description: str | None


class IncidentsSection(SQLModel):
    count: int
    by_type: list[IncidentType]
    by_region: list[RegionCount]
    by_hour: list[HourCount]
    reports: list[IncidentReport] = Field(description="The latest 500")


class ClusteringRule(SQLModel):
    rule: str
    min_cases: int
    min_share: float
    min_lift: float


class CriticalProblem(SQLModel):
    """A critical answer to one question: where it was found and whether it clusters."""

    code: str
    value: str
    label: str
    answer: str
    count: int
    stations: int
    phases: dict[str, int]
    regions: list[RegionCount]
    regions_affected: int
    top_region: str
    top_region_share: float
    top_region_observation_share: float
    lift: float | None
    pattern: str = Field(description="clustered, scattered or too_few (see clustering)")


class CriticalRegion(SQLModel):
    region: str
    observations: int
    problems: dict[str, int] = Field(description="Per code=value")


class CriticalChecklist(SQLModel):
    checklist_id: uuid.UUID
    code: str
    value: str
    phase: str
    observed_at: datetime
    station: str
    region: str


class CriticalSection(SQLModel):
    count: int
    observations: int = Field(description="Checklists with at least one critical answer")
    stations: int = Field(description="Stations of those checklists")
    clustering: ClusteringRule = Field(description="The clustering rule and its thresholds")
    by_question: list[CriticalProblem]
    regions: list[CriticalRegion] = Field(description="Region-by-problem table")
    checklists: list[CriticalChecklist] = Field(description="The latest 500")


class FindingsPublic(FindingsEnvelope, FindingsSection):
    pass


class CoveragePublic(FindingsEnvelope, CoverageSection):
    pass


class IncidentsPublic(FindingsEnvelope, IncidentsSection):
    pass


class CriticalPublic(FindingsEnvelope, CriticalSection):
    pass


# The counting view, typed: what `api.services.findings.counting` returns, what the API
# documents and what the draft statement reads.

Figures = dict[str, int | None]  # a report's protocol figures by question code


class CountingProtocol(SQLModel):
    """The question codes of the protocol figures the checks read."""

    registered: str
    received: str
    issued: str
    unused: str
    spoiled: str
    in_box: str
    invalid: str
    blank: str
    valid: str
    options: list[str] = Field(description="Votes per option, in the protocol's order")


class CountingCheck(SQLModel):
    check: str
    rule: str
    failed: int = Field(description="Reports failing it")
    checked: int = Field(description="Reports checked")


class CountingReport(SQLModel):
    """One counting report: a closing checklist that holds protocol figures."""

    checklist_id: uuid.UUID
    station: str = Field(description="Station code")
    review_state: str


class FailingReport(CountingReport):
    figures: Figures
    fails: list[str] = Field(description="The checks it fails")


class ConflictReport(SQLModel):
    checklist_id: uuid.UUID
    review_state: str
    received_at: datetime
    figures: Figures


class CountingConflict(SQLModel):
    station: str
    reports: list[ConflictReport]
    differing: list[str] = Field(description="The figures the reports disagree on")


class OptionTotal(SQLModel):
    code: str
    votes: int
    share: float | None = Field(description="Of the valid ballots")
    text: str | None


class CountingTotals(SQLModel):
    stations: int = Field(description="Stations whose report the totals use (one each)")
    stations_text: str
    figures: dict[str, int] = Field(description="Each protocol figure summed")
    options: list[OptionTotal]
    turnout: float | None
    note: str


class ExcludedReport(CountingReport):
    reason: str = Field(description="inconsistent, incomplete or another_report_used")
    fails: list[str] = Field(description="The consistency checks it fails")


class CountingInclusion(SQLModel):
    rule: str
    included_count: int
    excluded_count: int
    excluded_by_reason: dict[str, int]
    included: list[CountingReport] = Field(description="The first 500, by station")
    excluded: list[ExcludedReport] = Field(description="The first 500, by station")


class QuickCountOption(SQLModel):
    code: str
    share: float
    margin95: float
    text: str


class QuickCount(SQLModel):
    sampled_stations: int
    population_stations: int
    method: str
    options: list[QuickCountOption]


class CountingSection(SQLModel):
    protocol: CountingProtocol | None
    reports: int
    stations: int
    checks: list[CountingCheck]
    failing: list[FailingReport] = Field(description="The first 500 failing reports, by station")
    failing_reports: int
    conflicts: list[CountingConflict] = Field(
        description="Stations whose reports disagree, with the first 500 of their reports"
    )
    conflict_stations: int = Field(description="Every station whose reports disagree")
    totals: CountingTotals | None
    inclusion: CountingInclusion | None = Field(
        description="The reports the totals use and those left out, each with its reason"
    )
    quick_count: QuickCount | None
    selection_rule: str


class CountingPublic(FindingsEnvelope, CountingSection):
    pass


class StatementSentence(SQLModel):
    paragraph: str = Field(description="The key of its paragraph's heading")
    key: str = Field(description="The phrase it was written from")
    text: str
    evidence: dict[str, Any] = Field(
        description="The findings route its numbers come from, the questions, counts, checks "
        "and checklists behind it, and each number written with its path in that route's view"
    )
    note: str | None = Field(description="Its evidence as the footnote writes it")


class AnnexTable(SQLModel):
    title: str
    columns: list[str]
    rows: list[list[str]]
    links: list[str] = Field(description="Each row's checklist")
    evidence: dict[str, Any]


class StatementSection(SQLModel):
    markdown: str
    title: str
    headings: dict[str, str] = Field(description="Each paragraph's heading, by its key")
    sentences: list[StatementSentence] = Field(description="Each sentence with its evidence")
    annex: list[AnnexTable] = Field(description="The critical answers' tables")
    fallback: list[str] = Field(description="Sentences shown in English for want of a translation")


class StatementPublic(FindingsEnvelope, StatementSection):
    pass


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
    replica_version: int | None = Field(
        default=None, description="The data version on the dashboards' replica (null: no replica)"
    )
    replica_lag_s: float | None = Field(
        default=None, description="How far the replica is behind the primary, in seconds"
    )
