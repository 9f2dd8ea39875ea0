"""The findings views as the API serves them: the envelope every view carries, then each
view's section, as `api.services.findings` builds it, the shared cache stores it as JSON,
the draft statement reads it back and /openapi.json documents it.

Plain pydantic models, not SQLModel: none is a table, and a view builds and dumps up to a
few thousand of them per request (SQLModel's constructor took 2.7 times as long).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class FindingsEnvelope(BaseModel):
    """Fields every findings view has: what it is about and which data it reflects."""

    model_config = ConfigDict(extra="allow")
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


class AnswerFindings(BaseModel):
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


class NegativeFindings(BaseModel):
    """A 4-point assessment's negative answers (bad and very bad) together."""

    count: int
    share: float | None
    text: str
    ci95: tuple[float, float] | None


class QuestionFindings(BaseModel):
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


class PhaseTotals(BaseModel):
    phase: str
    observations: int
    stations: int


class PhaseFindings(PhaseTotals):
    questions: list[AnyQuestionFindings]


class FindingsTotals(BaseModel):
    observations: int = Field(description="Checklists counted, every phase")
    stations: int = Field(description="Stations they came from")
    phases: list[PhaseTotals]


class CountAt(BaseModel):
    count: int
    stations: int


class IrregularityFindings(BaseModel):
    """An irregularity question: what the observer saw and what was reported to them, apart."""

    phase: str
    code: str
    label: str
    answered: int
    observed: CountAt
    reported: CountAt
    cases: int = Field(description="Cases counted, where the form asks how many")


class FindingsSection(BaseModel):
    totals: FindingsTotals = Field(description="Observations and stations, overall and by phase")
    phases: list[PhaseFindings] = Field(
        description="Per phase: every question with counts, denominators, shares, stations"
    )
    irregularities: list[IrregularityFindings] = Field(
        description="Observed and reported-to-the-observer counts, kept apart"
    )


class PhaseObserved(BaseModel):
    observations: int
    stations: int


class RegionCoverage(BaseModel):
    region: str = Field(description="The region's path")
    abroad: bool
    stations: int
    assigned: int = Field(description="Stations with an observer assigned")
    observed: dict[str, PhaseObserved] = Field(description="Per phase")
    observed_any_phase: int = Field(description="Stations observed in any phase")


class TeamMember(BaseModel):
    code: str
    name: str | None


class MissingTeam(BaseModel):
    team: str = Field(description="The team's name; a team of one is named by its observer's code")
    members: list[TeamMember]
    assigned: int
    reported: int
    missing: int
    missing_stations: list[str] = Field(description="Codes of the stations no member reported from")


class MissingTeams(BaseModel):
    count: int = Field(description="Every such team (the list holds the first 500)")
    unit: str
    data: list[MissingTeam]


class MissingObserver(BaseModel):
    code: str
    name: str | None
    team: str | None
    assigned: int
    reported: int
    last_received_at: datetime | None
    missing: int


class MissingObservers(BaseModel):
    count: int = Field(description="Every such observer (the list holds the first 500)")
    data: list[MissingObserver]


class HourArrivals(BaseModel):
    hour: str = Field(description="YYYY-MM-DDTHH:00Z")
    checklists: int
    phases: dict[str, int]


class CoverageSection(BaseModel):
    regions: list[RegionCoverage]
    teams_missing: MissingTeams = Field(
        description="Teams with assigned stations no member reported from, with the members"
    )
    observers_missing: MissingObservers = Field(description="The same, observer by observer")
    arrivals_per_hour: list[HourArrivals]


class IncidentType(BaseModel):
    type: str
    label: str
    count: int
    observed: int
    reported: int = Field(description="Reported to the observer")
    critical: bool


class RegionCount(BaseModel):
    region: str
    count: int


class HourCount(BaseModel):
    hour: int = Field(description="Local hour of the day")
    count: int


class IncidentReport(BaseModel):
    checklist_id: uuid.UUID
    station: str
    region: str
    type: str | None
    source: str | None
    time: str | None
    observed_at: datetime
    description: str | None


class IncidentsSection(BaseModel):
    count: int
    by_type: list[IncidentType]
    by_region: list[RegionCount]
    by_hour: list[HourCount]
    reports: list[IncidentReport] = Field(description="The latest 500")


class ClusteringRule(BaseModel):
    rule: str
    min_cases: int
    min_share: float
    min_lift: float


class CriticalProblem(BaseModel):
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


class CriticalRegion(BaseModel):
    region: str
    observations: int
    problems: dict[str, int] = Field(description="Per code=value")


class CriticalChecklist(BaseModel):
    checklist_id: uuid.UUID
    code: str
    value: str
    phase: str
    observed_at: datetime
    station: str
    region: str


class CriticalSection(BaseModel):
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


class StationOnMap(BaseModel):
    code: str
    name: str
    latitude: float
    longitude: float
    phases: list[str] = Field(
        description="The phases it was observed in, within the filters, in the day's order"
    )
    critical: bool = Field(
        description="A checklist from it, within the filters, has a critical answer"
    )


class MapSection(BaseModel):
    stations: list[StationOnMap] = Field(description="The stations in scope with coordinates")
    observed: int = Field(description="Of them, those observed in scope")
    placeless: int = Field(description="Stations in scope without coordinates (not on the map)")


class MapPublic(FindingsEnvelope, MapSection):
    pass


class IncidentsPublic(FindingsEnvelope, IncidentsSection):
    pass


class CriticalPublic(FindingsEnvelope, CriticalSection):
    pass


# The counting view, typed: what `api.services.findings.counting` returns, what the API
# documents and what the draft statement reads.

Figures = dict[str, int | None]  # a report's protocol figures by question code


class CountingProtocol(BaseModel):
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


class CountingCheck(BaseModel):
    check: str
    rule: str
    failed: int = Field(description="Reports failing it")
    checked: int = Field(description="Reports checked")


class CountingReport(BaseModel):
    """One counting report: a closing checklist that holds protocol figures."""

    checklist_id: uuid.UUID
    station: str = Field(description="Station code")
    review_state: str


class FailingReport(CountingReport):
    figures: Figures
    fails: list[str] = Field(description="The checks it fails")


class ConflictReport(BaseModel):
    checklist_id: uuid.UUID
    review_state: str
    received_at: datetime
    figures: Figures


class CountingConflict(BaseModel):
    station: str
    reports: list[ConflictReport]
    differing: list[str] = Field(description="The figures the reports disagree on")


class OptionTotal(BaseModel):
    code: str
    votes: int
    share: float | None = Field(description="Of the valid ballots")
    text: str | None


class CountingTotals(BaseModel):
    stations: int = Field(description="Stations whose report the totals use (one each)")
    stations_text: str
    figures: dict[str, int] = Field(description="Each protocol figure summed")
    options: list[OptionTotal]
    turnout: float | None
    note: str


class ExcludedReport(CountingReport):
    reason: str = Field(description="inconsistent, incomplete or another_report_used")
    fails: list[str] = Field(description="The consistency checks it fails")


class CountingInclusion(BaseModel):
    rule: str
    included_count: int
    excluded_count: int
    excluded_by_reason: dict[str, int]
    included: list[CountingReport] = Field(description="The first 500, by station")
    excluded: list[ExcludedReport] = Field(description="The first 500, by station")


class QuickCountOption(BaseModel):
    code: str
    share: float
    margin95: float
    text: str


class QuickCount(BaseModel):
    sampled_stations: int
    population_stations: int
    method: str
    options: list[QuickCountOption]


class CountingSection(BaseModel):
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
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Each protocol question's label in `lang`, by its code (`protocol`)",
    )
    symbols: dict[str, str] = Field(
        default_factory=dict,
        description="Each figure's letter in the checks' rules, by its key in a report's "
        "`figures`: R, Rc, I, U, S, B, X, K and V, then v1 … vn for the options in the "
        "protocol's order",
    )


class CountingPublic(FindingsEnvelope, CountingSection):
    pass


class StatementSentence(BaseModel):
    paragraph: str = Field(description="The key of its paragraph's heading")
    key: str = Field(description="The phrase it was written from")
    text: str
    evidence: dict[str, Any] = Field(
        description="The findings route its numbers come from, the questions, counts, checks "
        "and checklists behind it, and each number written with its path in that route's view"
    )
    note: str | None = Field(description="Its evidence as the footnote writes it")


class AnnexTable(BaseModel):
    title: str
    columns: list[str]
    rows: list[list[str]]
    links: list[str] = Field(description="Each row's checklist")
    evidence: dict[str, Any]


class StatementSection(BaseModel):
    markdown: str
    title: str
    headings: dict[str, str] = Field(description="Each paragraph's heading, by its key")
    sentences: list[StatementSentence] = Field(description="Each sentence with its evidence")
    annex: list[AnnexTable] = Field(description="The critical answers' tables")
    fallback: list[str] = Field(description="Sentences shown in English for want of a translation")


class StatementPublic(FindingsEnvelope, StatementSection):
    pass
