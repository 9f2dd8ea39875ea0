"""Counting: protocol figures checked for consistency, conflicts between two reports of one
station, vote totals (one report per station) and, for random samples, a quick count.

The checks follow the observation-method reference; each is a SQL expression over the
protocol figures pivoted per counting checklist, so only failing reports leave the database.

The fold keeps the view's figures (`finding_count`, per tree node) and per report what the
lists show it for (`finding_count_report`), counted with these same expressions per
station: `take_out` before a batch changes a station's reports, `put_in` after. The view
reads them while they are counted by the mission's current protocol and thresholds
(`counting_key`) and the filters are the tallies' own (place, in-country/abroad); else it
computes everything from the reports, as it did before they were kept.
"""

from __future__ import annotations

import functools
import hashlib
import json
import uuid
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from sqlalchemy import (
    BigInteger,
    Float,
    and_,
    bindparam,
    case,
    cast,
    delete,
    exists,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.orm import Session

from api.checklist_schema import PROTOCOL_FIGURES, Protocol
from api.services.findings.fold import FCNT, FCR, FS
from api.services.findings.questions import QuestionInfo, language_key, published
from api.services.findings.scope import CL, FA, ST, Scope, applied_predicate, checklist_predicate
from api.services.findings.stats import (
    FindingsSettings,
    percent,
    ratio_estimate,
    read_settings,
    share_text,
    share_value,
)
from api.services.sql import dialect_insert
from models import Mission
from models.base import table_of, utcnow
from models.views import (
    CountingCheck,
    CountingConflict,
    CountingInclusion,
    CountingProtocol,
    CountingSection,
    CountingTotals,
    FailingReport,
    QuickCount,
)

MI = table_of(Mission)

LIST_LIMIT = 500

# A report failing a check, as the partial indexes say it (`COUNT_LISTS`): a literal, not
# a bound parameter, so that any plan of a statement, a generic one too, can use them.
FAILING = FCR.c.fails != literal_column("0")
FIGURES = PROTOCOL_FIGURES
# Each figure's letter in the checks' rules below (the options are v1 … vn, in order).
SYMBOLS = {
    "registered": "R",
    "received": "Rc",
    "issued": "I",
    "unused": "U",
    "spoiled": "S",
    "in_box": "B",
    "invalid": "X",
    "blank": "K",
    "valid": "V",
}
CHECKS = {
    "options_sum_to_valid": "the votes for the options add up to the valid ballots (v1+…+vn = V)",
    "valid_invalid_blank_make_in_box": "valid + invalid + blank = ballots in the box (V+X+K = B)",
    "ballots_accounted_for": "issued + unused + spoiled = received (I+U+S = Rc)",
    "in_box_not_above_issued": "ballots in the box do not exceed ballots issued (B ≤ I)",
    "issued_not_above_registered": "ballots issued do not exceed registered voters plus the "
    "allowance (I ≤ R + a)",
    "turnout_below_threshold": "turnout (B/R) is not above the threshold",
    "invalid_below_threshold": "the invalid share (X/B) is not above the threshold",
    "no_option_above_threshold": "no option's share of valid votes is above the threshold",
    "figures_plausible": "every figure is a whole number from 0 to the plausible maximum",
}
# The checks in the other languages the views and the statement speak (English: CHECKS).
CHECKS_IN: dict[str, dict[str, str]] = {
    "en": CHECKS,
    "ru": {
        "options_sum_to_valid": "сумма голосов за варианты равна числу действительных "
        "бюллетеней (v1+…+vn = V)",
        "valid_invalid_blank_make_in_box": "действительные + недействительные + пустые = "
        "бюллетени в ящиках (V+X+K = B)",
        "ballots_accounted_for": "выданные + неиспользованные + испорченные = полученные "
        "(I+U+S = Rc)",
        "in_box_not_above_issued": "бюллетеней в ящиках не больше, чем выдано (B ≤ I)",
        "issued_not_above_registered": "выдано бюллетеней не больше, чем внесено "
        "избирателей в список, с допуском (I ≤ R + a)",
        "turnout_below_threshold": "явка (B/R) не выше порога",
        "invalid_below_threshold": "доля недействительных бюллетеней (X/B) не выше порога",
        "no_option_above_threshold": "доля ни одного варианта среди действительных "
        "голосов не выше порога",
        "figures_plausible": "каждая цифра — целое число от 0 до правдоподобного максимума",
    },
}


def check_rules(language: str) -> dict[str, str]:
    """What each check says, in `language` (its base language, else English)."""
    key = language_key(CHECKS_IN, language)
    return CHECKS_IN[key] if key else CHECKS


# The checks whose failure means the figures cannot all be right, so the report leaves the
# totals. The thresholds (turnout, invalid share, one option's share) only flag a report for
# a second look: a station's genuinely high turnout is a finding, and leaving it out would
# bias the totals.
CONSISTENCY = (
    "options_sum_to_valid",
    "valid_invalid_blank_make_in_box",
    "ballots_accounted_for",
    "in_box_not_above_issued",
    "issued_not_above_registered",
    "figures_plausible",
)
INCLUSION_RULE = (
    "the totals use, per station, one report whose valid ballots and votes per option are "
    "all copied and which passes every consistency check ("
    + ", ".join(CONSISTENCY)
    + "): the latest verified such report, else the latest; the threshold checks only flag"
)


def protocol_of(session: Session, mission_id: uuid.UUID) -> Protocol | None:
    """The protocol block of the mission's newest template that has one."""
    return next((d.protocol for d in published(session, mission_id) if d.protocol), None)


def _pivot(scope: Scope, protocol: Protocol) -> Any:
    """One row per counting checklist of the scope that holds protocol figures."""
    return _pivot_where(protocol, applied_predicate(scope, phase=False))


def _pivot_where(protocol: Protocol, *where: Any) -> Any:
    """One row per applied counting checklist that holds protocol figures, among those
    `where` selects: a common table expression, computed once however often its statement
    reads it. The figures come from the fold's rows (`finding_applied.answers`, pivoted
    when the checklist was applied), not from the answers of every closing checklist."""
    codes = {f: getattr(protocol, f) for f in FIGURES}
    options = {f"v{i + 1}": c for i, c in enumerate(protocol.options)}
    every = {**codes, **options}

    def figure(code: str) -> Any:
        return cast(FA.c.answers[code].as_string(), BigInteger)

    return (
        select(
            FA.c.checklist_id,
            FA.c.station_id,
            FA.c.received_at,
            FA.c.review_state,
            *[figure(code).label(name) for name, code in every.items()],
        )
        .where(
            *where,
            FA.c.phase == "closing",
            or_(*[figure(code).is_not(None) for code in every.values()]),
        )
        # Computed once: inlined, PostgreSQL read each figure out of the JSON again for
        # every check that names it (sixty times a row).
        .cte("pivot")
        .prefix_with("MATERIALIZED")
    )


def _failures(p: Any, n_options: int, cfg: FindingsSettings) -> dict[str, Any]:
    """SQL conditions, true when a report fails a check (unknown figures never fail)."""
    opts = [p.c[f"v{i + 1}"] for i in range(n_options)]
    option_sum = opts[0]
    for o in opts[1:]:
        option_sum = option_sum + o
    reg, received, issued, unused, spoiled = (
        p.c.registered,
        p.c.received,
        p.c.issued,
        p.c.unused,
        p.c.spoiled,
    )
    in_box, invalid, blank, valid = p.c.in_box, p.c.invalid, p.c.blank, p.c.valid
    real = Float()
    everything = [reg, received, issued, unused, spoiled, in_box, invalid, blank, valid, *opts]
    return {
        "options_sum_to_valid": option_sum != valid,
        "valid_invalid_blank_make_in_box": in_box != valid + invalid + blank,
        "ballots_accounted_for": received != issued + unused + spoiled,
        "in_box_not_above_issued": in_box > issued,
        "issued_not_above_registered": issued > reg + cfg.issued_allowance,
        "turnout_below_threshold": and_(reg > 0, cast(in_box, real) > cfg.turnout_max * reg),
        "invalid_below_threshold": and_(
            in_box > 0, cast(invalid, real) > cfg.invalid_share_max * in_box
        ),
        "no_option_above_threshold": and_(
            valid > 0, or_(*[cast(o, real) > cfg.option_share_max * valid for o in opts])
        ),
        "figures_plausible": or_(*[or_(f < 0, f > cfg.figure_max) for f in everything]),
    }


@dataclass(frozen=True, slots=True)
class Checked:
    """A pivot's reports checked: `rows`, the pivot's columns with a `fail_<check>` column
    per check (1 when the report fails it, else 0) and `incomplete`, computed once; and SQL
    expressions over those rows."""

    rows: Any  # a common table expression: read it in place of the pivot
    flags: dict[str, Any]  # per check, its `fail_` column
    failing: Any  # it fails any check
    inconsistent: Any  # it fails a consistency check: the totals leave it out
    incomplete: Any  # its valid ballots or a vote figure are not copied
    figures: list[str]  # the pivot's figure columns: FIGURES, then v1 … vn

    @property
    def usable(self) -> Any:
        """Reports the totals may use."""
        return and_(~self.inconsistent, ~self.incomplete)


def _checked(p: Any, n_opts: int, cfg: FindingsSettings) -> Checked:
    """The pivot `p` with every check's flag computed once per report. Written out in each
    condition that reads it, every check was SQL of its own in each of the lists, the
    chosen reports and the counts (34 KB of SQL for the view's lists: 9 ms of planning,
    and as long again for the driver to rewrite its parameters, on every compute)."""
    failures = _failures(p, n_opts, cfg)
    incomplete = or_(p.c.valid.is_(None), *[p.c[f"v{i + 1}"].is_(None) for i in range(n_opts)])
    rows = (
        select(
            p,
            *[
                func.coalesce(case((cond, 1), else_=0), 0).label(f"fail_{name}")
                for name, cond in failures.items()
            ],
            incomplete.label("incomplete"),
        )
        .cte("checked")
        .prefix_with("MATERIALIZED")
    )
    flags = {name: rows.c[f"fail_{name}"] for name in failures}
    return Checked(
        rows=rows,
        flags=flags,
        failing=or_(*[f == 1 for f in flags.values()]),
        inconsistent=or_(*[flags[name] == 1 for name in CONSISTENCY]),
        incomplete=rows.c.incomplete,
        figures=[*FIGURES, *[f"v{i + 1}" for i in range(n_opts)]],
    )


def _disagree(checked: Checked) -> Any:
    """Per station (grouped): its reports differ in a figure."""
    r = checked.rows
    return or_(*[func.max(r.c[f]) != func.min(r.c[f]) for f in checked.figures])


def _conflicting(checked: Checked) -> Any:
    """The stations with more than one report, whose reports disagree."""
    r = checked.rows
    return (
        select(r.c.station_id).group_by(r.c.station_id).having(func.count() > 1, _disagree(checked))
    )


@dataclass(frozen=True, slots=True)
class Listing:
    """What the counting view lists a checked report for: SQL expressions over its row."""

    fails: Any  # the checks it fails, bit i for the i-th of CHECKS
    conflict: Any  # its station's reports disagree
    included: Any  # the totals use it
    reason: Any  # None when included, else why not


def _listing(ch: Checked, c: Any) -> Listing:
    """`c`: the reports the totals use (`_chosen`)."""
    r = ch.rows
    fails: Any = literal_column("0")
    for bit, name in enumerate(CHECKS):
        fails = fails + ch.flags[name] * (1 << bit)
    included = r.c.checklist_id.in_(select(c.c.checklist_id))
    reason = case(
        (included, None),
        (ch.inconsistent, "inconsistent"),
        (ch.incomplete, "incomplete"),
        else_="another_report_used",
    )
    return Listing(fails, r.c.station_id.in_(_conflicting(ch)), included, reason)


JSON_PAIRS = 40  # name-value pairs per call: PostgreSQL takes at most 100 arguments


def _json_object(session: Session, values: dict[str, Any]) -> Any:
    """A JSON object of these columns, built by the database (names are SQL literals:
    PostgreSQL cannot type a bound name passed to `jsonb_build_object`). A ballot of many
    options is built in parts of JSON_PAIRS, merged (`||`, SQLite's `json_patch`)."""
    pg = session.get_bind().dialect.name == "postgresql"
    build = func.jsonb_build_object if pg else func.json_object
    items = list(values.items())
    parts = []
    for at in range(0, len(items), JSON_PAIRS):
        pairs: list[Any] = []
        for name, value in items[at : at + JSON_PAIRS]:
            pairs += [literal_column(f"'{name}'"), value]
        parts.append(build(*pairs))
    merged: Any = parts[0]
    for part in parts[1:]:
        merged = merged.op("||")(part) if pg else func.json_patch(merged, part)
    return merged


def _count_of(cond: Any) -> Any:
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)


# The counting figures the fold keeps (`finding_count.measure`), each a sum over stations:
# the reports and stations checked, each check's failures, the reports failing, left out
# as inconsistent or incomplete, the stations whose reports disagree, the stations with a
# report the totals use (`chosen`), its figures (`sum.<figure>`) and the quick count's
# sums of squares and products (valid ballots x, an option's votes y).
def _measures(n_opts: int) -> list[str]:
    per_option = [
        name for i in range(1, n_opts + 1) for name in (f"sample.yy.{i}", f"sample.xy.{i}")
    ]
    return [
        "reports",
        "stations",
        *[f"fail.{name}" for name in CHECKS],
        "failing",
        "inconsistent",
        "incomplete",
        "conflict",
        "chosen",
        *[f"sum.{f}" for f in [*FIGURES, *[f"v{i}" for i in range(1, n_opts + 1)]]],
        "sample.xx",
        *per_option,
    ]


def _label(measure: str) -> str:
    return measure.replace(".", "_")


def _station_counts(ch: Checked, c: Any, n_opts: int) -> Any:
    """Per station of the checked reports, each counting measure (`_measures`, labelled
    with `_` for `.`), `c` being the reports the totals use (`_chosen`)."""
    r = ch.rows
    per = (
        select(
            r.c.station_id,
            func.count().label("reports"),
            literal_column("1").label("stations"),
            *[func.sum(ch.flags[name]).label(_label(f"fail.{name}")) for name in CHECKS],
            _count_of(ch.failing).label("failing"),
            _count_of(ch.inconsistent).label("inconsistent"),
            _count_of(and_(~ch.inconsistent, ch.incomplete)).label("incomplete"),
            case((and_(func.count() > 1, _disagree(ch)), 1), else_=0).label("conflict"),
        )
        .group_by(r.c.station_id)
        .subquery("per_station")
    )
    x = c.c.valid
    sample = [func.coalesce(x * x, 0).label("sample_xx")]
    for i in range(1, n_opts + 1):
        y = c.c[f"v{i}"]
        sample += [
            func.coalesce(y * y, 0).label(f"sample_yy_{i}"),
            func.coalesce(x * y, 0).label(f"sample_xy_{i}"),
        ]
    return (
        select(
            per,
            case((c.c.checklist_id.is_not(None), 1), else_=0).label("chosen"),
            *[func.coalesce(c.c[f], 0).label(f"sum_{f}") for f in ch.figures],
            *sample,
        )
        .select_from(per.outerjoin(c, c.c.station_id == per.c.station_id))
        .cte("station_counts")
        .prefix_with("MATERIALIZED")
    )


NOT_KEPT = "-"  # `finding_state.counting_key` of a mission whose figures the fold keeps not
# Above it the sums of squares could outgrow 64 bits (a million stations at 1e6 squared):
# a mission that allows such figures is counted from its reports.
FIGURE_MAX_KEPT = 1_000_000
# The kept figures' own version: raise it in a release that changes what they are (a
# measure, a check, how a report is chosen), and the first fold after the upgrade counts
# every mission's again (the view reads the reports until then).
FIGURES_VERSION = 2  # 2: the lists' reports kept (`finding_count_report`)
KEY_PREFIX = f"v{FIGURES_VERSION}."  # each key starts with it: the fold finds the older ones
KEYED_THRESHOLDS = (
    "issued_allowance",
    "turnout_max",
    "invalid_share_max",
    "option_share_max",
    "figure_max",
)


def counting_key(protocol: Protocol | None, cfg: FindingsSettings) -> str:
    """What the kept counting figures depend on, as a digest: how they are counted, the
    protocol's questions and the thresholds of the checks (NOT_KEPT when they are not kept)."""
    if protocol is None or cfg.figure_max > FIGURE_MAX_KEPT:
        return NOT_KEPT
    basis = {
        "figures": FIGURES_VERSION,
        "protocol": protocol.model_dump(mode="json"),
        "thresholds": {name: getattr(cfg, name) for name in KEYED_THRESHOLDS},
    }
    digest = hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()
    return f"{KEY_PREFIX}{digest[: 64 - len(KEY_PREFIX)]}"


@dataclass(frozen=True, slots=True)
class CountPlan:
    """How the fold counts one mission's counting figures in a batch."""

    mission_id: uuid.UUID
    protocol: Protocol | None
    cfg: FindingsSettings
    key: str  # counted by: the mission's current protocol and thresholds
    recount: bool  # the kept figures are by another key (or none): count them all again


def plan(session: Session, mission_id: uuid.UUID) -> CountPlan:
    protocol = protocol_of(session, mission_id)
    cfg, _ = read_settings(session.scalar(select(MI.c.settings).where(MI.c.id == mission_id)))
    key = counting_key(protocol, cfg)
    kept = session.scalar(select(FS.c.counting_key).where(FS.c.mission_id == mission_id))
    return CountPlan(mission_id, protocol, cfg, key, kept != key)


def take_out(session: Session, plan: CountPlan, stations: Any, out: Any) -> None:
    """Before a batch is applied: its `stations`' counting figures, negated, into `out`
    (station_id, measure, amount)."""
    if not plan.recount and plan.key != NOT_KEPT:
        _count(session, plan, stations, out, -1)


def put_in(session: Session, plan: CountPlan, stations: Any, out: Any) -> None:
    """After a batch is applied: its `stations`' counting figures into `out`, and their
    reports' rows of `finding_count_report`; or, when the kept figures are by another key,
    every station of the mission, counted afresh."""
    m = plan.mission_id
    if plan.recount:
        session.execute(delete(FCNT).where(FCNT.c.mission_id == m))
        session.execute(delete(FCR).where(FCR.c.mission_id == m))
        stmt = dialect_insert(session, FS).values(
            mission_id=m, version=0, folded_at=utcnow(), counting_key=plan.key
        )
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=["mission_id"], set_={"counting_key": plan.key}
            )
        )
        stations = None
    if plan.key != NOT_KEPT:
        _count(session, plan, stations, out, 1)


# The fold's counting statements, built once per counting key, database and shape, and
# run with the mission as a parameter: building them (a check of each figure against each
# other, sixty conditions) and deriving their cache keys took 15 to 20 ms of the fold's
# Python each time, as long as the database took to run them for a batch of 50 reports.
_BUILT: dict[tuple[Any, ...], list[Any]] = {}
_BUILT_MAX = 64
MISSION = bindparam("count_mission_id", type_=FA.c.mission_id.type)


def _count(session: Session, plan: CountPlan, stations: Any, out: Any, sign: int) -> None:
    dialect = session.get_bind().dialect.name
    stations_name = None if stations is None else stations.name
    shape = (plan.key, dialect, stations_name, out.name, sign, JSON_PAIRS)
    statements = _BUILT.get(shape)
    if statements is None:
        if len(_BUILT) >= _BUILT_MAX:
            _BUILT.clear()
        statements = _BUILT[shape] = _count_statements(session, plan, stations, out, sign)
    for statement in statements:
        session.execute(statement, {"count_mission_id": plan.mission_id})


def _count_statements(
    session: Session, plan: CountPlan, stations: Any, out: Any, sign: int
) -> list[Any]:
    """The statements that count the `stations`' figures (every station of the mission when
    None) into `out` (station_id, measure, amount), times `sign`; when adding (`sign` 1),
    also those that replace their reports' rows of `finding_count_report`. The mission is
    the parameter `count_mission_id`."""
    assert plan.protocol is not None  # a mission without a protocol is NOT_KEPT
    n_opts = len(plan.protocol.options)
    where = [FA.c.mission_id == MISSION]
    ours = None
    if stations is not None:
        ours = select(stations.c.station_id).where(stations.c.mission_id == MISSION)
        where.append(FA.c.station_id.in_(ours))
    ch = _checked(_pivot_where(plan.protocol, *where), n_opts, plan.cfg)
    c = _chosen(ch.rows, ch.usable)
    wide = _station_counts(ch, c, n_opts)
    amounts = [
        select(wide.c.station_id, literal(measure), wide.c[_label(measure)] * sign)
        for measure in _measures(n_opts)
    ]
    out_rows = out.insert().from_select(["station_id", "measure", "amount"], union_all(*amounts))
    if sign < 0:
        return [out_rows]
    statements = [out_rows]
    if ours is not None:
        statements.append(delete(FCR).where(FCR.c.station_id.in_(ours)))
    listed = _listing(ch, c)
    r = ch.rows
    statements.append(
        FCR.insert().from_select(
            ["checklist_id", "mission_id", "station_id", "station_code", "received_at"]
            + ["review_state", "fails", "conflict", "critical", "reason", "figures"],
            select(
                r.c.checklist_id,
                MISSION,
                r.c.station_id,
                ST.c.code,
                r.c.received_at,
                r.c.review_state,
                listed.fails,
                listed.conflict,
                CL.c.critical,
                listed.reason,
                _json_object(session, {f: r.c[f] for f in ch.figures}),
            ).select_from(
                r.join(ST, ST.c.id == r.c.station_id).join(CL, CL.c.id == r.c.checklist_id)
            ),
        )
    )
    return statements


def _kept(
    session: Session, scope: Scope, protocol: Protocol, cfg: FindingsSettings
) -> dict[str, int] | None:
    """The fold's counting figures at the scope's node, or None when they cannot answer:
    filters the tallies are not kept by, or figures counted by another protocol or other
    thresholds than the mission's now (until the next fold counts them again)."""
    key = counting_key(protocol, cfg)
    if scope.filters.needs_raw or scope.empty or key == NOT_KEPT:
        return None
    current = (
        select(FS.c.mission_id)
        .where(FS.c.mission_id == scope.mission_id, FS.c.counting_key == key)
        .scalar_subquery()
    )
    # One statement, one snapshot: the key and the figures a fold committed together.
    rows = session.execute(
        select(literal(True), literal(""), literal(0))
        .where(current.is_not(None))
        .union_all(
            select(literal(False), FCNT.c.measure, FCNT.c.amount).where(
                FCNT.c.mission_id == current, FCNT.c.node_id == scope.node_id
            )
        )
    ).all()
    if not rows:
        return None
    return {str(measure): int(amount) for marker, measure, amount in rows if not marker}


def _summary_of_kept(kept: dict[str, int], n_opts: int) -> dict[str, Any]:
    def get(name: str) -> int:
        return kept.get(name, 0)

    sample = [get("chosen"), get("sum.valid"), get("sample.xx")]
    for i in range(1, n_opts + 1):
        sample += [get(f"sum.v{i}"), get(f"sample.yy.{i}"), get(f"sample.xy.{i}")]
    return {
        "reports": get("reports"),
        "stations": get("stations"),
        "failed": [get(f"fail.{name}") for name in CHECKS],
        "failing": get("failing"),
        "inconsistent": get("inconsistent"),
        "incomplete": get("incomplete"),
        "conflict_stations": get("conflict"),
        "totals": [get("chosen"), *[get(f"sum.{f}") for f in [*FIGURES, *_votes(n_opts)]]],
        "sample": sample,
    }


def _votes(n_opts: int) -> list[str]:
    return [f"v{i}" for i in range(1, n_opts + 1)]


def _summary_of_reports(
    session: Session, ch: Checked, c: Any, random_sample: bool
) -> dict[str, Any]:
    """The view's counts from the reports themselves: the checks' counts, the totals and
    the quick count in one statement over one pivot (each statement that reads the pivot
    computes it again: a third of a second at 100,000 checklists)."""
    flags = list(ch.flags.values())
    r = ch.rows
    conflicting = _conflicting(ch).subquery("conflicting")
    parts = [
        select(
            func.count(),
            func.count(r.c.station_id.distinct()),
            *[func.sum(flag) for flag in flags],
            _count_of(ch.failing),
            _count_of(ch.inconsistent),
            _count_of(and_(~ch.inconsistent, ch.incomplete)),
        ).subquery("counts"),
        select(func.count()).select_from(conflicting).subquery("conflicts"),
        select(func.count(), *[func.coalesce(func.sum(c.c[f]), 0) for f in ch.figures]).subquery(
            "totals"
        ),
    ]
    if random_sample:
        parts.append(_sample_sums(c, len(ch.figures) - len(FIGURES)).subquery("sample"))
    joined: Any = parts[0]
    for part in parts[1:]:
        joined = joined.join(part, true())
    row = session.execute(
        select(*[col for part in parts for col in part.c]).select_from(joined)
    ).one()
    chunks, at = [], 0
    for part in parts:  # the row cut back into each part's columns
        chunks.append(row[at : at + len(part.c)])
        at += len(part.c)
    summary, conflicts, totals, *sample = chunks
    return {
        "reports": int(summary[0]),
        "stations": int(summary[1]),
        "failed": [int(v or 0) for v in summary[2 : 2 + len(flags)]],
        "failing": int(summary[-3]),
        "inconsistent": int(summary[-2]),
        "incomplete": int(summary[-1]),
        "conflict_stations": int(conflicts[0]),
        "totals": [int(v) for v in totals],
        "sample": sample[0] if sample else None,
    }


def counting(
    session: Session,
    scope: Scope,
    cfg: FindingsSettings,
    random_sample: bool,
    kept: bool = True,
    language: str = "en",
    questions: dict[str, QuestionInfo] | None = None,
) -> CountingSection:
    """Every counting report checked, conflicts flagged, totals from one report per station:
    from the fold's figures where they answer (`kept`), else from the reports; the checks'
    rules in `language`, and the protocol questions' labels from `questions` (the
    mission's catalog in that language)."""
    protocol = protocol_of(session, scope.mission_id)
    empty = CountingSection(
        protocol=None,
        reports=0,
        stations=0,
        checks=[],
        failing=[],
        failing_reports=0,
        conflicts=[],
        conflict_stations=0,
        totals=None,
        inclusion=None,
        quick_count=None,
        selection_rule=INCLUSION_RULE,
    )
    # A place and an `abroad=` that contradict each other select no report: the answer of
    # a scope without reports (the checks at 0 of 0, zero totals), as in every other view.
    if protocol is None or scope.filters.phase not in (None, "closing"):
        return empty
    n_opts = len(protocol.options)
    figures = [*FIGURES, *_votes(n_opts)]
    counted = _kept(session, scope, protocol, cfg) if kept else None
    if counted is None:
        ch = _checked(_pivot(scope, protocol), n_opts, cfg)
        c = _chosen(ch.rows, ch.usable)
        summary = _summary_of_reports(session, ch, c, random_sample)
        lists = _lists(session, c, ch)
    else:
        summary = _summary_of_kept(counted, n_opts)
        if not random_sample:
            summary["sample"] = None
        lists = _kept_lists(session, scope, counting_key(protocol, cfg))
    reports = summary["reports"]
    rules = check_rules(language)
    checks = [
        CountingCheck(check=name, rule=rules[name], failed=failed, checked=reports)
        for name, failed in zip(CHECKS, summary["failed"], strict=True)
    ]
    option_codes = protocol.options
    conflicts = _conflicts(lists["conflicts"], option_codes)
    failing = [
        FailingReport(
            checklist_id=r["checklist_id"],
            station=r["station"],
            review_state=r["review_state"],
            figures=_figures(r, option_codes),
            fails=[n for n in CHECKS if r[f"fail_{n}"]],
        )
        for r in lists["failing"]
    ]
    totals_row = summary["totals"]
    asked = questions or {}
    labels = {c: asked[c].label for c in protocol.codes() if c in asked}
    return CountingSection(
        labels=labels,
        symbols={**SYMBOLS, **{code: f"v{i}" for i, code in enumerate(option_codes, 1)}},
        protocol=CountingProtocol(
            **{f: getattr(protocol, f) for f in FIGURES}, options=option_codes
        ),
        reports=reports,
        stations=summary["stations"],
        checks=checks,
        failing=failing,
        failing_reports=summary["failing"],
        conflicts=conflicts,
        conflict_stations=summary["conflict_stations"],
        totals=_totals(totals_row, figures, option_codes, cfg),
        inclusion=_inclusion(
            lists,
            # The totals' count is the reports they include (one per station).
            (reports, totals_row[0], summary["inconsistent"], summary["incomplete"]),
        ),
        quick_count=_quick_count(session, scope, summary["sample"], option_codes, cfg)
        if summary["sample"] is not None
        else None,
        selection_rule=INCLUSION_RULE,
    )


def _kept_lists(session: Session, scope: Scope, key: str) -> dict[str, list[Any]]:
    """The view's lists from the reports the fold keeps (`finding_count_report`, with
    their figures): each list's first LIST_LIMIT reports from an index of its own, in
    order of station and arrival. As `_lists` gives them."""
    in_scope = checklist_predicate(scope, cl=FCR, phase=False, versions="applied")
    # Counted by the key the figures were read by (`_kept`): a recount under new
    # thresholds committed in between leaves the lists empty until the next compute.
    current = select(FS.c.mission_id).where(
        FS.c.mission_id == scope.mission_id, FS.c.counting_key == key
    )
    in_scope = and_(in_scope, exists(current))
    # Written as the partial indexes' predicates (`COUNT_LISTS`), not with bound
    # parameters: any plan of the statement, a generic one too, can use them.
    kinds: dict[str, Any] = {
        "failing": FAILING,
        "conflicts": FCR.c.conflict,  # SQLite's `conflict = 1`
        "included": FCR.c.reason.is_(None),
        "excluded": FCR.c.reason.is_not(None),
    }
    shown = {"failing", "conflicts"}  # the lists that show the reports' figures
    firsts = [
        select(
            literal(kind).label("list"),
            FCR.c.checklist_id,
            FCR.c.station_code.label("station"),
            FCR.c.received_at,
            FCR.c.review_state,
            FCR.c.fails,
            FCR.c.reason,
            FCR.c.figures if kind in shown else cast(null(), FCR.c.figures.type).label("figures"),
        )
        .where(in_scope, which)
        .order_by(FCR.c.station_code, FCR.c.received_at, FCR.c.checklist_id)
        .limit(LIST_LIMIT)
        .subquery(kind)
        for kind, which in kinds.items()
    ]
    out: dict[str, list[Any]] = {kind: [] for kind in kinds}
    result = session.execute(union_all(*[select(f) for f in firsts]))
    names = list(result.keys())
    for row in result.all():
        listed = dict(zip(names, row, strict=True))
        listed.update(_fail_flags(listed["fails"]))
        if listed["figures"] is not None:
            listed.update(listed["figures"])
        out[listed["list"]].append(listed)
    return _in_order(out)


def _in_order(lists: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """Each list in order of station, arrival and id."""
    for rows in lists.values():
        rows.sort(key=lambda r: (r["station"], r["received_at"], r["checklist_id"]))
    return lists


@functools.cache
def _fail_flags(fails: int) -> dict[str, bool]:
    """A kept report's `fails` bits as the `fail_<check>` flags of a checked pivot row."""
    return {f"fail_{name}": bool(fails >> bit & 1) for bit, name in enumerate(CHECKS)}


def _lists(session: Session, c: Any, ch: Checked) -> dict[str, list[Any]]:
    """The reports the view lists, up to LIST_LIMIT of each kind, in one pass over the
    pivot in order of station and arrival: those failing a check, those of stations whose
    reports disagree (`conflicts`), and those the totals include and leave out (with the
    `reason`). A report is read once, with a running count per list it belongs to, and
    leaves the database if it is among the first LIST_LIMIT of one of them. (A branch per
    list sorted, limited and looked up every station again for each list.)"""
    p, listed = ch.rows, _listing(ch, c)
    kinds = {
        "failing": ch.failing,
        "conflicts": listed.conflict,
        "included": listed.included,
        "excluded": ~listed.included,
    }
    member = (
        select(
            p,  # with its `fail_` columns
            ST.c.code.label("station"),
            listed.reason.label("reason"),
            *[case((where, 1), else_=0).label(f"in_{kind}") for kind, where in kinds.items()],
        )
        .select_from(p.join(ST, ST.c.id == p.c.station_id))
        .subquery("member")
    )
    order = (member.c.station, member.c.received_at, member.c.checklist_id)
    ranked = select(
        member,
        *[
            func.sum(member.c[f"in_{kind}"]).over(order_by=order).label(f"at_{kind}")
            for kind in kinds
        ],
    ).subquery("ranked")
    shown = or_(
        *[and_(ranked.c[f"in_{kind}"] == 1, ranked.c[f"at_{kind}"] <= LIST_LIMIT) for kind in kinds]
    )
    out: dict[str, list[Any]] = {kind: [] for kind in kinds}
    for row in session.execute(select(ranked).where(shown)).mappings().all():
        for kind in kinds:
            if row[f"in_{kind}"] == 1 and row[f"at_{kind}"] <= LIST_LIMIT:
                out[kind].append(row)
    return _in_order(out)


def _inclusion(lists: dict[str, list[Any]], counts: tuple[int, int, int, int]) -> CountingInclusion:
    """Which reports the totals use and which they leave out, each with its reason:
    `inconsistent` (the checks it fails), `incomplete` (a vote figure not copied) or
    `another_report_used` (the station's totals come from another of its reports).
    `counts`: reports, included, inconsistent and incomplete ones."""
    reports, n_included, n_inconsistent, n_incomplete = counts
    return CountingInclusion.model_validate(
        {
            "rule": INCLUSION_RULE,
            "included_count": n_included,
            "excluded_count": reports - n_included,
            "excluded_by_reason": {
                "inconsistent": n_inconsistent,
                "incomplete": n_incomplete,
                "another_report_used": reports - n_included - n_inconsistent - n_incomplete,
            },
            "included": [
                {
                    "checklist_id": r["checklist_id"],
                    "station": r["station"],
                    "review_state": r["review_state"],
                }
                for r in lists["included"]
            ],
            "excluded": [
                {
                    "checklist_id": r["checklist_id"],
                    "station": r["station"],
                    "review_state": r["review_state"],
                    "reason": r["reason"],
                    "fails": [n for n in CONSISTENCY if r[f"fail_{n}"]],
                }
                for r in lists["excluded"]
            ],
        }
    )


def _figures(row: Any, option_codes: list[str]) -> dict[str, int | None]:
    out: dict[str, int | None] = {f: row[f] for f in FIGURES}
    for i, code in enumerate(option_codes):
        out[code] = row[f"v{i + 1}"]
    return out


def _conflicts(rows: list[Any], option_codes: list[str]) -> list[CountingConflict]:
    """The reports of stations whose reports disagree, per station, with what differs."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        slot = out.setdefault(r["station"], {"station": r["station"], "reports": []})
        slot["reports"].append(
            {
                "checklist_id": r["checklist_id"],
                "review_state": r["review_state"],
                "received_at": r["received_at"],
                "figures": _figures(r, option_codes),
            }
        )
    for slot in out.values():
        first = slot["reports"][0]["figures"]
        slot["differing"] = sorted(
            k for k in first if any(rep["figures"][k] != first[k] for rep in slot["reports"])
        )
    return [CountingConflict.model_validate(slot) for slot in out.values()]


def _chosen(p: Any, usable: Any) -> Any:
    """One report per station among the `usable` ones: the latest verified, else the
    latest."""
    rank = (
        func.row_number()
        .over(
            partition_by=p.c.station_id,
            order_by=(
                case((p.c.review_state == "verified", 0), else_=1),
                p.c.received_at.desc(),
                p.c.checklist_id.desc(),
            ),
        )
        .label("rank")
    )
    ranked = select(p, rank).where(usable).subquery("ranked")
    return select(ranked).where(ranked.c.rank == 1).cte("chosen")


def _totals(
    row: Any, figures: list[str], option_codes: list[str], cfg: FindingsSettings
) -> CountingTotals:
    """The totals over one report per station, from their count and sums (`row`)."""
    sums = dict(zip(figures, (int(v) for v in row[1:]), strict=True))
    valid = sums["valid"]
    options = [
        {
            "code": code,
            "votes": sums[f"v{i + 1}"],
            "share": share_value(Fraction(sums[f"v{i + 1}"], valid)) if valid else None,
            "text": percent(Fraction(sums[f"v{i + 1}"], valid)) if valid else None,
        }
        for i, code in enumerate(option_codes)
    ]
    registered, in_box = sums["registered"], sums["in_box"]
    return CountingTotals.model_validate(
        {
            "stations": int(row[0]),
            "stations_text": share_text(int(row[0]), int(row[0]), cfg.small_denominator),
            "figures": {f: sums[f] for f in FIGURES},
            "options": options,
            "turnout": share_value(Fraction(in_box, registered)) if registered else None,
            "note": "totals over the stations observed; not an estimate of the national result",
        }
    )


def _sample_sums(c: Any, n_opts: int) -> Any:
    """What the ratio estimator needs from the sampled stations' reports: n, Σx, Σx², and
    per option Σy, Σy², Σxy (x the valid votes, y the option's)."""
    x = cast(c.c.valid, Float())
    aggregates: list[Any] = [func.count(), func.sum(x), func.sum(x * x)]
    for i in range(n_opts):
        y = cast(c.c[f"v{i + 1}"], Float())
        aggregates += [func.sum(y), func.sum(y * y), func.sum(x * y)]
    return select(*aggregates).where(c.c.valid.is_not(None))


def _quick_count(
    session: Session,
    scope: Scope,
    row: Any,
    option_codes: list[str],
    cfg: FindingsSettings,
) -> QuickCount | None:
    big_n = cfg.population_stations or int(
        session.scalar(select(func.count()).where(ST.c.mission_id == scope.mission_id)) or 0
    )
    n, sum_x, sxx = int(row[0]), float(row[1] or 0), float(row[2] or 0)
    estimates = []
    for i, code in enumerate(option_codes):
        sum_y, syy, sxy = (float(v or 0) for v in row[3 + 3 * i : 6 + 3 * i])
        est = ratio_estimate(n, big_n, sum_y, sum_x, syy, sxy, sxx)
        if est is None:
            return None
        # Rounded once: the text, the draft statement and the figures say the same.
        share, margin = (share_value(v) for v in est)
        estimates.append(
            {
                "code": code,
                "share": share,
                "margin95": margin,
                "text": f"{percent(share)} ± {percent(margin)}",
            }
        )
    return QuickCount.model_validate(
        {
            "sampled_stations": n,
            "population_stations": big_n,
            "method": "ratio estimator over the sampled stations, 95 % margin with "
            "finite-population correction",
            "options": estimates,
        }
    )


def every_report(
    session: Session, scope: Scope, cfg: FindingsSettings
) -> tuple[list[str], Any] | None:
    """Every counting report with its figures and a 0/1 per check (1: it fails), streamed
    for exports; None when the mission has no protocol or the scope has no closing."""
    protocol = protocol_of(session, scope.mission_id)
    if protocol is None or scope.empty or scope.filters.phase not in (None, "closing"):
        return None
    ch = _checked(_pivot(scope, protocol), len(protocol.options), cfg)
    p, flags, figures = ch.rows, ch.flags, ch.figures
    names = ["checklist_id", "station", "received_at", "review_state"]
    names += [*FIGURES, *protocol.options, *[f"fails_{n}" for n in flags]]
    q = (
        select(
            p.c.checklist_id,
            ST.c.code,
            p.c.received_at,
            p.c.review_state,
            *[p.c[f] for f in figures],
            *flags.values(),
        )
        .select_from(p.join(ST, ST.c.id == p.c.station_id))
        .order_by(ST.c.code, p.c.received_at, p.c.checklist_id)
    )
    return names, session.execute(q.execution_options(stream_results=True, yield_per=1000))
