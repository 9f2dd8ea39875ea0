"""A plain reference of the findings, for the property test: pure Python over the raw
checklists (as the phones sent them) and the analysts' review decisions.

It shares no code with `api/services/findings`: it reads the template's YAML itself, keeps
its own scope rules and its own rounding, and writes each view as the README describes it.
Where the README left a rule open, the rule chosen is named here once, in a small function
of its own, so that a change of the semantics is a change of one function:

- `counted_version`: which version of a checklist counts (the latest, unless rejected,
  quarantined or a correction held for an analyst: `held_when_corrected`);
- `total_report`: which counting reports of a station the vote totals may use, and which one;
- `reported_at`: when an observer, and a team, count as having reported at a station;
- `window`: the time window a filter selects (half-open, widened to whole minutes);
- `pattern`: when a critical problem is clustered, scattered or too rare to say.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml

TEMPLATE_FILE = Path(__file__).parents[1] / "api" / "data" / "default_checklist.yaml"
PHASES = ("opening", "voting", "closing", "incident")
SCALE4 = ("very_good", "good", "bad", "very_bad")
NEGATIVE = ("bad", "very_bad")
BUILT_IN = {
    "yes": "Yes",
    "no": "No",
    "na": "Not applicable",
    "very_good": "Very good",
    "good": "Good",
    "bad": "Bad",
    "very_bad": "Very bad",
}
SMALL_DEFAULT = 30
CLUSTER_MIN_CASES, CLUSTER_MIN_SHARE, CLUSTER_MIN_LIFT = 5, Fraction(1, 2), 2  # defaults
ISSUED_ALLOWANCE, TURNOUT_MAX, INVALID_MAX, OPTION_MAX, FIGURE_MAX = (
    5,
    "0.95",
    "0.10",
    "0.90",
    100000,
)
LIST_LIMIT = 500


# --- the raw data ------------------------------------------------------------------------


@dataclass
class Station:
    code: str
    place: tuple[str, ...]  # ("North", "Lake") or ("Turkey", "Ankara")
    abroad: bool
    latitude: float | None = None  # None: not on the map
    longitude: float | None = None


@dataclass
class Observer:
    code: str
    name: str
    team: str | None
    stations: list[str]


@dataclass
class Version:
    """One checklist version as sent, with the review decisions taken on it so far."""

    id: str
    chain: str  # the id of the chain's first version
    version: int
    observer: str
    station: str
    phase: str
    template_version: int
    observed_at: datetime  # aware, with the phone's offset
    answers: dict[str, Any]
    received_at: datetime | None = None  # the server's, read back for the arrivals
    review_state: str = "received"
    quarantined: bool = False
    held: bool = False  # a correction waiting for an analyst (set by `held_when_corrected`)


@dataclass
class Mission:
    stations: dict[str, Station] = field(default_factory=dict)
    observers: dict[str, Observer] = field(default_factory=dict)
    versions: dict[str, Version] = field(default_factory=dict)  # in the order sent
    small: int = SMALL_DEFAULT
    cluster_min_cases: int = CLUSTER_MIN_CASES

    def chains(self) -> dict[str, list[Version]]:
        out: dict[str, list[Version]] = defaultdict(list)
        for v in self.versions.values():
            out[v.chain].append(v)
        return {k: sorted(vs, key=lambda v: v.version) for k, vs in out.items()}


@dataclass(frozen=True)
class Question:
    code: str
    type: str
    label: str
    section: str
    phases: tuple[str, ...]
    options: dict[str, str]  # code -> English label, as the view lists them
    critical: frozenset[str]
    show_if: tuple[str, frozenset[str]] | None


def read_template() -> tuple[dict[str, Question], dict[str, Any]]:
    """The default template's questions in order, and its protocol block, from the YAML."""
    raw = yaml.safe_load(TEMPLATE_FILE.read_text())
    out: dict[str, Question] = {}
    for section in raw["sections"]:
        for q in section["questions"]:
            kind = q["type"]
            if kind == "yes_no":
                options = {v: BUILT_IN[v] for v in ("yes", "no", "na")}
            elif kind == "scale4":
                options = {v: BUILT_IN[v] for v in (*SCALE4, "na")}
            else:
                options = {o["code"]: o["label"]["en"] for o in q.get("options") or []}
                if q.get("allow_na"):
                    options["na"] = BUILT_IN["na"]
            cond = q.get("show_if")
            show_if = None
            if cond:
                values = cond["in"] if "in" in cond else [cond["equals"]]
                show_if = (cond["question"], frozenset(str(v) for v in values))
            out[q["code"]] = Question(
                q["code"],
                kind,
                q["label"]["en"],
                section["code"],
                tuple(section["phases"]),
                options,
                frozenset(q.get("critical") or []),
                show_if,
            )
    return out, raw["protocol"]


QUESTIONS, PROTOCOL = read_template()


# --- the semantics, one function each ----------------------------------------------------


def held_when_corrected(replaced: Version) -> bool:
    """A correction of a rejected or quarantined version, or of a correction still held,
    waits for an analyst: a correction alone must not undo a decision. Any review decision
    on it lifts the hold (its state and quarantine then say whether it counts)."""
    return replaced.review_state == "rejected" or replaced.quarantined or replaced.held


def counted_version(chain: list[Version]) -> Version | None:
    """Which version of a checklist counts: only the latest, and not while it is rejected,
    quarantined or held (a correction starts `received` and keeps its chain's quarantine)."""
    latest = chain[-1]
    if latest.review_state == "rejected" or latest.quarantined or latest.held:
        return None
    return latest


def usable_for_totals(v: Version) -> str | None:
    """Why a counting report may not enter the vote totals (None: it may): `inconsistent`
    when it fails a consistency check, `incomplete` when its valid ballots or a vote figure
    is missing. The threshold checks only flag."""
    fig = figures_of(v)
    if set(fails(fig)) & set(CONSISTENCY):
        return "inconsistent"
    if any(fig[k] is None for k in ("valid", *PROTOCOL["options"])):
        return "incomplete"
    return None


def total_report(reports: list[Version]) -> Version | None:
    """The report of a station the vote totals use: among its usable reports the latest
    verified one, else the latest (ties by the later id); none when none is usable."""
    usable = [v for v in reports if usable_for_totals(v) is None]
    if not usable:
        return None
    return max(usable, key=lambda v: (v.review_state == "verified", v.received_at, v.id))


def reported_at(members: list[Observer], station: str, counted: list[Version]) -> list[Version]:
    """The checklists that count as `members` (one observer, or a team) having reported at
    the station: any of theirs there."""
    codes = {o.code for o in members}
    return [v for v in counted if v.observer in codes and v.station == station]


def pattern(count: int, top: int, expected: Fraction, min_cases: int) -> str:
    """Too few under `min_cases` (5 unless the mission says); clustered when the top region
    holds at least half of the cases and at least twice its share of the observations;
    else scattered."""
    if count < min_cases:
        return "too_few"
    share = Fraction(top, count)
    if share >= CLUSTER_MIN_SHARE and share >= CLUSTER_MIN_LIFT * expected:
        return "clustered"
    return "scattered"


# --- rounding and words ------------------------------------------------------------------


def rounded(value: Fraction, places: int) -> Decimal:
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(
        Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP
    )


def share4(count: int, n: int) -> float:
    return float(rounded(Fraction(count, n), 4))


def pct(value: Fraction) -> str:
    text = str(rounded(value * 100, 1))
    return (text[:-2] if text.endswith(".0") else text) + "%"


def share_text(count: int, n: int, small: int) -> str:
    return f"{count} of {n}" if n < small else f"{pct(Fraction(count, n))} ({count} of {n})"


# --- scope -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    location: str | None = None
    abroad: bool | None = None
    phase: str | None = None
    team: str | None = None
    observed_from: datetime | None = None
    observed_to: datetime | None = None
    template: str | None = None
    template_version: int | None = None

    def asdict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def window(f: Filters) -> tuple[datetime | None, datetime | None]:
    """The time window, half-open and widened to whole minutes: its start down, its end up
    (so that dashboards asking a few seconds apart ask the same question)."""
    start, end = f.observed_from, f.observed_to
    if start is not None:
        start -= timedelta(seconds=start.second, microseconds=start.microsecond)
    if end is not None:
        past = timedelta(seconds=end.second, microseconds=end.microsecond)
        end += (timedelta(minutes=1) - past) if past else timedelta(0)
    return start, end


def station_in_scope(m: Mission, code: str, f: Filters) -> bool:
    s = m.stations[code]
    if f.abroad is not None and s.abroad != f.abroad:
        return False
    if f.location is not None:
        wanted = tuple(f.location.split("/"))
        if s.place[: len(wanted)] != wanted:
            return False
    return True


def in_scope(m: Mission, v: Version, f: Filters, phase: bool = True) -> bool:
    if phase and f.phase is not None and v.phase != f.phase:
        return False
    if not station_in_scope(m, v.station, f):
        return False
    if f.team is not None and m.observers[v.observer].team != f.team:
        return False
    start, end = window(f)
    if start is not None and v.observed_at < start:
        return False
    if end is not None and v.observed_at >= end:
        return False
    if f.template is not None and f.template != "default":
        return False
    return f.template_version is None or v.template_version == f.template_version


def counted(m: Mission, f: Filters, phase: bool = True) -> list[Version]:
    out = []
    for chain in m.chains().values():
        v = counted_version(chain)
        if v is not None and in_scope(m, v, f, phase):
            out.append(v)
    return out


def region(m: Mission, v: Version) -> str:
    return m.stations[v.station].place[0]


def chosen(v: Version, code: str) -> list[str]:
    """The answer's values as text (a multi answer's options; nothing when unanswered)."""
    a = v.answers.get(code)
    if a is None:
        return []
    if isinstance(a, list):
        return [str(x) for x in a]
    return [str(a)]


# --- findings ----------------------------------------------------------------------------


def findings(m: Mission, f: Filters) -> dict[str, Any]:
    scope = counted(m, f)
    phases_out, irregularities = [], []
    for phase in PHASES:
        vs = [v for v in scope if v.phase == phase]
        if not vs:
            continue
        items = []
        for code, q in QUESTIONS.items():
            if phase not in q.phases or q.type == "text":
                continue
            answered = [v for v in vs if chosen(v, code) and chosen(v, code) != ["na"]]
            na = sum(1 for v in vs if chosen(v, code) == ["na"])
            if q.show_if is not None:
                parent, accepted = q.show_if
                asked = sum(1 for v in vs if set(chosen(v, parent)) & accepted)
            else:
                asked = len(vs)
            n = len(answered)
            item: dict[str, Any] = {
                "code": code,
                "label": q.label,
                "type": q.type,
                "section": q.section,
                "asked": asked,
                "answered": n,
                "not_applicable": na,
                "unanswered": max(0, asked - n - na),
                "stations": len({v.station for v in answered}),
                "critical": sum(1 for v in vs for value in chosen(v, code) if value in q.critical),
            }
            if q.type == "integer":
                item["total"] = sum(int(v.answers[code]) for v in answered)
            elif q.type != "time":
                answers = []
                for value, label in q.options.items():
                    having = [v for v in vs if value in chosen(v, code)]
                    if value == "na" and not having:
                        continue
                    answers.append(
                        {
                            "value": value,
                            "label": label,
                            "count": len(having),
                            "stations": len({v.station for v in having}),
                            "share": share4(len(having), n) if n and value != "na" else None,
                            "text": share_text(len(having), n, m.small) if value != "na" else None,
                            "ci95": None,
                            "critical": value in q.critical,
                        }
                    )
                item["answers"] = answers
                if q.type == "scale4":
                    neg = sum(1 for v in answered if chosen(v, code)[0] in NEGATIVE)
                    item["negative"] = {
                        "count": neg,
                        "share": share4(neg, n) if n else None,
                        "text": share_text(neg, n, m.small),
                        "ci95": None,
                    }
                if set(q.options) - {"na"} == {"observed", "reported", "none"}:
                    irregularities.append(
                        {
                            "phase": phase,
                            "code": code,
                            "label": q.label,
                            "answered": n,
                            "observed": _with(vs, code, "observed"),
                            "reported": _with(vs, code, "reported"),
                            "cases": sum(int(v.answers.get(f"{code}N") or 0) for v in vs),
                        }
                    )
            items.append(item)
        phases_out.append(
            {
                "phase": phase,
                "observations": len(vs),
                "stations": len({v.station for v in vs}),
                "questions": items,
            }
        )
    return {
        "totals": {
            "observations": len(scope),
            "stations": len({v.station for v in scope}),
            "phases": [
                {k: p[k] for k in ("phase", "observations", "stations")} for p in phases_out
            ],
        },
        "phases": phases_out,
        "irregularities": irregularities,
    }


def _with(vs: list[Version], code: str, value: str) -> dict[str, int]:
    having = [v for v in vs if value in chosen(v, code)]
    return {"count": len(having), "stations": len({v.station for v in having})}


# --- coverage ----------------------------------------------------------------------------


def coverage(m: Mission, f: Filters) -> dict[str, Any]:
    stations = [s for s in m.stations.values() if station_in_scope(m, s.code, f)]
    assigned = {c for o in m.observers.values() for c in o.stations}
    scope, any_phase = counted(m, f), counted(m, f, phase=False)
    regions = []
    for top, abroad in sorted({(s.place[0], s.abroad) for s in stations}):
        mine = [s for s in stations if s.place[0] == top]
        observed: dict[str, dict[str, int]] = {}
        for phase in PHASES:
            vs = [v for v in scope if v.phase == phase and region(m, v) == top]
            if vs:
                observed[phase] = {
                    "observations": len(vs),
                    "stations": len({v.station for v in vs}),
                }
        regions.append(
            {
                "region": top,
                "abroad": abroad,
                "stations": len(mine),
                "assigned": sum(1 for s in mine if s.code in assigned),
                "observed": observed,
                "observed_any_phase": len({v.station for v in any_phase if region(m, v) == top}),
            }
        )
    missing = []
    for o in m.observers.values():
        if f.team is not None and o.team != f.team:
            continue
        mine_st = [c for c in dict.fromkeys(o.stations) if station_in_scope(m, c, f)]
        if not mine_st:
            continue
        reported = sum(1 for c in mine_st if reported_at([o], c, scope))
        if reported < len(mine_st):
            missing.append(
                {
                    "code": o.code,
                    "name": o.name,
                    "team": o.team,
                    "assigned": len(mine_st),
                    "reported": reported,
                    "missing": len(mine_st) - reported,
                }
            )
    missing.sort(key=lambda r: (r["reported"], r["code"]))
    teams: dict[str, list[Observer]] = defaultdict(list)  # a team of one by its code
    for o in m.observers.values():
        teams[o.team if o.team is not None else o.code].append(o)
    teams_missing = []
    for name, members in teams.items():
        if f.team is not None and name != f.team:
            continue
        plan = sorted({c for o in members for c in o.stations if station_in_scope(m, c, f)})
        not_seen = [c for c in plan if not reported_at(members, c, scope)]
        if not_seen:
            teams_missing.append(
                {
                    "team": name,
                    "members": [
                        {"code": o.code, "name": o.name}
                        for o in sorted(members, key=lambda o: o.code)
                    ],
                    "assigned": len(plan),
                    "reported": len(plan) - len(not_seen),
                    "missing": len(not_seen),
                    "missing_stations": not_seen,
                }
            )
    teams_missing.sort(key=lambda r: (r["reported"], r["team"]))
    arrivals: dict[str, dict[str, Any]] = {}
    for v in m.versions.values():
        if v.version != 1 or not in_scope(m, v, f):
            continue
        assert v.received_at is not None
        hour = v.received_at.astimezone(UTC).strftime("%Y-%m-%dT%H:00Z")
        slot = arrivals.setdefault(hour, {"hour": hour, "checklists": 0, "phases": {}})
        slot["checklists"] += 1
        slot["phases"][v.phase] = slot["phases"].get(v.phase, 0) + 1
    return {
        "regions": regions,
        "teams_missing": {"count": len(teams_missing), "unit": "team", "data": teams_missing},
        "observers_missing": {"count": len(missing), "data": missing[:LIST_LIMIT]},
        "arrivals_per_hour": [arrivals[h] for h in sorted(arrivals)],
    }


# --- incidents ---------------------------------------------------------------------------


def incidents(m: Mission, f: Filters) -> dict[str, Any]:
    if f.phase not in (None, "incident"):
        return {"count": 0, "by_type": [], "by_region": [], "by_hour": [], "reports": []}
    kind_q = QUESTIONS["G1"]
    vs = [v for v in counted(m, f) if v.phase == "incident"]
    by_type: dict[str, dict[str, Any]] = {}
    by_region: dict[str, int] = defaultdict(int)
    by_hour: dict[int, int] = defaultdict(int)
    for v in vs:
        kind = v.answers.get("G1") or "unknown"
        slot = by_type.setdefault(
            kind,
            {
                "type": kind,
                "label": kind_q.options.get(kind, kind),
                "count": 0,
                "observed": 0,
                "reported": 0,
                "critical": kind in kind_q.critical,
            },
        )
        slot["count"] += 1
        if v.answers.get("G2") in ("observed", "reported"):
            slot[v.answers["G2"]] += 1
        by_region[region(m, v)] += 1
        by_hour[v.observed_at.hour] += 1  # the hour on the observer's own clock
    return {
        "count": len(vs),
        "by_type": sorted(by_type.values(), key=lambda t: (-t["count"], t["type"])),
        "by_region": [{"region": r, "count": n} for r, n in sorted(by_region.items())],
        "by_hour": [{"hour": h, "count": n} for h, n in sorted(by_hour.items())],
        "reports": sorted(
            (
                {
                    "checklist_id": v.id,
                    "station": v.station,
                    "region": region(m, v),
                    "type": v.answers.get("G1"),
                    "source": v.answers.get("G2"),
                    "time": v.answers.get("G3"),
                    "description": v.answers.get("G4"),
                }
                for v in vs
            ),
            key=lambda r: r["checklist_id"],
        ),
    }


# --- critical ----------------------------------------------------------------------------


def station_map(m: Mission, f: Filters) -> dict[str, Any]:
    """The map: the stations in scope with coordinates, each with the phases it was
    observed in and whether one of its counted checklists has a critical answer."""
    phases: dict[str, set[str]] = defaultdict(set)
    critical_at: set[str] = set()
    for v in counted(m, f):
        phases[v.station].add(v.phase)
        for code in v.answers:
            q = QUESTIONS.get(code)
            if q is not None and any(value in q.critical for value in chosen(v, code)):
                critical_at.add(v.station)
    stations = [s for s in m.stations.values() if station_in_scope(m, s.code, f)]
    placed = sorted((s for s in stations if s.latitude is not None), key=lambda s: s.code)
    return {
        "stations": [
            {
                "code": s.code,
                "latitude": s.latitude,
                "longitude": s.longitude,
                "phases": [p for p in PHASES if p in phases[s.code]],
                "critical": s.code in critical_at,
            }
            for s in placed
        ],
        "observed": sum(1 for s in placed if phases[s.code]),
        "placeless": len(stations) - len(placed),
    }


def critical(m: Mission, f: Filters) -> dict[str, Any]:
    scope = counted(m, f)
    per_region: dict[str, int] = defaultdict(int)
    for v in scope:
        per_region[region(m, v)] += 1
    total = sum(per_region.values())
    cases: dict[tuple[str, str], list[Version]] = defaultdict(list)
    for v in scope:
        for code in v.answers:
            q = QUESTIONS.get(code)
            if q is None:
                continue
            for value in chosen(v, code):
                if value in q.critical:
                    cases[(code, value)].append(v)
    by_question, table, listing = [], defaultdict(dict), []
    for (code, value), vs in cases.items():
        q = QUESTIONS[code]
        regions: dict[str, int] = defaultdict(int)
        phases: dict[str, int] = defaultdict(int)
        for v in vs:
            regions[region(m, v)] += 1
            phases[v.phase] += 1
            table[region(m, v)][f"{code}={value}"] = (
                table[region(m, v)].get(f"{code}={value}", 0) + 1
            )
            listing.append(
                {
                    "checklist_id": v.id,
                    "code": code,
                    "value": value,
                    "phase": v.phase,
                    "station": v.station,
                    "region": region(m, v),
                }
            )
        top = max(regions.items(), key=lambda kv: (kv[1], kv[0]))[0]
        expected = Fraction(per_region[top], total)
        lift = Fraction(regions[top], len(vs)) / expected
        by_question.append(
            {
                "code": code,
                "value": value,
                "label": q.label,
                "answer": q.options.get(value, value),
                "count": len(vs),
                "stations": len({v.station for v in vs}),
                "phases": dict(phases),
                "regions": [{"region": r, "count": n} for r, n in sorted(regions.items())],
                "regions_affected": len(regions),
                "top_region": top,
                "top_region_share": share4(regions[top], len(vs)),
                "top_region_observation_share": float(rounded(expected, 4)),
                "lift": float(rounded(lift, 2)),
                "pattern": pattern(len(vs), regions[top], expected, m.cluster_min_cases),
            }
        )
    by_question.sort(key=lambda p: (-p["count"], p["code"], p["value"]))
    having = {v.id: v for vs in cases.values() for v in vs}
    return {
        "count": sum(p["count"] for p in by_question),
        "observations": len(having),
        "stations": len({v.station for v in having.values()}),
        "clustering": {
            "min_cases": m.cluster_min_cases,
            "min_share": float(CLUSTER_MIN_SHARE),
            "min_lift": CLUSTER_MIN_LIFT,
        },
        "by_question": by_question,
        "regions": [
            {"region": r, "observations": per_region[r], "problems": dict(sorted(cells.items()))}
            for r, cells in sorted(table.items())
        ],
        "checklists": sorted(listing, key=lambda c: (c["checklist_id"], c["code"], c["value"])),
    }


# --- counting ----------------------------------------------------------------------------

CHECKS = (
    "options_sum_to_valid",
    "valid_invalid_blank_make_in_box",
    "ballots_accounted_for",
    "in_box_not_above_issued",
    "issued_not_above_registered",
    "turnout_below_threshold",
    "invalid_below_threshold",
    "no_option_above_threshold",
    "figures_plausible",
)
# The checks whose failure keeps a report out of the totals (the thresholds only flag).
CONSISTENCY = (*CHECKS[:5], "figures_plausible")
FIGURE_NAMES = tuple(k for k in PROTOCOL if k != "options")  # as the template names them


def figures_of(v: Version) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for name in FIGURE_NAMES:
        out[name] = v.answers.get(PROTOCOL[name])
    for code in PROTOCOL["options"]:
        out[code] = v.answers.get(code)
    return out


def fails(fig: dict[str, int | None]) -> list[str]:
    """The checks a report fails; a check over an unknown figure never fails."""
    opts = tuple(PROTOCOL["options"])
    turnout, invalid, option = Fraction(TURNOUT_MAX), Fraction(INVALID_MAX), Fraction(OPTION_MAX)
    # (check, the figures it reads, whether the report fails it, given those figures)
    rules: list[tuple[str, tuple[str, ...], Any]] = [
        ("options_sum_to_valid", (*opts, "valid"), lambda g: sum(g[o] for o in opts) != g["valid"]),
        (
            "valid_invalid_blank_make_in_box",
            ("in_box", "valid", "invalid", "blank"),
            lambda g: g["in_box"] != g["valid"] + g["invalid"] + g["blank"],
        ),
        (
            "ballots_accounted_for",
            ("received", "issued", "unused", "spoiled"),
            lambda g: g["received"] != g["issued"] + g["unused"] + g["spoiled"],
        ),
        ("in_box_not_above_issued", ("in_box", "issued"), lambda g: g["in_box"] > g["issued"]),
        (
            "issued_not_above_registered",
            ("issued", "registered"),
            lambda g: g["issued"] > g["registered"] + ISSUED_ALLOWANCE,
        ),
        (
            "turnout_below_threshold",
            ("registered", "in_box"),
            lambda g: g["registered"] > 0 and g["in_box"] > turnout * g["registered"],
        ),
        (
            "invalid_below_threshold",
            ("in_box", "invalid"),
            lambda g: g["in_box"] > 0 and g["invalid"] > invalid * g["in_box"],
        ),
        (
            "no_option_above_threshold",
            ("valid",),
            lambda g: (
                g["valid"] > 0
                and any(g[o] is not None and g[o] > option * g["valid"] for o in opts)
            ),
        ),
    ]
    out = [
        c for c, needs, failed in rules if all(fig[n] is not None for n in needs) and failed(fig)
    ]
    if any(v is not None and (v < 0 or v > FIGURE_MAX) for v in fig.values()):
        out.append("figures_plausible")
    return out


def counting(m: Mission, f: Filters) -> dict[str, Any]:
    if f.phase not in (None, "closing"):
        return {
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
    codes = [PROTOCOL[n] for n in FIGURE_NAMES] + list(PROTOCOL["options"])
    reports = [
        v
        for v in counted(m, f, phase=False)
        if v.phase == "closing" and any(v.answers.get(c) is not None for c in codes)
    ]
    failing = []
    failed = dict.fromkeys(CHECKS, 0)
    for v in reports:
        its = fails(figures_of(v))
        for name in its:
            failed[name] += 1
        if its:
            failing.append(
                {
                    "checklist_id": v.id,
                    "station": v.station,
                    "review_state": v.review_state,
                    "figures": figures_of(v),
                    "fails": [c for c in CHECKS if c in its],
                }
            )
    per_station: dict[str, list[Version]] = defaultdict(list)
    for v in reports:
        per_station[v.station].append(v)
    conflicts = []
    for station, vs in sorted(per_station.items()):
        figs = [figures_of(v) for v in vs]
        differing = sorted(k for k in figs[0] if any(fg[k] != figs[0][k] for fg in figs))
        if len(vs) > 1 and differing:
            conflicts.append(
                {"station": station, "reports": sorted(v.id for v in vs), "differing": differing}
            )
    picked = {station: total_report(vs) for station, vs in per_station.items()}
    chosen_reports = [v for v in picked.values() if v is not None]
    included, excluded = [], []
    for v in reports:
        if picked[v.station] is v:
            included.append(_row(v))
            continue
        reason = usable_for_totals(v) or "another_report_used"
        fails_of = [c for c in CONSISTENCY if c in fails(figures_of(v))]
        excluded.append(_row(v) | {"reason": reason, "fails": fails_of})
    by_reason = {
        r: sum(1 for e in excluded if e["reason"] == r)
        for r in ("inconsistent", "incomplete", "another_report_used")
    }
    sums = {
        name: sum(figures_of(v)[name] or 0 for v in chosen_reports)
        for name in (*FIGURE_NAMES, *PROTOCOL["options"])
    }
    valid = sums["valid"]
    n = len(chosen_reports)
    return {
        "protocol": {name: PROTOCOL[name] for name in FIGURE_NAMES}
        | {"options": list(PROTOCOL["options"])},
        "reports": len(reports),
        "stations": len(per_station),
        "checks": [{"check": c, "failed": failed[c], "checked": len(reports)} for c in CHECKS],
        "failing": sorted(failing, key=lambda r: r["checklist_id"]),
        "failing_reports": len(failing),
        "conflicts": conflicts,
        "conflict_stations": len(conflicts),
        "inclusion": {
            "included_count": len(included),
            "excluded_count": len(excluded),
            "excluded_by_reason": by_reason,
            "included": sorted(included, key=lambda r: r["checklist_id"]),
            "excluded": sorted(excluded, key=lambda r: r["checklist_id"]),
        },
        "totals": {
            "stations": n,
            "stations_text": share_text(n, n, m.small),
            "figures": {name: sums[name] for name in FIGURE_NAMES},
            "options": [
                {
                    "code": code,
                    "votes": sums[code],
                    "share": share4(sums[code], valid) if valid else None,
                    "text": pct(Fraction(sums[code], valid)) if valid else None,
                }
                for code in PROTOCOL["options"]
            ],
            "turnout": share4(sums["in_box"], sums["registered"]) if sums["registered"] else None,
        },
        "quick_count": None,
    }


def _row(v: Version) -> dict[str, Any]:
    return {"checklist_id": v.id, "station": v.station, "review_state": v.review_state}


# --- the draft statement's figures -------------------------------------------------------


def statement_figures(m: Mission, f: Filters) -> dict[str, Any]:
    """What the draft statement must say, as (sentence key, its figures): coverage per
    phase, the 4-point assessments, critical problems with their pattern, incidents, the
    counting checks and the reports the totals leave out."""
    fi, cr, inc, co = findings(m, f), critical(m, f), incidents(m, f), counting(m, f)
    if not fi["totals"]["observations"]:
        return {"observed": False}
    phases = {p["phase"]: p for p in fi["totals"]["phases"]}
    watched = ("opening", "voting", "closing")
    out: dict[str, Any] = {
        "observed": True,
        "voting_at": phases["voting"]["stations"] if "voting" in phases else None,
        "phases_at": {
            p: {k: phases[p][k] for k in ("observations", "stations")}
            for p in watched
            if p in phases
        }
        or None,
        "not_observed": [p for p in watched if p not in phases],
        "total": {k: fi["totals"][k] for k in ("observations", "stations")},
    }
    for phase, code in (("opening", "H1"), ("voting", "H2")):
        q = next(
            (
                q
                for p in fi["phases"]
                if p["phase"] == phase
                for q in p["questions"]
                if q["code"] == code
            ),
            None,
        )
        if q and q["answered"]:
            neg = q["negative"]["count"]
            out[code] = {"negative": neg, "answered": q["answered"]}
            if neg and q["answered"] >= m.small:
                out[code]["percent"] = pct(Fraction(neg, q["answered"]))
    problems = cr["by_question"]
    clustered = [p for p in problems if p["pattern"] == "clustered"]
    out["critical"] = cr["count"] and {
        "counts": {f"{p['code']}={p['value']}": p["count"] for p in problems},
        "clustered": [
            {
                "code": p["code"],
                "share": pct(
                    Fraction(
                        next(r["count"] for r in p["regions"] if r["region"] == p["top_region"]),
                        p["count"],
                    )
                ),
            }
            for p in clustered
        ],
        "otherwise": None
        if clustered
        else "too_few"
        if all(p["pattern"] == "too_few" for p in problems)
        else "scattered",
    }
    out["incidents"] = {t["type"]: t["count"] for t in inc["by_type"]}
    if co["reports"]:
        failed = len(co["failing"])
        out["counting"] = {
            "reports": co["reports"],
            "failed": failed,
            "all_failed": failed == co["reports"],
        }
        left_out = {
            r: co["inclusion"]["excluded_by_reason"][r] for r in ("inconsistent", "incomplete")
        }
        if any(left_out.values()):
            out["counting"]["left_out"] = left_out
    return out
