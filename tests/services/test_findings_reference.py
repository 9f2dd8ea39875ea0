"""Every findings view, under every filter, equals a plain reference recompute of random
missions (tests/findings_reference.py over tests/mission_generator.py), checked after every
few events.

The fold is proven equal to the service's own recompute elsewhere; this test is the
independent one: the reference shares no code with `api/services/findings`. It found the
critical view's `top_region_observation_share` ignoring `abroad=` and shares rounded through
binary floating point (both fixed with it), then, aligned with issues 18 and 16, a problem's
`lift` rounded through a float and an empty `teams_missing` without its `unit`.

The default run is small (make test). `make test-deep` runs it longer on both databases:
several missions of hundreds of events (POLLCHECK_REFERENCE_MISSIONS, _EVENTS, _SEED).
"""

from __future__ import annotations

import os
import random
import re
from typing import Any

from api.services.findings import views
from api.services.findings.scope import Filters
from tests import findings_reference as ref
from tests.findings_factories import FRESH
from tests.mission_generator import Generator

MISSIONS = int(os.environ.get("POLLCHECK_REFERENCE_MISSIONS", "2"))
EVENTS = int(os.environ.get("POLLCHECK_REFERENCE_EVENTS", "30"))
CHECK_EVERY = int(os.environ.get("POLLCHECK_REFERENCE_CHECK_EVERY", "6"))
SEED = int(os.environ.get("POLLCHECK_REFERENCE_SEED", "2312"))
# At a checkpoint, the views other than the findings under a sample of the filters; at the
# end of a mission, every view under every filter.
SAMPLE = 5


def _get(session: Any, mission_id: Any, name: str, f: ref.Filters, lang: str | None = None) -> Any:
    session.commit()  # a new snapshot: everything committed so far
    return views.get_view(session, FRESH, mission_id, name, Filters(**f.asdict()), lang).parsed()


def _pick(d: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: d[k] for k in keys}


def actual_findings(body: dict[str, Any]) -> dict[str, Any]:
    return _pick(body, "totals", "phases", "irregularities")


def actual_coverage(body: dict[str, Any]) -> dict[str, Any]:
    missing, teams = body["observers_missing"], body["teams_missing"]
    return {
        "regions": body["regions"],
        # Teams of equal progress in the service's own order (by an internal id): by name.
        "teams_missing": teams
        | {"data": sorted(teams["data"], key=lambda r: (r["reported"], r["team"]))},
        "observers_missing": {
            "count": missing["count"],
            "data": [
                _pick(r, "code", "name", "team", "assigned", "reported", "missing")
                for r in missing["data"]
            ],
        },
        "arrivals_per_hour": body["arrivals_per_hour"],
    }


def actual_incidents(body: dict[str, Any]) -> dict[str, Any]:
    keys = ("checklist_id", "station", "region", "type", "source", "time", "description")
    return _pick(body, "count", "by_type", "by_region", "by_hour") | {
        "reports": sorted(
            (_pick(r, *keys) for r in body["reports"]), key=lambda r: r["checklist_id"]
        )
    }


def actual_critical(body: dict[str, Any]) -> dict[str, Any]:
    keys = ("checklist_id", "code", "value", "phase", "station", "region")
    listing = (_pick(c, *keys) for c in body["checklists"])
    clustering = {k: v for k, v in body["clustering"].items() if k != "rule"}
    return _pick(body, "count", "observations", "stations", "by_question", "regions") | {
        "clustering": clustering,
        "checklists": sorted(listing, key=lambda c: (c["checklist_id"], c["code"], c["value"])),
    }


def actual_counting(body: dict[str, Any]) -> dict[str, Any]:
    out = _pick(
        body,
        "protocol",
        "reports",
        "stations",
        "failing_reports",
        "conflict_stations",
        "quick_count",
    )
    inclusion = body["inclusion"]
    out["inclusion"] = inclusion and {
        k: sorted(v, key=lambda r: r["checklist_id"]) if k in ("included", "excluded") else v
        for k, v in inclusion.items()
        if k != "rule"
    }
    out["checks"] = [_pick(c, "check", "failed", "checked") for c in body["checks"]]
    out["failing"] = sorted(
        (
            _pick(r, "checklist_id", "station", "review_state", "figures", "fails")
            for r in body["failing"]
        ),
        key=lambda r: r["checklist_id"],
    )
    out["conflicts"] = [
        {
            "station": c["station"],
            "reports": sorted(r["checklist_id"] for r in c["reports"]),
            "differing": c["differing"],
        }
        for c in body["conflicts"]
    ]
    totals = body["totals"]
    out["totals"] = totals and {k: v for k, v in totals.items() if k != "note"}
    if body["protocol"] is None or body["totals"] is None:
        out["totals"] = None
    return out


def actual_statement(body: dict[str, Any], small: int) -> dict[str, Any]:
    """The statement's figures, read from its sentences' evidence and words."""
    by_key: dict[str, list[dict[str, Any]]] = {}
    for s in body["sentences"]:
        by_key.setdefault(s["key"], []).append(s)
    if "no_observations" in by_key:
        return {"observed": False}

    def counts(key: str) -> Any:
        return by_key[key][0]["evidence"]["counts"] if key in by_key else None

    out: dict[str, Any] = {
        "observed": True,
        "voting_at": (counts("voting_at") or {}).get("stations"),
        "phases_at": counts("phases_at"),
        "not_observed": [
            p for p in ("opening", "voting", "closing") if f"not_observed_{p}" in by_key
        ],
        "total": counts("total"),
    }
    for code, keys in (
        ("H1", ("opening_assessed", "opening_positive")),
        ("H2", ("voting_assessed", "voting_positive")),
    ):
        said = [s for k in keys for s in by_key.get(k, [])]
        if said:
            c = said[0]["evidence"]["counts"]
            out[code] = {"negative": c["negative"], "answered": c["answered"]}
            if c["negative"] and c["answered"] >= small:
                out[code]["percent"] = _percent_in(said[0]["text"])
    out["critical"] = "critical_summary" in by_key and {
        "counts": counts("critical_summary"),
        "clustered": [
            {
                "code": s["evidence"]["questions"][0],
                "share": re.search(r"with (\S+) of its", s["text"]).group(1),  # type: ignore[union-attr]
            }
            for s in by_key.get("critical_clustered", [])
        ],
        "otherwise": next(
            (
                k.removeprefix("critical_")
                for k in ("critical_too_few", "critical_scattered")
                if k in by_key
            ),
            None,
        ),
    }
    if not out["critical"]:
        assert "critical_none" in by_key
        out["critical"] = 0
    incidents = by_key.get("incidents") or by_key["incidents_none"]
    out["incidents"] = {
        k: v for k, v in incidents[0]["evidence"]["counts"].items() if k != "incidents"
    }
    key = next((k for k in ("checks_pass", "checks_fail", "checks_fail_all") if k in by_key), None)
    if key:
        c = counts(key)
        out["counting"] = {
            "reports": c["reports"],
            "failed": c.get("failed", 0),
            "all_failed": key == "checks_fail_all",
        }
        if "totals_excluded" in by_key:
            out["counting"]["left_out"] = counts("totals_excluded")
    return out


def _percent_in(text: str) -> str | None:
    found = re.findall(r"\d+(?:\.\d)?%", text)
    return found[0] if found else None


def actual_map(body: dict[str, Any]) -> dict[str, Any]:
    stations = [
        _pick(s, "code", "latitude", "longitude", "phases", "critical") for s in body["stations"]
    ]
    return {"stations": stations, "observed": body["observed"], "placeless": body["placeless"]}


VIEWS = {
    "findings": (ref.findings, actual_findings),
    "coverage": (ref.coverage, actual_coverage),
    "incidents": (ref.incidents, actual_incidents),
    "critical": (ref.critical, actual_critical),
    "counting": (ref.counting, actual_counting),
    "map": (ref.station_map, actual_map),
}


def difference(got: Any, want: Any, path: str = "") -> str:
    """Where two answers first differ, as a path with both values."""
    if isinstance(got, dict) and isinstance(want, dict) and got.keys() == want.keys():
        for k in got:
            if got[k] != want[k]:
                return difference(got[k], want[k], f"{path}.{k}")
    if isinstance(got, list) and isinstance(want, list) and len(got) == len(want):
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            if g != w:
                return difference(g, w, f"{path}[{i}]")
    return f"{path or '.'}: service {got!r}, reference {want!r}"


# The lists a view cuts at its first 500 rows (the rest are in the counts).
LIMITED = {"critical": "checklists", "incidents": "reports", "counting": "failing"}


def _as_listed(name: str, got: dict[str, Any], want: dict[str, Any]) -> dict[str, Any]:
    """The reference's full list where the view lists only the first 500: each of those
    must be in it; long missions only (make test-deep)."""
    key = LIMITED.get(name)
    if key is not None and len(want[key]) > ref.LIST_LIMIT:
        assert len(got[key]) == ref.LIST_LIMIT
        assert all(row in want[key] for row in got[key]), (
            f"{name}.{key}: a row not in the reference"
        )
        want = want | {key: got[key]}
    if name == "counting" and sum(len(c["reports"]) for c in want["conflicts"]) > ref.LIST_LIMIT:
        stations = {c["station"] for c in want["conflicts"]}
        assert {c["station"] for c in got["conflicts"]} <= stations
        want = want | {"conflicts": got["conflicts"]}
    return want


def compare(
    gen: Generator,
    filters: list[ref.Filters],
    statement: list[ref.Filters],
    names: tuple[str, ...] = tuple(VIEWS),
) -> int:
    """The views `names` under `filters`, and the statement under `statement`, against the
    reference; returns the comparisons made."""
    made = 0
    for f in filters:
        for name in names:
            expected, actual = VIEWS[name]
            got = actual(_get(gen.session, gen.mission_id, name, f))
            want = _as_listed(name, got, expected(gen.ref, f))
            assert got == want, f"{name} under {f.asdict()}: {difference(got, want)}"
            made += 1
    for f in statement:
        got = actual_statement(_get(gen.session, gen.mission_id, "statement", f), gen.ref.small)
        want = ref.statement_figures(gen.ref, f)
        assert got == want, f"statement under {f.asdict()}: {difference(got, want)}"
        made += 1
    return made


def test_every_view_under_every_filter_equals_a_plain_recompute_of_random_missions(
    client: Any, session: Any
) -> None:
    made = 0
    for m in range(MISSIONS):
        gen = Generator(SEED + m, client, session)
        pick = random.Random(SEED + m)
        for i in range(1, EVENTS + 1):
            gen.step()
            if i % CHECK_EVERY == 0 and i < EVENTS:
                every = gen.filters()
                # The findings (the most figures, and the cheapest view) under every filter,
                # the other views under a sample.
                made += compare(gen, every, [], ("findings",))
                others = tuple(n for n in VIEWS if n != "findings")
                made += compare(gen, pick.sample(every, SAMPLE), [ref.Filters()], others)
        every = gen.filters()
        statement = [*every[:3], ref.Filters(location="Turkey"), ref.Filters(phase="closing")]
        made += compare(gen, every, statement)
        assert len(gen.ref.versions) > EVENTS // 3
    assert made > 0
