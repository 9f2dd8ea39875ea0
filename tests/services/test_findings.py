"""Findings on small hand-made missions whose right answers are known."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from api.checklist_schema import PROTOCOL_FIGURES as FIGURES
from api.config import Settings
from api.services.findings import views
from api.services.findings.scope import Filters
from api.services.findings.stats import wilson
from tests.factories import make_mission, make_observer, make_station
from tests.findings_factories import (
    answer,
    computed,
    correct,
    hours_ago,
    post,
    post_count,
    question,
    sections_computed,
    set_review,
    view,
)


def _stations(session: Any, mission_id: Any, codes: list[str], **place: Any) -> list[str]:
    return [make_station(session, mission_id, c, **place) for c in codes]


def _observed_mission(session: Any, codes: list[str]) -> tuple[Any, str]:
    """A mission with these stations and one observer assigned to all: (mission, token)."""
    mission, _ = make_mission(session)
    _, token = make_observer(session, mission.id, _stations(session, mission.id, codes))
    return mission, token


def test_ots_shaped_mission_reads_like_the_ots_statement(client: Any, session: Any) -> None:
    """22 stations in the capital and 2 abroad visited during voting, one count observed."""
    mission, _ = make_mission(session)
    capital = _stations(session, mission.id, [f"AST-{i:02}" for i in range(22)])
    abroad = [
        make_station(session, mission.id, "X-ANK", country="Turkey", post="Embassy in Ankara"),
        make_station(session, mission.id, "X-MOW", country="Russia", post="Consulate"),
    ]
    _, token = make_observer(session, mission.id, capital + abroad)
    post(client, token, "AST-00", "opening")
    for code in capital + abroad:
        post(client, token, code, "voting")
    count_id = post_count(client, token, "AST-00")

    findings = view(session, mission.id)
    phases = {p["phase"]: p for p in findings["totals"]["phases"]}
    assert phases["voting"] == {"phase": "voting", "observations": 24, "stations": 24}
    assert phases["closing"] == {"phase": "closing", "observations": 1, "stations": 1}
    assert findings["totals"] == findings["totals"] | {"observations": 26, "stations": 24}
    b1 = question(findings, "voting", "B1")
    assert answer(b1, "yes")["text"] == "24 of 24"
    assert answer(b1, "yes")["ci95"] is None  # a purposive deployment gets no intervals

    md = view(session, mission.id, "statement")["markdown"]
    assert "The Mission observed voting at 24 polling stations in Astana and abroad " in md
    assert "(Russia and Turkey)" in md
    assert "The count was observed at one polling station and assessed positively (H4)." in md
    assert "During voting, no major irregularities were reported in all 24 observations" in md
    assert "During the count, no major irregularities were reported in the one observation" in md
    assert "During voting, observers had full access" in md
    assert "The protocol figures of one counting report passed every consistency check." in md
    assert "not estimates for the country as a whole" in md
    counting = view(session, mission.id, "counting")
    assert counting["reports"] == 1 and counting["failing"] == []
    assert counting["quick_count"] is None  # a purposive deployment gets no estimate
    assert counting["totals"]["options"][0] == {
        "code": "P_V1",
        "votes": 400,
        "share": 0.6838,
        "text": "68.4%",
    }
    assert count_id not in md  # a clean count needs no checklist ids as evidence


def test_statement_is_deterministic_and_every_sentence_has_evidence(
    client: Any, session: Any
) -> None:
    mission, token = _observed_mission(session, ["A-1", "A-2"])
    post(client, token, "A-1", "voting", {"D8": "yes"})
    post(client, token, "A-2", "voting")
    first = view(session, mission.id, "statement")
    # Computed afresh twice (a second `view` would serve the cached body): same words.
    again = [computed(session, mission.id, "statement", Filters()) for _ in range(2)]
    assert again[0] == again[1] and again[0]["markdown"] == first["markdown"]
    for sentence in first["sentences"]:
        if sentence["key"] not in ("purposive", "random"):
            assert sentence["evidence"], sentence
    pressure = next(s for s in first["sentences"] if s["key"] == "intimidation")
    assert pressure["text"].endswith("seen in 1 of 2 observations (D8).")
    critical = next(s for s in first["sentences"] if s["key"] == "critical_summary")
    assert len(critical["evidence"]["checklist_ids"]) == 1


def test_shares_read_x_of_y_below_the_threshold_and_percent_above(
    client: Any, session: Any
) -> None:
    mission, admin = make_mission(session)
    codes = _stations(session, mission.id, [f"S-{i}" for i in range(10)])
    _, token = make_observer(session, mission.id, codes)
    for i in range(40):
        post(client, token, codes[i % 10], "voting", {"D4": "no" if i < 10 else "yes"})
    d4 = question(view(session, mission.id), "voting", "D4")
    assert (d4["answered"], d4["stations"]) == (40, 10)
    no = answer(d4, "no")
    assert (no["count"], no["stations"], no["share"], no["text"]) == (
        10,
        10,
        0.25,
        "25% (10 of 40)",
    )
    client.patch(
        f"/missions/{mission.id}",
        json={"settings": {"findings": {"small_denominator": 50}}},
        headers={"Authorization": f"Bearer {admin}"},
    )
    d4 = question(view(session, mission.id), "voting", "D4")
    assert answer(d4, "no")["text"] == "10 of 40"


def test_not_applicable_is_left_out_and_unanswered_is_counted_apart(
    client: Any, session: Any
) -> None:
    mission, _ = make_mission(session)
    codes = _stations(session, mission.id, [f"S-{i}" for i in range(10)])
    _, token = make_observer(session, mission.id, codes)
    for i, code in enumerate(codes):
        post(
            client,
            token,
            code,
            "voting",
            {"C8": "na" if i < 3 else "yes", "B4": "yes", "B5": ["media"] if i < 4 else None},
        )
    findings = view(session, mission.id)
    c8 = question(findings, "voting", "C8")
    assert (c8["answered"], c8["not_applicable"]) == (7, 3)
    assert answer(c8, "yes")["text"] == "7 of 7"
    b5 = question(findings, "voting", "B5")  # optional, asked only when B4 is yes
    assert (b5["asked"], b5["answered"], b5["unanswered"]) == (10, 4, 6)
    b4 = question(findings, "voting", "B4")
    assert b4["unanswered"] == 0


def test_observations_and_stations_are_counted_apart(client: Any, session: Any) -> None:
    mission, token = _observed_mission(session, ["S-1", "S-2"])
    post(client, token, "S-1", "voting", {"D7": "yes"})
    post(client, token, "S-1", "voting", {"D7": "yes"})
    post(client, token, "S-2", "voting", {"D7": "no"})
    d7 = question(view(session, mission.id), "voting", "D7")
    assert (answer(d7, "yes")["count"], answer(d7, "yes")["stations"]) == (2, 1)
    assert (d7["answered"], d7["stations"]) == (3, 2)


def test_observed_and_reported_irregularities_are_kept_apart(client: Any, session: Any) -> None:
    mission, _ = make_mission(session)
    codes = _stations(session, mission.id, ["S-1", "S-2", "S-3"])
    _, token = make_observer(session, mission.id, codes)
    post(client, token, "S-1", "voting", {"E1": "observed", "E1N": 3})
    post(client, token, "S-2", "voting", {"E1": "reported", "E1N": 1})
    post(client, token, "S-3", "voting")
    findings = view(session, mission.id)
    e1 = next(i for i in findings["irregularities"] if i["code"] == "E1")
    assert e1["observed"] == {"count": 1, "stations": 1}
    assert e1["reported"] == {"count": 1, "stations": 1}
    assert (e1["answered"], e1["cases"]) == (3, 4)
    md = view(session, mission.id, "statement")["markdown"]
    assert (
        "Ballot stuffing (voting): observed in 1 and reported to observers in 1 of 3 observations"
        in md
    )


def test_negative_share_of_four_point_questions_per_phase(client: Any, session: Any) -> None:
    mission, _ = make_mission(session)
    codes = _stations(session, mission.id, ["S-1", "S-2", "S-3", "S-4"])
    _, token = make_observer(session, mission.id, codes)
    for code, grade in zip(codes, ["very_good", "good", "bad", "very_bad"], strict=True):
        post(client, token, code, "voting", {"H2": grade, "D9": "good"})
    post(client, token, "S-1", "opening", {"H1": "bad"})
    findings = view(session, mission.id)
    h2 = question(findings, "voting", "H2")
    assert [a["count"] for a in h2["answers"]] == [1, 1, 1, 1]
    assert h2["negative"] == {"count": 2, "share": 0.5, "text": "2 of 4", "ci95": None}
    assert question(findings, "opening", "H1")["negative"]["count"] == 1


def test_a_four_point_question_asked_in_two_phases_is_read_per_phase(
    client: Any, session: Any
) -> None:
    """A mission's own question on the same scale at voting and at the count: its
    distribution and negative share stay apart per phase."""
    from api.checklist_schema import Section
    from api.services import templates
    from tests.factories import answers_for, auth, checklist_payload

    mission, token = _observed_mission(session, ["S-1", "S-2", "S-3"])
    extra = Section.model_validate(
        {
            "code": "Z",
            "title": {"en": "Overall"},
            "phases": ["voting", "closing"],
            "questions": [{"code": "Z1", "type": "scale4", "label": {"en": "Overall"}}],
        }
    )
    base = templates.default_definition()
    own = base.model_copy(update={"version": 2, "sections": [*base.sections, extra]})
    templates.create(session, mission.id, own, publish=True)
    session.commit()
    grades = {"voting": ["bad", "good", "very_good"], "closing": ["very_bad", "bad", "good"]}
    for phase, answers in grades.items():
        for station, grade in zip(["S-1", "S-2", "S-3"], answers, strict=True):
            body = answers_for(phase) | {"Z1": grade}
            payload = checklist_payload(station, phase, body, template_version=2)
            assert client.post("/checklists", json=payload, headers=auth(token)).status_code == 201
    findings = view(session, mission.id)
    voting, closing = question(findings, "voting", "Z1"), question(findings, "closing", "Z1")
    assert [a["count"] for a in voting["answers"]] == [1, 1, 1, 0]
    assert [a["count"] for a in closing["answers"]] == [0, 1, 1, 1]
    assert (voting["negative"]["count"], closing["negative"]["count"]) == (1, 2)
    assert closing["negative"]["text"] == "2 of 3"


def test_publishing_a_template_makes_the_views_due_again(client: Any, session: Any) -> None:
    """A corrected label reaches the dashboards at once, without waiting for a checklist."""
    from api.services import templates

    mission, token = _observed_mission(session, ["S-1"])
    post(client, token, "S-1", "voting")
    assert question(view(session, mission.id), "voting", "D4")["label"] != "Secret ballot?"
    base = templates.default_definition()
    sections = [
        s.model_copy(
            update={
                "questions": [
                    q.model_copy(update={"label": {**q.label, "en": "Secret ballot?"}})
                    if q.code == "D4"
                    else q
                    for q in s.questions
                ]
            }
        )
        for s in base.sections
    ]
    own = base.model_copy(update={"version": 2, "sections": sections})
    templates.create(session, mission.id, own, publish=True)
    session.commit()
    assert question(view(session, mission.id), "voting", "D4")["label"] == "Secret ballot?"


def test_only_the_latest_version_counts_and_rejected_or_quarantined_leave(
    client: Any, session: Any
) -> None:
    mission, token = _observed_mission(session, ["S-1", "S-2"])
    first = post(client, token, "S-1", "voting", {"D4": "yes"})
    post(client, token, "S-2", "voting", {"D4": "yes"})
    fixed = correct(client, token, first, "S-1", "voting", {"D4": "no"})
    d4 = question(view(session, mission.id), "voting", "D4")
    assert (d4["answered"], answer(d4, "no")["count"]) == (2, 1)

    set_review(session, mission.id, fixed, review_state="rejected")
    d4 = question(view(session, mission.id), "voting", "D4")
    assert (d4["answered"], answer(d4, "no")["count"]) == (1, 0)
    assert view(session, mission.id, "critical")["count"] == 0

    set_review(session, mission.id, fixed, review_state="verified")
    assert question(view(session, mission.id), "voting", "D4")["answered"] == 2
    set_review(session, mission.id, fixed, quarantined=True)
    assert question(view(session, mission.id), "voting", "D4")["answered"] == 1


def test_intervals_and_quick_count_only_for_a_random_sample(client: Any, session: Any) -> None:
    mission, admin = make_mission(session, sampling="random")
    codes = _stations(session, mission.id, [f"S-{i:02}" for i in range(24)])
    _, token = make_observer(session, mission.id, codes)
    for i, code in enumerate(codes):
        post(client, token, code, "voting")
        yes = 300 + 10 * i
        post_count(client, token, code, {"P_V1": yes, "P_V2": 585 - yes} if i < 12 else None)
    findings = view(session, mission.id)
    ci = answer(question(findings, "voting", "B1"), "yes")["ci95"]
    assert ci == [0.862, 1.0]  # "24 of 24" is still compatible with a 14 % problem rate
    assert wilson(0, 24) == (0.0, 0.138)
    quick = view(session, mission.id, "counting")["quick_count"]
    assert quick["sampled_stations"] == 24 and quick["population_stations"] == 24
    yes_share = quick["options"][0]
    assert yes_share["share"] == round(
        (sum(300 + 10 * i for i in range(12)) + 12 * 400) / (24 * 585), 4
    )
    assert yes_share["margin95"] == 0.0  # the whole population was sampled
    # A sample of 24 out of 240 stations: the ratio estimator's margin, worked out here
    # from each station's residual y - r·x (x: valid votes, y: votes for the option).
    client.patch(
        f"/missions/{mission.id}",
        json={"settings": {"findings": {"population_stations": 240}}},
        headers={"Authorization": f"Bearer {admin}"},
    )
    y = [300 + 10 * i if i < 12 else 400 for i in range(24)]
    x = [585] * 24
    r = sum(y) / sum(x)
    residuals = sum((yi - r * xi) ** 2 for yi, xi in zip(y, x, strict=True))
    variance = (1 - 24 / 240) * residuals / 23 / (24 * (sum(x) / 24) ** 2)
    quick = view(session, mission.id, "counting")["quick_count"]
    assert quick["population_stations"] == 240
    assert quick["options"][0]["margin95"] == round(1.959964 * variance**0.5, 4) > 0.01
    assert (
        "Quick count from the random sample of 24 stations"
        in view(session, mission.id, "statement")["markdown"]
    )


def test_each_inconsistent_count_is_flagged_with_the_checks_it_fails(
    client: Any, session: Any
) -> None:
    mission, admin = make_mission(session)
    codes = _stations(session, mission.id, [f"C-{i}" for i in range(1, 9)])
    _, token = make_observer(session, mission.id, codes)
    post_count(client, token, "C-1")
    post_count(client, token, "C-2", {"P_V1": 401})  # options no longer add up to V
    post_count(
        client, token, "C-3", {"P_B": 650, "P_V": 635, "P_V1": 450}
    )  # more in box than issued
    post_count(client, token, "C-4", {"P_R": 590})  # issued above registered + 5
    post_count(client, token, "C-5", {"P_V1": 560, "P_V2": 25})  # one option above 90 %
    post_count(client, token, "C-6", {"P_K": 6})  # V + X + K = 601, one more than in the box
    post_count(client, token, "C-7", {"P_U": 391})  # I + U + S = 1,001 of 1,000 received
    post_count(
        client, token, "C-8", {"P_X": 100, "P_V": 495, "P_V1": 310}
    )  # 100 of 600 invalid: above 10 %
    counting = view(session, mission.id, "counting")
    fails = {f["station"]: f["fails"] for f in counting["failing"]}
    assert fails == {
        "C-2": ["options_sum_to_valid"],
        "C-3": ["in_box_not_above_issued"],
        "C-4": ["issued_not_above_registered", "turnout_below_threshold"],
        "C-5": ["no_option_above_threshold"],
        "C-6": ["valid_invalid_blank_make_in_box"],
        "C-7": ["ballots_accounted_for"],
        "C-8": ["invalid_below_threshold"],
    }
    by_check = {c["check"]: c["failed"] for c in counting["checks"]}
    assert by_check == {
        "options_sum_to_valid": 1,
        "valid_invalid_blank_make_in_box": 1,
        "ballots_accounted_for": 1,
        "in_box_not_above_issued": 1,
        "issued_not_above_registered": 1,
        "turnout_below_threshold": 1,
        "invalid_below_threshold": 1,
        "no_option_above_threshold": 1,
        "figures_plausible": 0,
    }
    # Each check says what it checks in the view's language.
    rules = {c["check"]: c["rule"] for c in counting["checks"]}
    assert (
        rules["in_box_not_above_issued"]
        == "ballots in the box do not exceed ballots issued (B ≤ I)"
    )
    in_russian = computed(session, mission.id, "counting", language="ru")
    assert {c["check"]: c["rule"] for c in in_russian["checks"]}["in_box_not_above_issued"] == (
        "бюллетеней в ящиках не больше, чем выдано (B ≤ I)"
    )
    # The protocol's questions by their labels in the language asked, each figure's and
    # each option's.
    protocol = counting["protocol"]
    codes = [protocol[f] for f in ("registered", "valid")] + protocol["options"]
    assert set(counting["labels"]) == set(codes + [protocol[f] for f in FIGURES])
    assert counting["labels"][protocol["registered"]] == "Number of registered voters (R)"
    assert (
        in_russian["labels"][protocol["registered"]] == "Число избирателей, внесённых в список (R)"
    )
    assert in_russian["labels"][protocol["options"][0]] == "Число голосов «Да»"
    # Each figure of a report by its letter in the rules: every letter is one the rules
    # use, and the options are v1 … vn in the protocol's order.
    failing_keys = set(counting["failing"][0]["figures"])
    assert set(counting["symbols"]) == failing_keys
    assert counting["symbols"]["in_box"] == "B" and counting["symbols"]["received"] == "Rc"
    assert [counting["symbols"][code] for code in protocol["options"]] == [
        f"v{i}" for i in range(1, len(protocol["options"]) + 1)
    ]
    formulas = " ".join(re.findall(r"\(([^)]*)\)", " ".join(rules.values())))
    assert {counting["symbols"][f] for f in FIGURES} == set(re.findall(r"[A-Z][a-z]?", formulas))
    client.patch(
        f"/missions/{mission.id}",
        json={"settings": {"findings": {"turnout_max": 1.5, "issued_allowance": 20}}},
        headers={"Authorization": f"Bearer {admin}"},
    )
    fails = {f["station"]: f["fails"] for f in view(session, mission.id, "counting")["failing"]}
    assert fails["C-3"] == ["in_box_not_above_issued"] and "C-4" not in fails
    client.patch(
        f"/missions/{mission.id}",
        json={"settings": {"findings": {"figure_max": 999}}},  # 1,000 registered: implausible
        headers={"Authorization": f"Bearer {admin}"},
    )
    fails = {f["station"]: f["fails"] for f in view(session, mission.id, "counting")["failing"]}
    assert fails["C-1"] == ["figures_plausible"] and len(fails) == 8


def test_two_disagreeing_counts_of_a_station_conflict_and_totals_take_one(
    client: Any, session: Any
) -> None:
    mission, _ = make_mission(session)
    codes = _stations(session, mission.id, ["C-1", "C-2"])
    _, token = make_observer(session, mission.id, codes)
    verified = post_count(client, token, "C-1")
    post_count(client, token, "C-1", {"P_V1": 385, "P_V2": 200})  # later, not verified
    post_count(client, token, "C-2")
    post_count(client, token, "C-2")  # agrees: no conflict
    set_review(session, mission.id, verified, review_state="verified")
    counting = view(session, mission.id, "counting")
    assert [c["station"] for c in counting["conflicts"]] == ["C-1"]
    assert counting["conflicts"][0]["differing"] == ["P_V1", "P_V2"]
    totals = counting["totals"]
    assert totals["stations"] == 2
    assert [o["votes"] for o in totals["options"]] == [800, 370]  # the verified report of C-1
    set_review(session, mission.id, verified, review_state="has_issues")
    totals = view(session, mission.id, "counting")["totals"]
    assert [o["votes"] for o in totals["options"]] == [785, 385]  # now the latest one


def test_each_counting_list_holds_its_first_reports_however_long_the_others(
    client: Any, session: Any, monkeypatch: Any
) -> None:
    """Cut to two reports each, every list is the first two of the list uncut, whichever
    other lists a report is also in; the same from the fold's rows and from the reports
    (a filter those rows cannot answer)."""
    from api.services.findings import counting as counting_service

    mission, _ = make_mission(session)
    codes = _stations(session, mission.id, [f"C-{i}" for i in range(1, 8)])
    _, token = make_observer(session, mission.id, codes)
    post_count(client, token, "C-1", {"P_V1": 401})  # failing
    post_count(client, token, "C-2")
    post_count(client, token, "C-2", {"P_V1": 385, "P_V2": 200})  # conflict, one excluded
    post_count(client, token, "C-3", {"P_K": 6})  # failing
    post_count(client, token, "C-3")  # conflict with the failing one
    post_count(client, token, "C-4")
    post_count(client, token, "C-4")  # agree: one excluded
    post_count(client, token, "C-5", {"P_U": 391})  # failing, excluded
    post_count(client, token, "C-6")
    post_count(client, token, "C-7", {"P_V1": 560, "P_V2": 25})  # failing, flagged only
    raw = Filters(observed_from=datetime.now(UTC) - timedelta(days=2))  # every report
    view(session, mission.id, "counting")  # folded

    def lists(limit: int, filters: Filters) -> dict[str, Any]:
        monkeypatch.setattr(counting_service, "LIST_LIMIT", limit)
        c = computed(session, mission.id, "counting", filters)
        reports = [r["checklist_id"] for s in c["conflicts"] for r in s["reports"]]
        return {
            "failing": [r["checklist_id"] for r in c["failing"]],
            "conflicts": reports,
            "included": [r["checklist_id"] for r in c["inclusion"]["included"]],
            "excluded": [r["checklist_id"] for r in c["inclusion"]["excluded"]],
        }

    for filters in (Filters(), raw):
        whole = lists(100, filters)
        assert [len(v) for v in whole.values()] == [4, 4, 5, 5]
        assert lists(2, filters) == {kind: ids[:2] for kind, ids in whole.items()}
    assert lists(2, Filters()) == lists(2, raw)


def test_incidents_are_counted_by_type_region_and_hour(client: Any, session: Any) -> None:
    mission, _ = make_mission(session)
    make_station(session, mission.id, "N-1", region="North")
    make_station(session, mission.id, "S-1", region="South")
    _, token = make_observer(session, mission.id, ["N-1", "S-1"])
    at = "2024-10-06T09:15:00+05:00"
    post(client, token, "N-1", "incident", {"G1": "vote_buying", "G2": "observed"}, observed_at=at)
    post(client, token, "N-1", "incident", {"G1": "vote_buying", "G2": "reported"}, observed_at=at)
    post(client, token, "S-1", "incident", {"G1": "violence", "G2": "observed"}, observed_at=at)
    incidents = view(session, mission.id, "incidents")
    assert incidents["count"] == 3
    assert incidents["by_type"][0] == {
        "type": "vote_buying",
        "label": "Vote buying",
        "count": 2,
        "observed": 1,
        "reported": 1,
        "critical": True,
    }
    assert incidents["by_region"] == [
        {"region": "North", "count": 2},
        {"region": "South", "count": 1},
    ]
    assert incidents["by_hour"] == [{"hour": 9, "count": 3}]  # on the observers' own clock
    assert {r["station"] for r in incidents["reports"]} == {"N-1", "S-1"}
    assert view(session, mission.id, "incidents", phase="voting")["count"] == 0


def test_critical_answers_show_whether_problems_cluster_or_scatter(
    client: Any, session: Any
) -> None:
    mission, _ = make_mission(session)
    regions = {"North": 5, "South": 5, "East": 5}
    codes: list[str] = []
    for region, n in regions.items():
        for i in range(n):
            codes.append(make_station(session, mission.id, f"{region[0]}-{i}", region=region))
    _, token = make_observer(session, mission.id, codes)
    for code in codes:
        pressure = code.startswith("N-")  # all five intimidation cases in the North
        secrecy = code[-1] in "01"  # secrecy breached twice in each region
        post(
            client,
            token,
            code,
            "voting",
            {"D8": "yes" if pressure else "no", "D4": "no" if secrecy else "yes"},
        )
    critical = view(session, mission.id, "critical")
    by = {p["code"]: p for p in critical["by_question"]}
    # North: all five cases where a third of the observations were made.
    assert (by["D8"]["count"], by["D8"]["pattern"], by["D8"]["top_region"]) == (
        5,
        "clustered",
        "North",
    )
    assert (by["D4"]["count"], by["D4"]["pattern"], by["D4"]["regions_affected"]) == (
        6,
        "scattered",
        3,
    )
    north = next(r for r in critical["regions"] if r["region"] == "North")
    assert north == {"region": "North", "observations": 5, "problems": {"D4=no": 2, "D8=yes": 5}}
    assert len(critical["checklists"]) == 11


def test_a_station_with_one_critical_answer_in_two_phases_counts_once(
    client: Any, session: Any
) -> None:
    """Observers' access (B1) is asked at opening, voting and closing."""
    mission, token = _observed_mission(session, ["S-1", "S-2"])
    post(client, token, "S-1", "opening", {"B1": "no"})
    post(client, token, "S-1", "voting", {"B1": "no"})
    post(client, token, "S-2", "voting", {"B1": "no"})
    b1 = next(p for p in view(session, mission.id, "critical")["by_question"] if p["code"] == "B1")
    assert (b1["count"], b1["stations"], b1["phases"]) == (3, 2, {"opening": 1, "voting": 2})


def test_coverage_shows_planned_and_observed_stations_and_missing_observers(
    client: Any, session: Any
) -> None:
    mission, _ = make_mission(session)
    for code in ("N-1", "N-2", "N-3"):
        make_station(session, mission.id, code, region="North")
    make_station(session, mission.id, "X-1", country="Turkey")
    _, busy = make_observer(session, mission.id, ["N-1", "N-2"], code="STO-1")
    make_observer(session, mission.id, ["X-1"], code="STO-2", team="Team 2")
    post(client, busy, "N-1", "opening")
    post(client, busy, "N-1", "voting")
    coverage = view(session, mission.id, "coverage")
    north, turkey = coverage["regions"]
    assert north["region"] == "North" and north["stations"] == 3 and north["assigned"] == 2
    assert north["observed"] == {
        "opening": {"observations": 1, "stations": 1},
        "voting": {"observations": 1, "stations": 1},
    }
    assert (turkey["abroad"], turkey["assigned"], turkey["observed"]) == (True, 1, {})
    missing = {o["code"]: o["missing"] for o in coverage["observers_missing"]["data"]}
    assert missing == {"STO-1": 1, "STO-2": 1}
    assert coverage["observers_missing"]["count"] == 2
    assert sum(h["checklists"] for h in coverage["arrivals_per_hour"]) == 2


def test_arrivals_are_counted_per_utc_hour_and_phase_as_first_received(
    client: Any, session: Any
) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import update

    from models import Checklist

    mission, token = _observed_mission(session, ["S-1", "S-2"])
    early = [post(client, token, "S-1", "opening"), post(client, token, "S-1", "voting")]
    later = post(client, token, "S-2", "voting")
    correct(client, token, later, "S-2", "voting", {"D4": "no"})  # the same arrival, again
    session.execute(
        update(Checklist)
        .where(Checklist.id.in_([uuid.UUID(c) for c in early]))
        .values(received_at=datetime(2024, 10, 6, 3, 20, tzinfo=UTC))
    )
    session.commit()
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:00Z")
    assert view(session, mission.id, "coverage")["arrivals_per_hour"] == [
        {"hour": "2024-10-06T03:00Z", "checklists": 2, "phases": {"opening": 1, "voting": 1}},
        {"hour": now, "checklists": 1, "phases": {"voting": 1}},
    ]


def test_arrivals_are_read_from_the_folds_counts_the_hour_under_way_too(
    client: Any, session: Any, monkeypatch: Any
) -> None:
    """The fold counts each checklist's arrival per region as its cursor passes it, the
    hour under way included; coverage reads those counts and says the same as counting
    the checklists, whatever the scope. A checklist the fold has not reached yet is not
    counted (as in every other figure), and none is counted twice."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import select, update

    from api.services.findings import fold, sections
    from api.services.findings.scope import resolve
    from models import Checklist, FindingArrival, FindingState

    mission, _ = make_mission(session)
    north = [make_station(session, mission.id, f"N-{i}", region="North", district="Lake")
             for i in range(2)]  # fmt: skip
    south = make_station(session, mission.id, "S-1", region="South")
    away = make_station(session, mission.id, "X-1", country="Turkey")
    _, token = make_observer(session, mission.id, [*north, south, away])
    posted = [
        post(client, token, code, phase)
        for code in (*north, south, away)
        for phase in ("opening", "voting", "incident")
    ]
    correct(client, token, posted[1], north[0], "voting", {"D4": "no"})  # not a new arrival
    now = datetime.now(UTC)
    for i, ago in enumerate((30, 3, 0, 0)):
        session.execute(
            update(Checklist)
            .where(Checklist.id.in_([uuid.UUID(c) for c in posted[i::4]]))
            .values(received_at=now - timedelta(hours=ago, minutes=i))
        )
    session.commit()
    view(session, mission.id, "coverage")  # folds: every arrival so far, counted once
    assert session.scalar(select(FindingState.arrivals_counted)) is True
    assert sum(session.scalars(select(FindingArrival.checklists))) == len(posted)
    post(client, token, south, "closing")  # not folded yet

    def arrivals(filters: Filters) -> list[Any]:
        return sections._arrivals(session, resolve(session, mission.id, filters))

    assert sum(h.checklists for h in arrivals(Filters())) == len(posted)
    fold.run_once()
    fold.run_once()  # nothing new: counted once still
    scopes = [
        *(Filters(), Filters(abroad=True), Filters(abroad=False), Filters(phase="voting")),
        *(Filters(location="North"), Filters(location="North/Lake"), Filters(team="Team 1")),
    ]
    read = [arrivals(f) for f in scopes]
    assert sum(h.checklists for h in read[0]) == len(posted) + 1
    monkeypatch.setattr(sections, "_counted_arrivals", lambda *_: None)
    assert read == [arrivals(f) for f in scopes]


def test_arrivals_counted_afresh_leave_out_what_the_cursor_has_yet_to_pass(
    client: Any, session: Any
) -> None:
    """A mission whose arrivals are counted afresh (after the upgrade, a rebuild or a
    station moved to another region) counts its checklists but those the fold's cursor
    has not passed: the fold adds those as it passes them, so none counts twice."""
    from sqlalchemy import select, update

    from api.db import session_scope
    from api.services.findings import fold, sections
    from api.services.findings.scope import resolve
    from models import FindingArrival, FindingState

    mission, token = _observed_mission(session, ["S-1", "S-2"])
    post(client, token, "S-1", "opening")
    fold.run_once()
    post(client, token, "S-2", "voting")  # past the cursor when the count is made afresh
    session.execute(update(FindingState).values(arrivals_counted=None))
    session.commit()
    fold.run_once()
    assert sum(session.scalars(select(FindingArrival.checklists))) == 2
    scope = resolve(session, mission.id, Filters())
    assert sections._counted_arrivals(session, scope) == sorted(
        sections.arrival_groups(session, scope)
    )
    with session_scope() as again:  # from the first change: every arrival as it passes
        fold.rebuild(again)
    assert sum(session.scalars(select(FindingArrival.checklists))) == 2


def test_rejected_and_quarantined_checklists_leave_every_view(client: Any, session: Any) -> None:
    mission, token = _observed_mission(session, ["S-1", "S-2"])
    incident = post(client, token, "S-1", "incident", {"G1": "violence", "G2": "observed"})
    count = post_count(client, token, "S-1")
    post_count(client, token, "S-2")
    pressure = post(client, token, "S-1", "voting", {"D8": "yes"})

    def figures() -> tuple[int, int, int, int, Any]:
        counting = view(session, mission.id, "counting")
        observed = view(session, mission.id, "coverage")["regions"][0]["observed"]
        return (
            view(session, mission.id, "incidents")["count"],
            view(session, mission.id, "critical")["count"],
            counting["reports"],
            counting["totals"]["stations"],
            observed,
        )

    assert figures() == (
        1,
        2,  # the violence report and the intimidation seen during voting
        2,
        2,
        {
            "closing": {"observations": 2, "stations": 2},
            "incident": {"observations": 1, "stations": 1},
            "voting": {"observations": 1, "stations": 1},
        },
    )
    set_review(session, mission.id, incident, review_state="rejected")
    set_review(session, mission.id, count, quarantined=True)
    set_review(session, mission.id, pressure, review_state="rejected")
    assert figures() == (0, 0, 1, 1, {"closing": {"observations": 1, "stations": 1}})


def test_coverage_critical_and_incidents_read_the_same_from_tallies_and_from_answers(
    client: Any, session: Any
) -> None:
    """A team filter cannot use the folded tallies: with every observer in the team, the
    views computed from the answers must equal those read from the tallies."""
    mission, _ = make_mission(session)
    north = [make_station(session, mission.id, f"N-{i}", region="North") for i in range(3)]
    south = [make_station(session, mission.id, f"S-{i}", region="South") for i in range(2)]
    _, token = make_observer(session, mission.id, north + south, team="Team 1")
    post(client, token, "N-0", "opening", {"B1": "no"})
    post(client, token, "N-0", "voting", {"B1": "no", "D8": "yes"})
    post(client, token, "N-1", "voting", {"D8": "yes"})
    post(client, token, "N-1", "voting")
    post(client, token, "S-0", "closing")
    post(client, token, "N-1", "incident", {"G1": "violence"})
    post(client, token, "S-1", "incident", {"G1": "vote_buying"})
    for name in ("coverage", "critical", "incidents"):
        tallied = view(session, mission.id, name)
        raw = view(session, mission.id, name, team="Team 1")
        assert raw == tallied | {k: raw[k] for k in ("filters", "computed_at")}, name
        by_region = view(session, mission.id, name, location="North")
        key = "by_region" if name == "incidents" else "regions"
        assert by_region[key] == [r for r in tallied[key] if r["region"] == "North"]
    north_row = view(session, mission.id, "coverage")["regions"][0]
    assert (north_row["region"], north_row["observed_any_phase"]) == ("North", 2)
    assert north_row["observed"]["voting"] == {"observations": 3, "stations": 2}


def test_the_map_gives_each_placed_station_its_phases_and_critical_answers(
    client: Any, session: Any
) -> None:
    """The console's map: the stations with coordinates, the phases each was observed in
    and whether a checklist from it has a critical answer, within the filters; the same
    from the fold's visits as from the applied checklists (a team filter reads those)."""
    mission, _ = make_mission(session)
    north = [
        make_station(
            session, mission.id, f"N-{i}", region="North", latitude=51.1 + i, longitude=71.4
        )
        for i in range(3)
    ]
    unplaced = make_station(session, mission.id, "S-0", region="South")
    _, token = make_observer(session, mission.id, [*north, unplaced], team="Team 1")
    post(client, token, "N-0", "opening")
    post(client, token, "N-0", "voting", {"D8": "yes"})  # critical
    closing = post(client, token, "N-1", "closing")
    post(client, token, "S-0", "voting")

    def shown(**filters: Any) -> tuple[list[tuple[str, list[str], bool]], int, int]:
        found = view(session, mission.id, "map", **filters)
        rows = [(s["code"], s["phases"], s["critical"]) for s in found["stations"]]
        return rows, found["observed"], found["placeless"]

    everything = shown()
    assert everything == (
        [("N-0", ["opening", "voting"], True), ("N-1", ["closing"], False), ("N-2", [], False)],
        2,
        1,
    )
    assert shown(team="Team 1") == everything
    assert shown(phase="opening") == (
        [("N-0", ["opening"], False), ("N-1", [], False), ("N-2", [], False)],
        1,
        1,
    )
    assert shown(phase="opening", team="Team 1") == shown(phase="opening")
    assert shown(location="South") == ([], 0, 1)
    first = view(session, mission.id, "map")["stations"][0]
    assert (first["latitude"], first["longitude"], first["name"]) == (51.1, 71.4, "Station N-0")
    set_review(session, mission.id, closing, review_state="rejected")  # leaves the map
    assert shown()[0][1] == ("N-1", [], False)
    assert shown(team="Team 1") == shown()


def test_missing_observers_per_phase_and_team(client: Any, session: Any) -> None:
    """Without a phase, an observer is missing a station with no checklist at all; with
    one (`?phase=voting`), a station with no checklist of that phase yet."""
    mission, _ = make_mission(session)
    for code in ("N-1", "N-2", "X-1"):
        make_station(session, mission.id, code, region="North")
    _, first = make_observer(session, mission.id, ["N-1", "N-2"], code="STO-1")
    make_observer(session, mission.id, ["X-1"], code="STO-2", team="Team 2")
    post(client, first, "N-1", "opening")
    post(client, first, "N-2", "opening")
    post(client, first, "N-1", "voting")

    def missing(**filters: Any) -> dict[str, int]:
        found = view(session, mission.id, "coverage", **filters)["observers_missing"]["data"]
        return {o["code"]: o["missing"] for o in found}

    assert missing() == {"STO-2": 1}
    assert missing(phase="voting") == {"STO-1": 1, "STO-2": 1}
    assert missing(phase="closing") == {"STO-1": 2, "STO-2": 1}
    assert missing(phase="closing", team="Team 1") == {"STO-1": 2}


def test_missing_observers_are_counted_beyond_the_listed_page(
    client: Any, session: Any, monkeypatch: Any
) -> None:
    from api.services.findings import sections

    mission, _ = make_mission(session)
    for code in ("N-1", "N-2", "N-3"):
        make_station(session, mission.id, code, region="North")
    _, first = make_observer(session, mission.id, ["N-1"], code="STO-1")
    make_observer(session, mission.id, ["N-2"], code="STO-2")
    make_observer(session, mission.id, ["N-3"], code="STO-3")
    monkeypatch.setattr(sections, "LIST_LIMIT", 1)
    missing = view(session, mission.id, "coverage")["observers_missing"]
    assert missing["count"] == 3
    assert missing["data"] == [
        {"code": "STO-1", "name": "Observer STO-1", "team": "Team 1", "assigned": 1,
         "reported": 0, "last_received_at": None, "missing": 1}
    ]  # fmt: skip
    post(client, first, "N-1", "opening")
    monkeypatch.setattr(sections, "LIST_LIMIT", 5)
    missing = view(session, mission.id, "coverage")["observers_missing"]
    assert missing["count"] == 2 and [o["code"] for o in missing["data"]] == ["STO-2", "STO-3"]


def test_filters_select_places_abroad_phase_team_time_and_template(
    client: Any, session: Any
) -> None:
    from api.services import templates

    mission, _ = make_mission(session)
    make_station(session, mission.id, "E-1", district="Esil district")
    make_station(session, mission.id, "A-1", district="Almaty district")
    make_station(session, mission.id, "X-1", country="Turkey", post="Ankara")
    _, t1 = make_observer(session, mission.id, ["E-1", "A-1"], team="Team 1")
    _, t2 = make_observer(session, mission.id, ["X-1"], team="Team 2")
    v2 = templates.default_definition().model_copy(update={"version": 2})
    templates.create(session, mission.id, v2, publish=True)
    session.commit()
    post(client, t1, "E-1", "voting", observed_at=hours_ago(3))
    post(client, t1, "A-1", "voting", observed_at=hours_ago(1))
    post(client, t1, "A-1", "opening", observed_at=hours_ago(2), template_version=2)
    post(client, t2, "X-1", "voting", observed_at=hours_ago(1))

    def total(**filters: Any) -> int:
        return int(view(session, mission.id, **filters)["totals"]["observations"])

    assert total() == 4
    assert total(location="Astana") == 3
    assert total(location="Astana/Esil district") == 1
    assert total(location="Turkey/Ankara") == 1
    assert total(abroad=True) == 1 and total(abroad=False) == 3
    assert total(location="Astana", abroad=True) == 0
    assert total(phase="voting") == 3
    assert total(team="Team 2") == 1
    assert total(observed_from=_ago(2.5), observed_to=_ago(0.5)) == 3
    assert total(observed_from=_ago(1.5)) == 2 and total(observed_to=_ago(1.5)) == 2
    assert total(template="default", template_version=2) == 1
    assert total(template="default") == 4 and total(template="other") == 0
    voting_esil = view(session, mission.id, location="Astana/Esil district", phase="voting")
    assert question(voting_esil, "voting", "D4")["answered"] == 1


def _ago(hours: float) -> Any:
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) - timedelta(hours=hours)


# Settings that reuse views while data arrives (tests otherwise read fresh: FRESH).
REUSING = Settings(findings_max_lag_s=0, findings_cache_s=1, findings_cache_cost_factor=10)


def _one_observation(client: Any, session: Any) -> tuple[Any, str, Any]:
    """A mission with one checklist; returns it, the observer's token and a function that
    reads the findings' count of observations with the given settings."""
    from api.services.findings.scope import Filters
    from api.services.findings.views import get_view

    mission, _ = make_mission(session)
    make_station(session, mission.id, "N-1", region="North")
    _, token = make_observer(session, mission.id, ["N-1"])
    post(client, token, "N-1", "voting")

    def observations(settings: Settings = REUSING) -> int:
        session.commit()
        found = get_view(session, settings, mission.id, "findings", Filters(), None).parsed()
        return int(found["totals"]["observations"])

    return mission, token, observations


def test_a_slow_view_is_reused_while_data_arrives_for_ten_times_its_cost(
    client: Any, session: Any
) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from api.services.findings import fold
    from api.services.findings.views import FCACHE, reuse_s

    mission, token, observations = _one_observation(client, session)
    assert observations() == 1

    def computed(seconds_ago: float, took_ms: int) -> None:
        # Folded first: the read's own fold would come out of the reuse time it is given.
        session.commit()
        fold.run_once()
        session.execute(
            update(FCACHE)
            .where(FCACHE.c.mission_id == mission.id)
            .values(computed_at=_ago(seconds_ago / 3600), duration_ms=took_ms)
        )
        session.commit()

    # New data; the view took 3 s to compute 20 s ago: reused for 30 s.
    post(client, token, "N-1", "voting")
    computed(20, 3000)
    assert observations() == 1
    # 40 s ago: computed again, with the new checklist.
    computed(40, 3000)
    assert observations() == 2
    # A fast view is reused only for findings_cache_s.
    post(client, token, "N-1", "voting")
    computed(0.5, 20)
    assert observations() == 2
    computed(1.5, 20)
    assert observations() == 3
    # findings_cache_s=0 turns reuse off, whatever a view cost.
    post(client, token, "N-1", "voting")
    computed(1, 60_000)
    assert observations(Settings(findings_max_lag_s=0, findings_cache_s=0)) == 4
    # However slow a view, it is at most a minute behind the data.
    assert reuse_s(REUSING, 3_600_000) == 60 and reuse_s(REUSING, 0) == 1
    assert reuse_s(REUSING, 2000) == timedelta(seconds=20).total_seconds()


def test_one_request_computes_a_stale_view_while_the_others_serve_the_last_one(
    client: Any, session: Any, monkeypatch: Any
) -> None:
    from sqlalchemy import select, update

    from api.services.findings import views

    mission, token, observations = _one_observation(client, session)
    assert observations() == 1
    post(client, token, "N-1", "voting")
    session.execute(update(views.FCACHE).values(computed_at=_ago(1 / 60)))  # a minute old
    session.commit()
    row = session.execute(select(views.FCACHE.c.key, views.FCACHE.c.computed_at)).one()

    # While another request holds the claim, the last view serves.
    monkeypatch.setattr(views, "_claim", lambda *args: False)
    assert observations() == 1
    monkeypatch.undo()
    # The first request to move computed_at claims the view; a second one, that read the
    # same row, does not.
    later = _ago(0)
    assert views._claim(mission.id, row.key, row.computed_at, later) is True
    assert views._claim(mission.id, row.key, row.computed_at, later) is False
    session.commit()
    # The claimed row looks fresh to everyone else until the claimer stores the new view.
    assert observations() == 1
    session.execute(update(views.FCACHE).values(computed_at=_ago(1 / 60)))
    session.commit()
    assert observations() == 2


def test_a_view_computed_past_the_cache_is_the_view_served(client: Any, session: Any) -> None:
    """`make bench` times `views.compute`: it must be the computation the API serves."""

    from api.services.findings import views

    mission, token = _observed_mission(session, ["A-1", "A-2"])
    post(client, token, "A-1", "voting")
    post_count(client, token, "A-2")
    for name in views.VIEWS:
        served = view(session, mission.id, name)
        fresh = computed(session, mission.id, name)
        assert fresh and served == served | fresh, name


def test_the_statement_is_assembled_from_the_cached_sections_of_its_data(
    client: Any, session: Any, monkeypatch: Any
) -> None:
    """A console that shows the statement and its sections computes each section once per
    data version: the statement takes the sections cached for its data, and stores those it
    computes that a console watches. Sections nobody watches with its filters are computed
    and not stored."""
    from api.services.findings import views

    mission, token = _observed_mission(session, ["A-1", "A-2"])
    post(client, token, "A-1", "voting")
    post_count(client, token, "A-2")
    computed = sections_computed(monkeypatch)
    alone = view(session, mission.id, "statement", phase="voting")
    assert sorted(computed) == sorted(views.SECTIONS)
    assert _cached_views(session) == {"statement"}  # nobody watches its sections

    sections = {name: view(session, mission.id, name) for name in views.SECTIONS}
    computed.clear()
    with _cache_reads(session) as reads:
        statement = view(session, mission.id, "statement")
    assert computed == []  # every section of this very data was in the cache
    # Its own row, then its five sections' in one statement (each waits its turn under
    # saturated intake).
    assert len(reads) == 2
    assert statement["version"] == sections["findings"]["version"]
    assert statement["markdown"] != alone["markdown"]

    # New data: the statement computes the sections afresh and stores them, and the
    # consoles' own views of them are then served from the cache.
    post(client, token, "A-2", "voting")
    again = view(session, mission.id, "statement")
    assert again["version"] > statement["version"]
    assert sorted(computed) == sorted(views.SECTIONS)
    for name in views.SECTIONS:
        assert view(session, mission.id, name)["version"] == again["version"]
    assert len(computed) == len(views.SECTIONS)


def test_while_data_arrives_the_statement_takes_the_sections_the_consoles_are_served(
    client: Any, session: Any, monkeypatch: Any
) -> None:
    """New data: a section still within its reuse time is what a console asking for it is
    served, and the statement takes it too rather than compute it again. The statement
    then says its oldest section's version; once the sections are due, it has them anew."""
    import orjson
    from sqlalchemy import update

    from api.services.findings import views
    from models.base import utcnow

    reused = Settings(findings_max_lag_s=0, findings_cache_s=5)
    mission, token = _observed_mission(session, ["A-1", "A-2"])
    post(client, token, "A-1", "voting")
    post_count(client, token, "A-2")

    def served(name: str) -> dict[str, Any]:
        session.commit()
        return views.get_view(session, reused, mission.id, name, Filters(), None).parsed()

    def age(*names: str) -> None:  # their reuse time over
        for row in session.execute(views.FCACHE.select()).mappings().all():
            if orjson.loads(row["body"])["view"] in names:
                session.execute(
                    update(views.FCACHE)
                    .where(views.FCACHE.c.key == row["key"])
                    .values(computed_at=utcnow() - timedelta(seconds=30))
                )
        session.commit()

    sections = {name: served(name) for name in views.SECTIONS}
    first = served("statement")
    assert first["version"] == sections["findings"]["version"]

    post(client, token, "A-2", "voting")
    # Folded (the data version moved on), and the console's view reused meanwhile.
    assert served("findings")["version"] == first["version"]
    computed = sections_computed(monkeypatch)
    age("statement")
    # A console computing the oldest section again has claimed its row, which moves the
    # row's time on: the statement still says the time of the section it takes.
    oldest = min(sections, key=lambda name: sections[name]["computed_at"])
    rows = session.execute(views.FCACHE.select()).mappings().all()
    claimed = next(r for r in rows if orjson.loads(r["body"])["view"] == oldest)
    assert views._claim(mission.id, claimed["key"], claimed["computed_at"], utcnow())
    again = served("statement")
    assert computed == []
    assert again["version"] == first["version"]
    assert again["computed_at"] == min(s["computed_at"] for s in sections.values())
    assert again["markdown"] == first["markdown"]

    age("statement", *views.SECTIONS)
    latest = served("statement")
    assert sorted(computed) == sorted(views.SECTIONS)
    assert latest["version"] > first["version"]
    assert latest["markdown"] != first["markdown"]
    for name in views.SECTIONS:  # stored for the consoles that watch them
        assert served(name)["version"] == latest["version"]


@contextmanager
def _cache_reads(session: Any) -> Iterator[list[str]]:
    """The statements reading the view cache meanwhile, on `session`'s engine."""
    reads: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().startswith("SELECT") and "FROM finding_cache" in statement:
            reads.append(statement)

    with _listening(session.get_bind(), seen):
        yield reads


@contextmanager
def _listening(engine: Any, listener: Any) -> Iterator[None]:
    """`listener` called before each statement `engine` sends, meanwhile."""
    from sqlalchemy import event

    event.listen(engine, "before_cursor_execute", listener)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", listener)


def test_views_nobody_asked_for_in_an_hour_leave_the_cache_once_a_minute(
    client: Any, session: Any, monkeypatch: Any
) -> None:
    """A view computed more than CACHE_KEEP ago (a filter nobody asks for any more) is
    removed by a process storing another view, at most once a minute per process rather
    than with every view stored."""
    from sqlalchemy import update

    from api.services.findings import views
    from models.base import utcnow

    mission, token = _observed_mission(session, ["A-1"])
    post(client, token, "A-1", "voting")

    def leave_an_hour_behind(name: str) -> None:
        view(session, mission.id, name, phase="voting")
        session.execute(
            update(views.FCACHE)
            .where(views.FCACHE.c.body.contains(f'"view":"{name}"'))
            .values(computed_at=utcnow() - views.CACHE_KEEP - timedelta(minutes=1))
        )
        session.commit()

    leave_an_hour_behind("map")
    monkeypatch.setattr(views, "_last_sweep", [float("-inf")])  # not swept yet
    view(session, mission.id, "findings")  # stored: the process sweeps
    assert _cached_views(session) == {"findings"}
    leave_an_hour_behind("map")
    view(session, mission.id, "incidents")  # within the minute: no sweep
    assert _cached_views(session) == {"findings", "incidents", "map"}
    views._last_sweep[0] -= views.SWEEP_EVERY_S
    view(session, mission.id, "critical")
    assert _cached_views(session) == {"findings", "incidents", "critical"}


@pytest.mark.postgres_only
def test_a_view_is_claimed_and_stored_in_one_statement_each_without_waiting_for_the_disk(
    client: Any, session: Any, monkeypatch: Any
) -> None:
    """The cache's writes go through the counters' pool (autocommit, `synchronous_commit`
    off): a claim and a store are one round trip each, not BEGIN, SET LOCAL, the
    statement and COMMIT, each waiting its turn under saturated intake."""
    from api import ratelimit
    from api.services.findings import views
    from models.base import utcnow

    mission, token = _observed_mission(session, ["A-1"])
    post(client, token, "A-1", "voting")
    monkeypatch.setattr(views, "_last_sweep", [time.monotonic()])  # swept a moment ago
    engine = ratelimit.bookkeeping_engine()
    sent: list[str] = []
    with _listening(engine, lambda c, cur, st, *_: sent.append(st)):
        view(session, mission.id, "findings")
        row = session.execute(views.FCACHE.select()).mappings().one()
        assert views._claim(mission.id, row["key"], row["computed_at"], utcnow())
    writes = [st.split()[0] for st in sent if "finding_cache" in st]
    assert writes == ["INSERT", "UPDATE"], sent
    assert not any(st.lstrip().upper().startswith(("BEGIN", "SET", "COMMIT")) for st in sent)
    with engine.connect() as conn:
        assert conn.execute(text("SHOW synchronous_commit")).scalar() == "off"


def _cached_views(session: Any) -> set[str]:
    import orjson
    from sqlalchemy import select

    from api.services.findings import views

    return {orjson.loads(b)["view"] for b in session.scalars(select(views.FCACHE.c.body))}


@pytest.mark.postgres_only
def test_postgresql_sessions_compile_no_jit(session: Any) -> None:
    """The findings queries are planned as large but run in well under a second: JIT
    compiling cost more than it saved (half a second of the incident counts)."""
    from api.db import session_scope

    assert session.execute(text("SHOW jit")).scalar() == "off"
    with session_scope(read=True) as read:
        assert read.execute(text("SHOW jit")).scalar() == "off"


def test_coverage_follows_a_changed_plan_before_any_checklist(client: Any, session: Any) -> None:
    """The deployment plan changes the week before, when no checklist moves the data
    version: a reassigned observer (as many stations as before), a moved team and a new
    station show at once, not when the first checklist arrives."""
    # Views served from the cache while their data version and plan are the same.
    cached = Settings(findings_max_lag_s=0, findings_cache_s=0)
    mission, admin = make_mission(session)
    for code in ("S-1", "S-2"):
        make_station(session, mission.id, code)
    obs, _ = make_observer(session, mission.id, ["S-1"], code="O-1", team="Team 1")

    def coverage() -> dict[str, Any]:
        session.commit()
        return views.get_view(session, cached, mission.id, "coverage", Filters(), None).parsed()

    before = coverage()["teams_missing"]["data"]
    assert [(t["team"], t["missing_stations"]) for t in before] == [("Team 1", ["S-1"])]
    headers = {"Authorization": f"Bearer {admin}"}
    r = client.put(
        f"/missions/{mission.id}/observers/{obs.id}/assignments",
        json={"stations": ["S-2"]},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    after = coverage()["teams_missing"]["data"]
    assert [(t["team"], t["missing_stations"]) for t in after] == [("Team 1", ["S-2"])]
    r = client.patch(
        f"/missions/{mission.id}/observers/{obs.id}", json={"team": "Team 2"}, headers=headers
    )
    assert r.status_code == 200, r.text
    moved = coverage()["teams_missing"]["data"]
    assert [(t["team"], t["missing_stations"]) for t in moved] == [("Team 2", ["S-2"])]

    # Coverage names its missing observers: a new name shows at once, whether set alone
    # or by the observer's upsert.
    def names() -> list[str]:
        return [o["name"] for o in coverage()["observers_missing"]["data"]]

    r = client.patch(
        f"/missions/{mission.id}/observers/{obs.id}", json={"name": "Aigerim"}, headers=headers
    )
    assert r.status_code == 200, r.text
    assert names() == ["Aigerim"]
    upsert = {"code": "O-1", "name": "Aigerim B.", "team": "Team 2", "stations": ["S-2"]}
    r = client.post(f"/missions/{mission.id}/observers", json=upsert, headers=headers)
    assert r.status_code in (200, 201), r.text
    assert names() == ["Aigerim B."]

    # Stations imported or changed move the data version too: a new station counts, also
    # where the fold keeps the stations per region (it counts them again after the change).
    def stations() -> int:
        return sum(r["stations"] for r in coverage()["regions"])

    from api.services.findings import fold, plans

    fold.run_once()
    assert plans.current(session, mission.id)
    assert stations() == 2
    station = {"code": "S-3", "name": "S-3", "region": "Astana", "district": "Esil district"}
    r = client.put(f"/missions/{mission.id}/stations", json=station, headers=headers)
    assert r.status_code == 200, r.text
    assert stations() == 3


def test_a_compute_reads_the_regions_and_the_folds_state_once(client: Any, session: Any) -> None:
    """Within one compute (the statement's five sections included), what every section
    asks alike is read once: under saturated intake each round trip waits its turn."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from api.db import new_session
    from api.services.findings import fold

    mission, token = _observed_mission(session, ["S-1", "S-2"])
    post(client, token, "S-1", "voting")
    post(client, token, "S-2", "incident")
    fold.run_once()
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(" ".join(statement.split()))

    event.listen(Engine, "before_cursor_execute", seen)
    try:
        with new_session(read=True) as read:
            views.compute(read, mission.id, "statement", Filters())
            regions = sum(
                "FROM location WHERE" in s and "parent_id IS NULL" in s for s in statements
            )
            state = sum("AS plan_current" in s for s in statements)
            assert (regions, state) == (1, 1)
            statements.clear()  # a compute after it reads them again: another snapshot
            views.compute(read, mission.id, "coverage", Filters())
            assert sum("AS plan_current" in s for s in statements) == 1
    finally:
        event.remove(Engine, "before_cursor_execute", seen)
