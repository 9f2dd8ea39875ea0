"""Counting: protocol figures checked for consistency, conflicts between two reports of one
station, vote totals (one report per station) and, for random samples, a quick count.

The checks follow the observation-method reference; each is a SQL expression over the
protocol figures pivoted per counting checklist, so only failing reports leave the database.
"""

from __future__ import annotations

import uuid
from fractions import Fraction
from typing import Any

from sqlalchemy import (
    BigInteger,
    Float,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.orm import Session

from api.checklist_schema import PROTOCOL_FIGURES, Protocol
from api.services.findings.questions import published
from api.services.findings.scope import FA, ST, Scope, applied_predicate
from api.services.findings.stats import (
    FindingsSettings,
    percent,
    ratio_estimate,
    share_text,
    share_value,
)

LIST_LIMIT = 500
FIGURES = PROTOCOL_FIGURES
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
    """One row per counting checklist that holds protocol figures: a common table
    expression, computed once however often its statement reads it. The
    figures come from the fold's rows (`finding_applied.answers`, pivoted when the
    checklist was applied), not from the answers of every closing checklist."""
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
            applied_predicate(scope, phase=False),
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


def counting(
    session: Session, scope: Scope, cfg: FindingsSettings, random_sample: bool
) -> dict[str, Any]:
    """Every counting report checked, conflicts flagged, totals from one report per station."""
    protocol = protocol_of(session, scope.mission_id)
    empty: dict[str, Any] = {
        "protocol": None,
        "reports": 0,
        "stations": 0,
        "checks": [],
        "failing": [],
        "failing_reports": 0,
        "conflicts": [],
        "conflict_stations": 0,
        "totals": None,
        "inclusion": None,
        "quick_count": None,
    }
    # A place and an `abroad=` that contradict each other select no report: the answer of
    # a scope without reports (the checks at 0 of 0, zero totals), as in every other view.
    if protocol is None or scope.filters.phase not in (None, "closing"):
        return empty
    p = _pivot(scope, protocol)
    n_opts = len(protocol.options)
    fails = _failures(p, n_opts, cfg)
    flags = {name: func.coalesce(case((cond, 1), else_=0), 0) for name, cond in fails.items()}
    # The checks' counts, the totals and the quick count in one statement over one pivot:
    # each statement that reads the pivot computes it again (a third of a second at 100,000
    # checklists).
    inconsistent = or_(*[flags[name] == 1 for name in CONSISTENCY])
    incomplete = or_(p.c.valid.is_(None), *[p.c[f"v{i + 1}"].is_(None) for i in range(n_opts)])
    c = _chosen(p, and_(~inconsistent, ~incomplete))
    figures = [*FIGURES, *[f"v{i + 1}" for i in range(n_opts)]]
    parts = [
        select(
            func.count(),
            func.count(p.c.station_id.distinct()),
            *[func.sum(flag) for flag in flags.values()],
            func.coalesce(func.sum(case((or_(*[f == 1 for f in flags.values()]), 1), else_=0)), 0),
            func.coalesce(func.sum(case((inconsistent, 1), else_=0)), 0),
            func.coalesce(func.sum(case((and_(~inconsistent, incomplete), 1), else_=0)), 0),
        ).subquery("checked"),
        select(func.count(), *[func.coalesce(func.sum(c.c[f]), 0) for f in figures]).subquery(
            "totals"
        ),
    ]
    if random_sample:
        parts.append(_sample_sums(c, n_opts).subquery("sample"))
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
    summary, totals_row, *sample = chunks
    reports, stations = int(summary[0]), int(summary[1])
    n_failing, n_inconsistent, n_incomplete = (int(v) for v in summary[-3:])
    checks = [
        {
            "check": name,
            "rule": CHECKS[name],
            "failed": int(summary[2 + i] or 0),
            "checked": reports,
        }
        for i, name in enumerate(flags)
    ]
    option_codes = protocol.options
    lists = _lists(session, p, c, flags, inconsistent, incomplete, n_opts)
    conflicts = _conflicts(lists["conflicts"], option_codes)
    failing = [
        {
            "checklist_id": r["checklist_id"],
            "station": r["station"],
            "review_state": r["review_state"],
            "figures": _figures(r, option_codes),
            "fails": [n for n in flags if r[f"fail_{n}"]],
        }
        for r in lists["failing"]
    ]
    return {
        "protocol": {f: getattr(protocol, f) for f in FIGURES} | {"options": option_codes},
        "reports": reports,
        "stations": stations,
        "checks": checks,
        "failing": failing,
        "failing_reports": n_failing,
        "conflicts": conflicts,
        "conflict_stations": len(conflicts),
        "totals": _totals(totals_row, figures, option_codes, cfg),
        "inclusion": _inclusion(
            lists,
            # The totals' count is the reports they include (one per station).
            (reports, int(totals_row[0]), n_inconsistent, n_incomplete),
        ),
        "quick_count": _quick_count(session, scope, sample[0], option_codes, cfg)
        if sample
        else None,
        "selection_rule": INCLUSION_RULE,
    }


def _lists(
    session: Session,
    p: Any,
    c: Any,
    flags: dict[str, Any],
    inconsistent: Any,
    incomplete: Any,
    n_opts: int,
) -> dict[str, list[Any]]:
    """The reports the view lists, up to LIST_LIMIT of each kind, in one statement over
    one pivot (each statement computes the pivot again): those failing a check, those of
    stations whose reports disagree (`conflicts`), and those the totals include and leave
    out (with the `reason`). Each list in order of station and arrival."""
    cols = [p.c[f] for f in FIGURES] + [p.c[f"v{i + 1}"] for i in range(n_opts)]
    disagree = or_(*[func.max(col) != func.min(col) for col in cols])
    conflicting = select(p.c.station_id).group_by(p.c.station_id).having(func.count() > 1, disagree)
    included = p.c.checklist_id.in_(select(c.c.checklist_id))
    reason = case(
        (included, None),
        (inconsistent, "inconsistent"),
        (incomplete, "incomplete"),
        else_="another_report_used",
    )
    kinds = {
        "failing": or_(*[f == 1 for f in flags.values()]),
        "conflicts": p.c.station_id.in_(conflicting),
        "included": included,
        "excluded": ~included,
    }
    branches = [
        select(
            literal(kind).label("list"),
            p,
            ST.c.code.label("station"),
            *[f.label(f"fail_{n}") for n, f in flags.items()],
            reason.label("reason"),
        )
        .select_from(p.join(ST, ST.c.id == p.c.station_id))
        .where(where)
        .order_by(ST.c.code, p.c.received_at, p.c.checklist_id)
        .limit(LIST_LIMIT)
        .subquery(kind)
        for kind, where in kinds.items()
    ]
    out: dict[str, list[Any]] = {kind: [] for kind in kinds}
    for row in session.execute(union_all(*[select(b) for b in branches])).mappings():
        out[row["list"]].append(row)
    for rows in out.values():
        rows.sort(key=lambda r: (r["station"], r["received_at"], r["checklist_id"]))
    return out


def _inclusion(lists: dict[str, list[Any]], counts: tuple[int, int, int, int]) -> dict[str, Any]:
    """Which reports the totals use and which they leave out, each with its reason:
    `inconsistent` (the checks it fails), `incomplete` (a vote figure not copied) or
    `another_report_used` (the station's totals come from another of its reports).
    `counts`: reports, included, inconsistent and incomplete ones."""
    reports, n_included, n_inconsistent, n_incomplete = counts
    return {
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


def _figures(row: Any, option_codes: list[str]) -> dict[str, int | None]:
    out: dict[str, int | None] = {f: row[f] for f in FIGURES}
    for i, code in enumerate(option_codes):
        out[code] = row[f"v{i + 1}"]
    return out


def _conflicts(rows: list[Any], option_codes: list[str]) -> list[Any]:
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
    return list(out.values())


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
) -> dict[str, Any]:
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
    return {
        "stations": int(row[0]),
        "stations_text": share_text(int(row[0]), int(row[0]), cfg.small_denominator),
        "figures": {f: sums[f] for f in FIGURES},
        "options": options,
        "turnout": share_value(Fraction(in_box, registered)) if registered else None,
        "note": "totals over the stations observed; not an estimate of the national result",
    }


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
) -> dict[str, Any] | None:
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
    return {
        "sampled_stations": n,
        "population_stations": big_n,
        "method": "ratio estimator over the sampled stations, 95 % margin with finite-population "
        "correction",
        "options": estimates,
    }


def every_report(
    session: Session, scope: Scope, cfg: FindingsSettings
) -> tuple[list[str], Any] | None:
    """Every counting report with its figures and a 0/1 per check (1: it fails), streamed
    for exports; None when the mission has no protocol or the scope has no closing."""
    protocol = protocol_of(session, scope.mission_id)
    if protocol is None or scope.empty or scope.filters.phase not in (None, "closing"):
        return None
    p = _pivot(scope, protocol)
    n_opts = len(protocol.options)
    flags = {
        name: func.coalesce(case((cond, 1), else_=0), 0)
        for name, cond in _failures(p, n_opts, cfg).items()
    }
    figures = [*FIGURES, *[f"v{i + 1}" for i in range(n_opts)]]
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
