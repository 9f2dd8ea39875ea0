"""The draft preliminary statement: short factual paragraphs built from the findings.

Deterministic: the same findings give the same Markdown, byte for byte; no text-generation
service is involved. Every sentence carries its numbers and its evidence (question codes,
counts, checklist ids), listed as footnotes in the Markdown and as data in the JSON.

Languages: each sentence is a template in PHRASES, keyed by language. To add a language,
add a dictionary with the same keys; a missing key falls back to English, and the answer
says which sentences did (`fallback`). Question wording comes from the template's own
labels in that language.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from api.services.findings.stats import percent

PHRASES: dict[str, dict[str, str]] = {
    "en": {
        "title": "Draft preliminary statement: findings of the observation",
        "h_coverage": "Deployment and coverage",
        "h_opening": "Opening",
        "h_access": "Observer access",
        "h_voting": "Voting",
        "h_accessibility": "Accessibility",
        "h_irregularities": "Irregularities",
        "h_count": "Counting",
        "h_incidents": "Incidents",
        "h_critical": "Critical answers",
        "h_evidence": "Evidence",
        "voting_at": "The Mission observed voting at {stations}{where}.",
        "where_in": " in {places}",
        "where_abroad": " abroad ({places})",
        "where_both": " in {places} and abroad ({abroad})",
        "phases_at": "Observers reported on the opening at {opening}, on voting in "
        "{voting_obs} at {voting}, and on the count at {closing}.",
        "total": "In all, the Mission received {observations} at {stations}.",
        "purposive": "Observers were deployed purposively, so these findings describe what "
        "was observed and are not estimates for the country as a whole.",
        "random": "The observed polling stations are a random sample; intervals are 95% "
        "Wilson score intervals.",
        "opening_assessed": "The opening was assessed negatively in {negative} ({code}).",
        "opening_positive": "The opening was assessed positively in {n} ({code}).",
        "access_full": "Observers had full access: they were admitted without restriction in "
        "{admitted} and none of them was asked to leave or restricted ({codes}).",
        "access_restricted": "Observers were admitted without restriction in {admitted}; "
        "they were asked to leave or restricted in {restricted} ({codes}).",
        "voting_assessed": "Voting was assessed negatively in {negative} ({code}).",
        "voting_positive": "Voting was assessed positively in {n} ({code}).",
        "secrecy": "The secrecy of the vote was not respected in {count} ({code}).",
        "secrecy_ok": "The secrecy of the vote was respected in {n} ({code}).",
        "intimidation": "Intimidation of or pressure on voters was seen in {count} ({code}).",
        "irregular_none": "No major irregularities were observed: none of the {n} "
        "reported any of the {kinds} listed irregularities as observed or reported ({codes}).",
        "irregular_one": "{label}: observed in {observed} and reported to observers in "
        "{reported} of {n} ({code}).",
        "accessibility": "Asked “{label}”, observers answered yes in {yes} ({code}).",
        "count_one": "The count was observed at one polling station{assessment} ({code}).",
        "count_many": "The count was observed at {stations}; it was assessed negatively in "
        "{negative} ({code}).",
        "count_one_positive": " and assessed positively",
        "count_one_negative": " and assessed negatively",
        "checks_pass": "The protocol figures of {reports} passed every consistency check.",
        "checks_fail": "{failed} of {reports} with protocol figures failed at least one "
        "consistency check: {checks}.",
        "conflicts": "At {stations}, two reports of the same count disagree; the totals use "
        "one report per station (the latest verified, else the latest).",
        "totals": "At the {stations} where the figures were copied, the valid votes were "
        "divided as follows: {options}; turnout there was {turnout}.",
        "quick_count": "Quick count from the random sample of {n} stations: {options}.",
        "incidents_none": "No incident reports were received.",
        "incidents": "Observers sent {count}; the most frequent type was {top} ({top_count}).",
        "critical_none": "No critical answers were recorded.",
        "critical": "{label}: {answer} in {count} at {stations}, {pattern} ({code}).",
        "pattern_isolated": "isolated cases",
        "pattern_clustered": "concentrated in {region} ({share} of cases)",
        "pattern_scattered": "spread over {regions} regions",
        "observation": "observation",
        "observations": "observations",
        "station": "polling station",
        "stations": "polling stations",
        "report": "counting report",
        "reports": "counting reports",
        "incident_report": "incident report",
        "incident_reports": "incident reports",
        "one": "one",
        "the_one": "the one observation",
        "all_n": "all {n} observations",
        "and": "and",
        "none": "none",
    },
}


@dataclass(slots=True)
class Sentence:
    paragraph: str
    key: str
    text: str
    evidence: dict[str, Any] = field(default_factory=dict)


class Writer:
    def __init__(self, language: str, small: int) -> None:
        self.language = language
        self.small = small
        self.sentences: list[Sentence] = []
        self.fallback: list[str] = []

    def phrase(self, key: str) -> str:
        table = PHRASES.get(self.language, {})
        if key in table:
            return table[key]
        if self.language != "en":
            self.fallback.append(key)
        return PHRASES["en"][key]

    def say(self, paragraph: str, key: str, evidence: dict[str, Any], **values: Any) -> None:
        text = self.phrase(key).format(**values)
        self.sentences.append(Sentence(paragraph, key, text, evidence))

    def noun(self, n: int, singular: str) -> str:
        word = self.phrase(singular if n == 1 else singular + "s")
        return f"{self.phrase('one') if n == 1 else n} {word}"

    def all_of(self, n: int) -> str:
        """'all 24 observations', or 'the one observation'."""
        if n == 1:
            return self.phrase("the_one")
        return self.phrase("all_n").format(n=n)

    def share(self, count: int, n: int, singular: str = "observation") -> str:
        """'3 of 24 observations', or '12.5% of 400 observations (50)' from the threshold."""
        noun = self.phrase(singular if n == 1 else singular + "s")
        if n < self.small:
            return f"{count} of {n} {noun}"
        return f"{percent(count / n)} of {n} {noun} ({count})"


def _index(findings: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(p["phase"], q["code"]): q for p in findings["phases"] for q in p["questions"]}


def _answer(q: dict[str, Any], value: str) -> int:
    return next((a["count"] for a in q.get("answers", []) if a["value"] == value), 0)


def _evidence(q: dict[str, Any], **counts: Any) -> dict[str, Any]:
    return {
        "questions": [q["code"]],
        "counts": {"answered": q["answered"], **counts},
        "stations": q["stations"],
    }


def draft(parts: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """The statement as Markdown plus its sentences with evidence."""
    findings, coverage = parts["findings"], parts["coverage"]
    w = Writer(ctx.language, ctx.config.small_denominator)
    qi = _index(findings)
    phases = {p["phase"]: p for p in findings["totals"]["phases"]}
    _coverage(w, findings, coverage, phases, ctx.random_sample)
    _scale(w, "h_opening", qi.get(("opening", "H1")), "opening_assessed", "opening_positive")
    _access(w, qi)
    _voting(w, qi)
    _accessibility(w, qi)
    _irregularities(w, findings)
    _count(w, qi, phases, parts["counting"])
    _incidents(w, parts["incidents"])
    _critical(w, parts["critical"])
    return {
        "markdown": _markdown(w),
        "sentences": [
            {"paragraph": s.paragraph, "key": s.key, "text": s.text, "evidence": s.evidence}
            for s in w.sentences
        ],
        "fallback": sorted(set(w.fallback)),
    }


def _coverage(
    w: Writer,
    findings: dict[str, Any],
    coverage: dict[str, Any],
    phases: dict[str, Any],
    random_sample: bool,
) -> None:
    par = "h_coverage"
    voting = phases.get("voting", {"observations": 0, "stations": 0})
    home = [r["region"] for r in coverage["regions"] if not r["abroad"] and _seen(r, "voting")]
    abroad = [r["region"] for r in coverage["regions"] if r["abroad"] and _seen(r, "voting")]
    if home and abroad:
        where = w.phrase("where_both").format(places=_join(w, home), abroad=_join(w, abroad))
    elif home:
        where = w.phrase("where_in").format(places=_join(w, home))
    elif abroad:
        where = w.phrase("where_abroad").format(places=_join(w, abroad))
    else:
        where = ""
    w.say(
        par,
        "voting_at",
        {"phase": "voting", "counts": voting, "regions": home + abroad},
        stations=w.noun(voting["stations"], "station"),
        where=where,
    )
    counts = {p: phases.get(p, {"observations": 0, "stations": 0}) for p in PHASE_ORDER}
    w.say(
        par,
        "phases_at",
        {"counts": counts},
        opening=w.noun(counts["opening"]["stations"], "station"),
        voting_obs=w.noun(counts["voting"]["observations"], "observation"),
        voting=w.noun(counts["voting"]["stations"], "station"),
        closing=w.noun(counts["closing"]["stations"], "station"),
    )
    totals = findings["totals"]
    w.say(
        par,
        "total",
        {"counts": {"observations": totals["observations"], "stations": totals["stations"]}},
        observations=w.noun(totals["observations"], "observation"),
        stations=w.noun(totals["stations"], "station"),
    )
    w.say(par, "random" if random_sample else "purposive", {})


PHASE_ORDER = ("opening", "voting", "closing")


def _seen(region: dict[str, Any], phase: str) -> bool:
    return bool(region["observed"].get(phase, {}).get("stations"))


def _join(w: Writer, items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {w.phrase('and')} " + items[-1]


def _scale(
    w: Writer, paragraph: str, q: dict[str, Any] | None, negative_key: str, positive_key: str
) -> None:
    if not q or not q["answered"]:
        return
    neg = q["negative"]["count"]
    ev = _evidence(q, negative=neg)
    if neg == 0:
        w.say(paragraph, positive_key, ev, n=w.all_of(q["answered"]), code=q["code"])
    else:
        w.say(paragraph, negative_key, ev, negative=w.share(neg, q["answered"]), code=q["code"])


def _pooled(qi: dict[tuple[str, str], dict[str, Any]], code: str, value: str) -> tuple[int, int]:
    """(count of `value`, answered) for a question asked in several phases, pooled."""
    count = answered = 0
    for (_, c), q in qi.items():
        if c == code:
            count += _answer(q, value)
            answered += q["answered"]
    return count, answered


def _access(w: Writer, qi: dict[tuple[str, str], dict[str, Any]]) -> None:
    admitted, n = _pooled(qi, "B1", "yes")
    restricted, n3 = _pooled(qi, "B3", "yes")
    if not n:
        return
    ev = {
        "questions": ["B1", "B3"],
        "counts": {"B1=yes": admitted, "B1 answered": n, "B3=yes": restricted, "B3 answered": n3},
    }
    if restricted == 0 and admitted == n:
        w.say("h_access", "access_full", ev, admitted=w.share(admitted, n), codes="B1, B3")
    else:
        w.say(
            "h_access",
            "access_restricted",
            ev,
            admitted=w.share(admitted, n),
            restricted=w.share(restricted, n3),
            codes="B1, B3",
        )


def _voting(w: Writer, qi: dict[tuple[str, str], dict[str, Any]]) -> None:
    _scale(w, "h_voting", qi.get(("voting", "H2")), "voting_assessed", "voting_positive")
    secrecy = qi.get(("voting", "D4"))
    if secrecy and secrecy["answered"]:
        no = _answer(secrecy, "no")
        ev = _evidence(secrecy, no=no)
        if no:
            w.say("h_voting", "secrecy", ev, count=w.share(no, secrecy["answered"]), code="D4")
        else:
            w.say(
                "h_voting",
                "secrecy_ok",
                ev,
                n=w.all_of(secrecy["answered"]),
                code="D4",
            )
    pressure = qi.get(("voting", "D8"))
    if pressure and pressure["answered"] and _answer(pressure, "yes"):
        yes = _answer(pressure, "yes")
        w.say(
            "h_voting",
            "intimidation",
            _evidence(pressure, yes=yes),
            count=w.share(yes, pressure["answered"]),
            code="D8",
        )


def _accessibility(w: Writer, qi: dict[tuple[str, str], dict[str, Any]]) -> None:
    for code in ("C1", "C7", "C9"):
        q = qi.get(("voting", code))
        if not q or not q["answered"]:
            continue
        yes = _answer(q, "yes")
        w.say(
            "h_accessibility",
            "accessibility",
            _evidence(q, yes=yes),
            label=q["label"],
            yes=w.share(yes, q["answered"]),
            code=code,
        )


def _irregularities(w: Writer, findings: dict[str, Any]) -> None:
    items = findings["irregularities"]
    if not items:
        return
    pooled: dict[str, dict[str, Any]] = {}
    for item in items:
        slot = pooled.setdefault(
            item["code"],
            {"label": item["label"], "observed": 0, "reported": 0, "answered": 0},
        )
        slot["observed"] += item["observed"]["count"]
        slot["reported"] += item["reported"]["count"]
        slot["answered"] += item["answered"]
    answered = max(s["answered"] for s in pooled.values())
    codes = list(pooled)
    if not any(s["observed"] or s["reported"] for s in pooled.values()):
        w.say(
            "h_irregularities",
            "irregular_none",
            {"questions": codes, "counts": {"answered": answered, "observed": 0, "reported": 0}},
            n=w.noun(answered, "observation"),
            kinds=len(codes),
            codes=f"{codes[0]}–{codes[-1]}" if len(codes) > 1 else codes[0],
        )
        return
    for code, s in pooled.items():
        if not (s["observed"] or s["reported"]):
            continue
        w.say(
            "h_irregularities",
            "irregular_one",
            {
                "questions": [code],
                "counts": {k: s[k] for k in ("observed", "reported", "answered")},
            },
            label=s["label"],
            observed=s["observed"],
            reported=s["reported"],
            n=w.noun(s["answered"], "observation"),
            code=code,
        )


def _count(
    w: Writer,
    qi: dict[tuple[str, str], dict[str, Any]],
    phases: dict[str, Any],
    counting: dict[str, Any],
) -> None:
    par = "h_count"
    q = qi.get(("closing", "H4"))
    closing = phases.get("closing")
    if closing and q and q["answered"]:
        neg = q["negative"]["count"]
        ev = _evidence(q, negative=neg)
        if closing["stations"] == 1:
            word = "count_one_negative" if neg else "count_one_positive"
            w.say(par, "count_one", ev, assessment=w.phrase(word), code="H4")
        else:
            w.say(
                par,
                "count_many",
                ev,
                stations=w.noun(closing["stations"], "station"),
                negative=w.share(neg, q["answered"]),
                code="H4",
            )
    reports = counting.get("reports") or 0
    if not reports:
        return
    failing = counting["failing"]
    failed_checks = [c for c in counting["checks"] if c["failed"]]
    ids = [f["checklist_id"] for f in failing]
    if not failed_checks:
        w.say(
            par,
            "checks_pass",
            {"checks": [c["check"] for c in counting["checks"]], "counts": {"reports": reports}},
            reports=w.noun(reports, "report"),
        )
    else:
        n_failed = len({f["checklist_id"] for f in failing})
        w.say(
            par,
            "checks_fail",
            {
                "checks": {c["check"]: c["failed"] for c in failed_checks},
                "counts": {"reports": reports, "failed": n_failed},
                "checklist_ids": ids,
            },
            failed=n_failed,
            reports=w.noun(reports, "report"),
            checks="; ".join(f"{c['rule']} ({c['failed']})" for c in failed_checks),
        )
    if counting["conflicts"]:
        stations = [c["station"] for c in counting["conflicts"]]
        w.say(
            par,
            "conflicts",
            {
                "stations": stations,
                "checklist_ids": [
                    r["checklist_id"] for c in counting["conflicts"] for r in c["reports"]
                ],
            },
            stations=w.noun(len(stations), "station"),
        )
    totals = counting.get("totals")
    if totals and totals["stations"] and totals["figures"]["valid"]:
        options = "; ".join(
            f"{_label(qi, o['code'])} {o['text']} ({o['votes']})" for o in totals["options"]
        )
        w.say(
            par,
            "totals",
            {"counts": totals["figures"], "options": totals["options"]},
            stations=w.noun(totals["stations"], "station"),
            options=options,
            turnout=percent(totals["turnout"]) if totals["turnout"] is not None else "unknown",
        )
    quick = counting.get("quick_count")
    if quick:
        w.say(
            par,
            "quick_count",
            {"quick_count": quick},
            n=quick["sampled_stations"],
            options="; ".join(f"{_label(qi, o['code'])} {o['text']}" for o in quick["options"]),
        )


def _label(qi: dict[tuple[str, str], dict[str, Any]], code: str) -> str:
    q = qi.get(("closing", code))
    return f"{q['label']}:" if q else f"{code}:"


def _incidents(w: Writer, incidents: dict[str, Any]) -> None:
    if not incidents["count"]:
        w.say("h_incidents", "incidents_none", {"counts": {"incidents": 0}})
        return
    top = incidents["by_type"][0]
    w.say(
        "h_incidents",
        "incidents",
        {
            "counts": {t["type"]: t["count"] for t in incidents["by_type"]},
            "checklist_ids": [r["checklist_id"] for r in incidents["reports"]],
        },
        count=w.noun(incidents["count"], "incident_report"),
        top=top["label"],
        top_count=top["count"],
    )


def _critical(w: Writer, critical: dict[str, Any]) -> None:
    if not critical["count"]:
        w.say("h_critical", "critical_none", {"counts": {"critical": 0}})
        return
    ids_by: dict[tuple[str, str], list[Any]] = {}
    for c in critical["checklists"]:
        ids_by.setdefault((c["code"], c["value"]), []).append(c["checklist_id"])
    for p in critical["by_question"]:
        if p["pattern"] == "clustered":
            pattern = w.phrase("pattern_clustered").format(
                region=p["top_region"], share=percent(p["top_region_share"])
            )
        elif p["pattern"] == "scattered":
            pattern = w.phrase("pattern_scattered").format(regions=p["regions_affected"])
        else:
            pattern = w.phrase("pattern_isolated")
        w.say(
            "h_critical",
            "critical",
            {
                "questions": [p["code"]],
                "counts": {"count": p["count"], "stations": p["stations"]},
                "regions": p["regions"],
                "checklist_ids": ids_by.get((p["code"], p["value"]), []),
            },
            label=p["label"].rstrip("?"),
            answer=p["answer"],
            count=w.noun(p["count"], "observation"),
            stations=w.noun(p["stations"], "station"),
            pattern=pattern,
            code=p["code"],
        )


def _markdown(w: Writer) -> str:
    lines = [f"# {w.phrase('title')}", ""]
    notes: list[str] = []
    current = None
    paragraph: list[str] = []
    for s in w.sentences:
        if s.paragraph != current:
            if paragraph:
                lines += [" ".join(paragraph), ""]
            paragraph = []
            current = s.paragraph
            lines += [f"## {w.phrase(s.paragraph)}", ""]
        if s.evidence:
            notes.append(_note(s.evidence))
            paragraph.append(f"{s.text}[^{len(notes)}]")
        else:
            paragraph.append(s.text)
    if paragraph:
        lines += [" ".join(paragraph), ""]
    if notes:
        lines += [f"## {w.phrase('h_evidence')}", ""]
        lines += [f"[^{i}]: {n}" for i, n in enumerate(notes, start=1)]
        lines.append("")
    return "\n".join(lines)


def _note(evidence: dict[str, Any]) -> str:
    parts = []
    if evidence.get("questions"):
        parts.append("questions " + ", ".join(evidence["questions"]))
    counts = evidence.get("counts")
    if isinstance(counts, dict) and counts:
        flat = []
        for k, v in counts.items():
            if isinstance(v, dict):
                flat.append(f"{k}: " + ", ".join(f"{kk} {vv}" for kk, vv in v.items()))
            else:
                flat.append(f"{k} {v}")
        parts.append("; ".join(flat))
    if evidence.get("checks"):
        checks = evidence["checks"]
        parts.append(
            "checks "
            + (
                ", ".join(f"{k} {v}" for k, v in checks.items())
                if isinstance(checks, dict)
                else ", ".join(checks)
            )
        )
    ids = evidence.get("checklist_ids") or []
    if ids:
        shown = ", ".join(str(i) for i in ids[:10])
        more = f" and {len(ids) - 10} more" if len(ids) > 10 else ""
        parts.append(f"checklists {shown}{more}")
    return "; ".join(parts) or "findings totals"
