"""The folded tallies always equal a full recompute from the answers."""

from __future__ import annotations

import itertools
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import OperationalError

from api.db import session_scope
from api.errors import NotFound
from api.services import changes, sql
from api.services.findings import counting as counting_service
from api.services.findings import fold, sections
from api.services.findings import questions as question_service
from api.services.findings.scope import CL, LOC, Filters, counts, resolve
from api.services.findings.stats import FindingsSettings
from models import (
    Answer,
    Checklist,
    FindingApplied,
    FindingArrival,
    FindingCount,
    FindingCritical,
    FindingFold,
    FindingHeld,
    FindingIncident,
    FindingState,
    FindingTally,
    FindingVisit,
    Station,
)
from tests.factories import make_mission, make_observer, make_station
from tests.findings_factories import GOOD_COUNT, correct, post, set_review

PLACES = [
    ("N-1", {"region": "North", "district": "Lake"}),
    ("N-2", {"region": "North", "district": "Lake"}),
    ("N-3", {"region": "North", "district": None, "city": "Port"}),
    ("S-1", {"region": "South", "district": "Hill"}),
    ("S-2", {"region": "South", "district": None}),
    ("X-1", {"country": "Turkey", "post": "Ankara"}),
    ("X-2", {"country": "Georgia"}),
]


def _random_answers(rng: random.Random, phase: str) -> dict[str, Any]:
    if phase == "voting":
        return {
            "D4": rng.choice(["yes", "no"]),
            "D8": rng.choice(["yes", "no"]),
            "H2": rng.choice(["very_good", "good", "bad", "very_bad"]),
            "E1": rng.choice(["observed", "reported", "none", "none"]),
            "C8": rng.choice(["yes", "no", "na"]),
            "B4": "yes",
            "B5": rng.choice([None, ["media"], ["media", "party_agents"]]),
            "D10": rng.choice([None, "a long queue outside"]),  # a text: answered or not
        }
    if phase == "opening":
        return {"H1": rng.choice(["good", "bad"]), "A3": "yes", "A4": ["ballots", "ink"]}
    if phase == "closing":
        figures = {k: v + rng.choice([0, 0, 1]) for k, v in GOOD_COUNT.items()}
        return {"F11": rng.choice(["yes", "no"]), **figures} | {"H4": rng.choice(["good", "bad"])}
    return {
        "G1": rng.choice(["vote_buying", "violence", "other"]),
        "G3": rng.choice([None, "10:30"]),
    }


def _without_hidden(phase: str, answers: dict[str, Any]) -> dict[str, Any]:
    if phase == "closing" and answers.get("F11") == "no":
        return {k: v for k, v in answers.items() if not k.startswith("P_")}
    return answers


def _nodes(session: Any, mission_id: uuid.UUID) -> list[Filters]:
    paths = session.scalars(select(LOC.c.path).where(LOC.c.mission_id == mission_id)).all()
    return [Filters(), Filters(abroad=True), Filters(abroad=False)] + [
        Filters(location=p) for p in sorted(paths)
    ]


def _one_station(session: Any) -> tuple[Any, str]:
    """A mission with one station, S-1, and an observer's token for it."""
    mission, _ = make_mission(session)
    make_station(session, mission.id, "S-1")
    _, token = make_observer(session, mission.id, ["S-1"])
    return mission, token


def _assert_folded_equals_recompute(
    session: Any, mission_id: uuid.UUID, every_held: bool = True
) -> None:
    session.commit()
    assert fold.run_once().folded
    session.commit()
    for filters in _nodes(session, mission_id):
        for phase in (None, "voting"):
            scope = resolve(session, mission_id, Filters(**{**filters.key(), "phase": phase}))
            assert question_service.tallies(session, scope) == question_service.recompute(
                session, scope
            ), filters
    # The incident reports as the fold counts them, wherever those counts can answer, and
    # as grouped from the reports themselves. (Once one is folded the counts are kept.)
    iq = question_service.incident_questions(question_service.catalog(session, mission_id, "en"))
    for filters in _nodes(session, mission_id):
        scope = resolve(session, mission_id, filters)
        counted = sections.incident_counts(session, scope, iq)
        if counted is not None:
            grouped = sections.incident_groups(
                session, sections.incident_reports(session, scope, iq)
            )
            assert sorted(counted, key=repr) == sorted(grouped, key=repr), filters
        elif filters == Filters():
            assert session.scalar(select(FindingIncident.mission_id)) is None
    # The critical view's counts as the tallies keep them and as counted from the answers.
    for filters, phase in itertools.product(_nodes(session, mission_id), (None, "voting")):
        scope = resolve(session, mission_id, Filters(**{**filters.key(), "phase": phase}))
        kept = sections.critical_counts(session, scope)
        if kept is not None:
            raw = sections.critical_groups(session, scope)
            assert sorted(kept.grouped, key=repr) == sorted(raw.grouped, key=repr), scope
            assert (kept.stations, kept.observations, kept.observed_stations) == (
                raw.stations,
                raw.observations,
                raw.observed_stations,
            ), scope
    _assert_counting_kept_equals_reports(session, mission_id)
    counting = set(
        session.scalars(select(CL.c.id).where(CL.c.mission_id == mission_id, counts())).all()
    )
    applied = set(session.scalars(select(FindingApplied.checklist_id)).all())
    assert applied == counting
    # The visits: per observer, station and phase, and in any phase, from the applied rows.
    expected: dict[tuple[Any, Any, str], list[Any]] = {}
    for row in session.execute(
        select(
            FindingApplied.observer_id,
            FindingApplied.station_id,
            FindingApplied.phase,
            FindingApplied.received_at,
        )
    ):
        for phase in (row.phase, "all"):
            expected.setdefault((row.observer_id, row.station_id, phase), []).append(
                row.received_at
            )
    visits = {
        (v.observer_id, v.station_id, v.phase): (v.checklists, v.last_received_at)
        for v in session.execute(select(*FindingVisit.__table__.c))  # type: ignore[attr-defined]
    }
    assert visits == {k: (len(t), max(t)) for k, t in expected.items()}
    # Each critical answer with its checklist's station, phase and time, which the
    # critical view groups and lists them by.
    critical = set(
        session.execute(
            select(
                Answer.checklist_id,
                Answer.question_code,
                Answer.position,
                CL.c.station_id,
                CL.c.phase,
                CL.c.observed_at,
            )
            .join(CL, CL.c.id == Answer.checklist_id)
            .where(Answer.critical.is_(True), Answer.checklist_id.in_(counting))
        ).all()
    )
    kept = set(
        session.execute(
            select(
                FindingCritical.checklist_id,
                FindingCritical.question_code,
                FindingCritical.position,
                FindingCritical.station_id,
                FindingCritical.phase,
                FindingCritical.observed_at,
            )
        ).all()
    )
    assert kept == critical
    _assert_held_equals_recount(session, every_held)


def _held_recounted(session: Any) -> dict[tuple[Any, str], dict[str, int]]:
    """What each station and phase holds (`finding_held`), counted from the applied
    checklists' answers: the checklists holding each value (`#` for a number) and
    answering each question (`*`), and all of them (`_:_`)."""
    held: dict[tuple[Any, str], dict[str, int]] = {}
    for row in session.execute(select(FindingApplied.station_id, FindingApplied.phase)):
        key = (row.station_id, row.phase)
        held.setdefault(key, {"_:_": 0})["_:_"] += 1
    answers = session.execute(
        select(FindingApplied.station_id, FindingApplied.phase, Answer).join(
            Answer, Answer.checklist_id == FindingApplied.checklist_id
        )
    )
    for station_id, phase, answer in answers:
        counted = held[(station_id, phase)]
        keys = []
        if answer.kind != "other":
            closed = answer.kind == "closed" or answer.value == "na"
            keys.append(f"{answer.question_code}:{answer.value if closed else '#'}")
        if answer.position == 0 and answer.value != "na":
            keys.append(f"{answer.question_code}:*")
        for key in keys:
            counted[key] = counted.get(key, 0) + 1
    return held


def _assert_held_equals_recount(session: Any, every: bool = True) -> None:
    """Every station and phase's finding_held row equals its recount; with `every`, each
    one with `fold.HELD_FROM` counting checklists has its row (none was folded before the
    table)."""
    recount = _held_recounted(session)
    columns = (FindingHeld.station_id, FindingHeld.phase, FindingHeld.held)
    rows = {(h.station_id, h.phase): h.held for h in session.execute(select(*columns))}
    for key, held in rows.items():
        assert held == recount.get(key, {"_:_": 0}), key
    if every:
        assert {k for k, held in recount.items() if held["_:_"] >= fold.HELD_FROM} <= set(rows)


def _assert_counting_kept_equals_reports(
    session: Any, mission_id: uuid.UUID, cfg: FindingsSettings | None = None
) -> None:
    """The counting view from the fold's figures equals the view computed from the
    reports, under every place filter; and the figures are kept once a report is folded."""
    cfg = cfg or FindingsSettings()
    protocol = counting_service.protocol_of(session, mission_id)
    assert protocol is not None
    for filters in _nodes(session, mission_id):
        scope = resolve(session, mission_id, filters)
        kept = counting_service.counting(session, scope, cfg, random_sample=True)
        raw = counting_service.counting(session, scope, cfg, random_sample=True, kept=False)
        assert kept == raw, filters
    closing = session.scalar(
        select(FindingApplied.checklist_id).where(
            FindingApplied.mission_id == mission_id, FindingApplied.phase == "closing"
        )
    )
    whole = resolve(session, mission_id, Filters())
    if closing is not None:  # (figures of reports since rejected stay kept, at zero)
        assert counting_service._kept(session, whole, protocol, cfg) is not None


def _folded_counting(session: Any, mission_id: uuid.UUID) -> tuple[Any, Any]:
    """Fold what was posted; the whole mission's scope and its counting protocol."""
    session.commit()
    fold.run_once()
    session.commit()
    protocol = counting_service.protocol_of(session, mission_id)
    assert protocol is not None
    return resolve(session, mission_id, Filters()), protocol


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_folded_tallies_equal_a_full_recompute_after_random_changes(
    client: Any, session: Any, seed: int, monkeypatch: Any
) -> None:
    # Lists of two: the counting view's lists are each report's first ones; and each
    # report's figures kept as a JSON object built in parts, as a long ballot's are.
    monkeypatch.setattr(counting_service, "LIST_LIMIT", 2)
    monkeypatch.setattr(counting_service, "JSON_PAIRS", 3)
    # Stations' values kept from their first or their second checklist of a phase: the
    # second makes the fold read them from the answers first, then from the kept row.
    monkeypatch.setattr(fold, "HELD_FROM", 1 + seed % 2)
    rng = random.Random(seed)
    mission, _ = make_mission(session)
    for code, place in PLACES:
        make_station(session, mission.id, code, **place)
    codes = [c for c, _ in PLACES]
    _, token = make_observer(session, mission.id, codes)
    latest: dict[str, tuple[str, str]] = {}  # checklist id -> (station, phase)
    for step in range(70):
        roll = rng.random()
        if roll < 0.55 or not latest:
            station, phase = (
                rng.choice(codes),
                rng.choice(["opening", "voting", "voting", "closing", "incident"]),
            )
            answers = _without_hidden(phase, _random_answers(rng, phase))
            latest[post(client, token, station, phase, answers)] = (station, phase)
        elif roll < 0.75:
            old = rng.choice(sorted(latest))
            station, phase = latest.pop(old)
            answers = _without_hidden(phase, _random_answers(rng, phase))
            latest[correct(client, token, old, station, phase, answers)] = (station, phase)
        elif roll < 0.9:
            target = rng.choice(sorted(latest))
            state = rng.choice(["rejected", "verified", "has_issues", "received"])
            set_review(session, mission.id, target, review_state=state)
        else:
            set_review(
                session, mission.id, rng.choice(sorted(latest)), quarantined=rng.random() < 0.6
            )
        if rng.random() < 0.25:
            assert fold.run_once().folded
        if step in (20, 45):
            _assert_folded_equals_recompute(session, mission.id)
    _assert_folded_equals_recompute(session, mission.id)
    scope = resolve(session, mission.id, Filters())
    iq = question_service.incident_questions(question_service.catalog(session, mission.id, "en"))
    assert sections.incident_counts(session, scope, iq)
    assert sections.critical_counts(session, scope) is not None


def test_stations_folded_before_their_values_were_kept_are_read_once_then_kept(
    client: Any, session: Any, monkeypatch: Any
) -> None:
    """As migration 0027 leaves a running mission: checklists folded, no finding_held rows.
    A batch at such a station and phase reads what its earlier checklists hold from their
    answers, once, and keeps it; stations and phases it does not touch stay without."""
    monkeypatch.setattr(fold, "HELD_FROM", 1)
    mission, _ = make_mission(session)
    for code, place in PLACES:
        make_station(session, mission.id, code, **place)
    _, token = make_observer(session, mission.id, ["N-1", "S-1"])
    earlier = [post(client, token, code, "voting") for code in ("N-1", "N-1", "S-1")]
    post(client, token, "N-1", "opening")
    session.commit()
    assert fold.run_once().folded
    session.execute(delete(FindingHeld))
    session.commit()
    post(client, token, "N-1", "voting")  # the same answers: no station starts counting
    set_review(session, mission.id, earlier[2], review_state="rejected")  # S-1 stops
    _assert_folded_equals_recompute(session, mission.id, every_held=False)
    kept = {
        (station, phase)
        for station, phase in session.execute(
            select(Station.code, FindingHeld.phase).join(
                Station, Station.id == FindingHeld.station_id
            )
        )
    }
    assert kept == {("N-1", "voting")}  # S-1 has no checklist left to keep
    whole = question_service.tallies(session, resolve(session, mission.id, Filters()))
    assert whole[("voting", "_", "_")][:2] == (3, 1)  # three checklists at one station


def test_a_station_and_phase_has_its_values_kept_from_its_tenth_checklist_on(
    client: Any, session: Any
) -> None:
    """Below `fold.HELD_FROM` checklists a station and phase's earlier answers are read
    again with each new one; from then on they are kept, also once it has fewer again."""
    mission, _ = make_mission(session)
    make_station(session, mission.id, "S-1")
    _, token = make_observer(session, mission.id, ["S-1"])
    posted = [post(client, token, "S-1", "voting") for _ in range(fold.HELD_FROM - 1)]
    post(client, token, "S-1", "opening")
    _assert_folded_equals_recompute(session, mission.id)
    assert session.scalar(select(func.count()).select_from(FindingHeld)) == 0
    posted.append(post(client, token, "S-1", "voting"))
    _assert_folded_equals_recompute(session, mission.id)
    held = session.scalars(select(FindingHeld)).one()
    assert (held.phase, held.held["_:_"]) == ("voting", fold.HELD_FROM)
    set_review(session, mission.id, posted[0], review_state="rejected")
    _assert_folded_equals_recompute(session, mission.id)
    assert session.scalar(select(FindingHeld.held))["_:_"] == fold.HELD_FROM - 1


def test_critical_tallies_folded_before_they_were_kept_are_counted_by_the_next_fold(
    client: Any, session: Any
) -> None:
    """As migration 0018 leaves a running mission: tallies without the critical view's
    rows. The view counts from the answers until the next fold adds those rows."""
    mission, _ = make_mission(session)
    for code, place in PLACES:
        make_station(session, mission.id, code, **place)
    _, token = make_observer(session, mission.id, [c for c, _ in PLACES])
    post(client, token, "N-1", "opening", {"B1": "no"})
    post(client, token, "N-1", "voting", {"B1": "no", "D8": "yes"})
    post(client, token, "X-1", "voting", {"D8": "yes"})
    post(client, token, "S-1", "voting")
    _assert_folded_equals_recompute(session, mission.id)
    scope = resolve(session, mission.id, Filters())
    kept = sections.critical_counts(session, scope)
    assert kept is not None and kept.observations == 3 and kept.stations[("B1", "no")] == 1
    session.execute(
        delete(FindingTally).where(
            (FindingTally.question_code == "!")
            | ((FindingTally.phase == "all") & (FindingTally.question_code != "_"))
        )
    )
    session.execute(update(FindingState).values(critical_counted=None))
    session.commit()
    assert sections.critical_counts(session, scope) is None
    fold.run_once()
    session.commit()
    assert sections.critical_counts(session, scope) == kept
    _assert_folded_equals_recompute(session, mission.id)


def test_incidents_counted_by_other_questions_are_counted_afresh(client: Any, session: Any) -> None:
    """Counts kept by other type and source questions than the form's (as after a new
    form) are not read; the next fold of an incident report counts the mission again."""
    mission, token = _one_station(session)
    post(client, token, "S-1", "incident", {"G1": "violence"})
    post(client, token, "S-1", "incident", {"G1": "vote_buying"})
    session.commit()
    fold.run_once()
    session.commit()
    scope = resolve(session, mission.id, Filters())
    iq = question_service.incident_questions(question_service.catalog(session, mission.id, "en"))
    kept = sections.incident_counts(session, scope, iq)
    assert kept is not None and sum(row[-1] for row in kept) == 2
    questions = question_service.catalog(session, mission.id, "en")
    before = sections.incidents(session, scope, questions)
    session.execute(update(FindingState).values(incident_roles="Q9 Q10"))
    session.commit()
    assert sections.incident_counts(session, scope, iq) is None
    again = sections.incidents(session, scope, questions)  # grouped from the reports
    assert again.by_type == before.by_type and again.count == 2
    post(client, token, "S-1", "incident", {"G1": "violence"})
    session.commit()
    fold.run_once()
    session.commit()
    kept = sections.incident_counts(session, scope, iq)
    assert kept is not None and sum(row[-1] for row in kept) == 3
    _assert_folded_equals_recompute(session, mission.id)
    # As migration 0016 leaves a running mission: the next fold counts it, new report or not.
    session.execute(delete(FindingIncident))
    session.execute(update(FindingState).values(incident_roles=None))
    session.commit()
    assert sections.incident_counts(session, scope, iq) is None
    fold.run_once()
    session.commit()
    assert sections.incident_counts(session, scope, iq) == kept


def test_a_held_correction_of_a_rejected_checklist_is_folded_as_the_recompute_counts_it(
    client: Any, session: Any
) -> None:
    mission, token = _one_station(session)
    first = post(client, token, "S-1", "voting", _random_answers(random.Random(4), "voting"))
    _assert_folded_equals_recompute(session, mission.id)
    set_review(session, mission.id, first, review_state="rejected")
    fix = correct(client, token, first, "S-1", "voting", {"H2": "very_bad"})
    assert session.scalar(select(CL.c.hold).where(CL.c.id == uuid.UUID(fix))) is not None
    _assert_folded_equals_recompute(session, mission.id)  # asserts nothing of it is applied
    assert session.scalar(select(FindingApplied.checklist_id)) is None
    set_review(session, mission.id, fix, review_state="verified")  # the analyst accepts it
    _assert_folded_equals_recompute(session, mission.id)
    assert session.scalars(select(FindingApplied.checklist_id)).all() == [uuid.UUID(fix)]


def test_folding_again_changes_nothing_and_a_rebuild_gives_the_same(
    client: Any, session: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(fold, "HELD_FROM", 1)  # the station's values kept, and rebuilt
    mission, token = _one_station(session)
    post(client, token, "S-1", "voting", {"D4": "no"})
    scope = resolve(session, mission.id, Filters())
    session.commit()
    fold.run_once()
    session.commit()
    before = question_service.tallies(session, scope)
    session.commit()
    assert fold.run_once().checklists == 0
    with session_scope() as s:
        fold.rebuild(s)
    session.commit()
    assert question_service.tallies(session, scope) == before
    _assert_held_equals_recount(session)


@pytest.mark.postgres_only
def test_a_change_committed_late_with_a_lower_id_is_still_folded(client: Any, session: Any) -> None:
    """PostgreSQL may commit outbox ids out of order: the cursor waits at the gap."""
    mission, token = _one_station(session)
    slow = post(client, token, "S-1", "voting")
    session.commit()
    fold.run_once()
    with session_scope() as late:
        # A review that takes its outbox id now but commits only after a later intake.
        late.execute(
            Checklist.__table__.update()  # type: ignore[attr-defined]
            .where(Checklist.id == uuid.UUID(slow))
            .values(review_state="rejected")
        )
        changes.record(late, mission.id, [uuid.UUID(slow)])
        late.flush()
        post(client, token, "S-1", "voting")
        assert fold.run_once().folded
        session.commit()
        scope = resolve(session, mission.id, Filters())
        assert question_service.tallies(session, scope)[("voting", "_", "_")][0] == 2
        cursor = session.scalar(select(FindingFold.last_change_id))
        # An arrival counts once the cursor has passed it: the second is past the gap.
        assert sum(session.scalars(select(FindingArrival.checklists))) == 1
        session.commit()
    fold.run_once()  # the late change is committed now, and its gap is looked at again
    session.commit()
    assert question_service.tallies(session, scope)[("voting", "_", "_")][0] == 1
    assert session.scalar(select(FindingFold.last_change_id)) > cursor
    assert sum(session.scalars(select(FindingArrival.checklists))) == 2  # each once


@pytest.mark.postgres_only
def test_an_arrival_counted_once_a_gap_closes_moves_its_missions_version(
    client: Any, session: Any
) -> None:
    """A checklist past a gap is applied by one fold, which moves its mission's version,
    and its arrival is counted by a later one, once the cursor passes it: that fold moves
    the version again, or coverage computed in between (without the arrival) would be
    served as current until the mission's next change."""
    other, other_token = _one_station(session)
    slow = post(client, other_token, "S-1", "voting")
    mission, token = _one_station(session)
    session.commit()
    fold.run_once()

    def state() -> tuple[int, int]:
        session.commit()
        version = session.scalar(
            select(FindingState.version).where(FindingState.mission_id == mission.id)
        )
        arrived = select(func.coalesce(func.sum(FindingArrival.checklists), 0)).where(
            FindingArrival.mission_id == mission.id
        )
        return int(version or 0), int(session.scalar(arrived))

    with session_scope() as late:  # another mission's change holds a lower outbox id
        changes.record(late, other.id, [uuid.UUID(slow)], changes.REVIEW)
        late.flush()
        post(client, token, "S-1", "voting")
        fold.run_once()  # applies it; the cursor waits at the gap
        applied, arrivals = state()
        assert arrivals == 0
    fold.run_once()  # the gap closed: the cursor passes the arrival
    version, arrivals = state()
    assert arrivals == 1
    assert version > applied


def test_a_fold_that_fell_behind_is_followed_at_once_and_a_quick_one_keeps_the_cadence(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The background folder's pause after each fold (no database needed)."""
    results = iter(
        [
            (0.15, fold.FoldResult(folded=True, changes=40)),  # slower than the interval
            (0.0, fold.FoldResult(folded=True, changes=3)),  # quick, with changes
            (0.15, fold.FoldResult(folded=True, changes=0)),  # slow, but nothing to do
        ]
    )

    def run_once() -> fold.FoldResult:
        took, result = next(results)
        clock[0] += took
        return result

    clock = [0.0]
    monkeypatch.setattr(fold, "run_once", run_once)
    monkeypatch.setattr(fold.time, "perf_counter", lambda: clock[0])
    waits: list[float] = []

    class Wake:  # the folder's wait for new changes or the interval
        def wait(self, seconds: float) -> bool:
            waits.append(seconds)
            return False

        def clear(self) -> None:
            pass

    class Stop:
        def is_set(self) -> bool:
            return len(waits) > 3

    folder = fold.BackgroundFolder(0.1)
    folder._wake = Wake()  # type: ignore[assignment]
    folder._stop = Stop()  # type: ignore[assignment]
    folder.run()
    assert waits == [0.1, fold.AGAIN_S, 0.1, 0.1]


def test_the_folder_vacuums_the_tallies_after_folds_that_changed_them_at_most_so_often(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """No database needed: the vacuum itself is replaced by a recorder."""
    results = iter(
        [
            fold.FoldResult(folded=True, changes=5, checklists=5),  # due: vacuums
            fold.FoldResult(folded=True, changes=5, checklists=5),  # 2 s later: too soon
            fold.FoldResult(folded=True, changes=9, checklists=0),  # due, but nothing changed
            fold.FoldResult(folded=True, changes=2, checklists=2),  # due: fails, logged
            fold.FoldResult(folded=True, changes=2, checklists=2),  # too soon after the failure
            fold.FoldResult(folded=True, changes=2, checklists=2),  # due again, folding went on
        ]
    )
    clock = [100.0]
    vacuums: list[float] = []

    def vacuum() -> bool:
        vacuums.append(clock[0])
        if len(vacuums) == 2:
            raise RuntimeError("database went away")
        return True

    monkeypatch.setattr(fold, "run_once", lambda: next(results))
    monkeypatch.setattr(fold, "vacuum_tallies", vacuum)
    monkeypatch.setattr(fold.time, "monotonic", lambda: clock[0])
    folder = fold.BackgroundFolder(1.0, vacuum_every=5.0)
    steps = iter([5.0, 2.0, 4.0, 0.0, 3.0, 3.0])
    done = [False]

    class Wake:  # each wait moves the clock on by the next step
        def wait(self, seconds: float) -> bool:
            step = next(steps, None)
            if step is None:
                done[0] = True
            else:
                clock[0] += step
            return False

        def clear(self) -> None:
            pass

    class Stop:
        def is_set(self) -> bool:
            return done[0]

    folder._wake = Wake()  # type: ignore[assignment]
    folder._stop = Stop()  # type: ignore[assignment]
    folder.run()
    assert vacuums == [105.0, 111.0, 117.0]
    assert "vacuum of the findings tallies failed" in caplog.text
    never = fold.BackgroundFolder(1.0)  # the default: leave it to autovacuum
    never._stop = Stop()  # type: ignore[assignment]
    monkeypatch.setattr(fold, "run_once", lambda: fold.FoldResult(folded=True, checklists=1))
    steps = iter([60.0, 60.0])
    never.run()
    assert vacuums == [105.0, 111.0, 117.0]


def test_vacuum_tallies_vacuums_on_postgresql_and_does_nothing_on_sqlite(
    client: Any, session: Any
) -> None:
    mission, token = _one_station(session)
    post(client, token, "S-1", "voting")
    session.commit()
    fold.run_once()
    if session.get_bind().dialect.name != "postgresql":
        assert fold.vacuum_tallies() is False
        return
    # Every table the fold rewrites in place (the plan rows per observer and team, the
    # counting figures and reports too): autovacuum comes too seldom for any of them.
    names = [t.name for t in fold.REWRITTEN]
    assert {"finding_tally", "finding_observer_plan", "finding_count"} <= set(names)

    def counts() -> dict[str, int]:
        session.execute(text("SELECT pg_stat_clear_snapshot()"))
        rows = session.execute(
            text("SELECT relname, vacuum_count FROM pg_stat_user_tables"
                 " WHERE relname = ANY(:names)"),
            {"names": names},
        )  # fmt: skip
        return dict(rows.all())

    before = counts()
    session.commit()
    for _ in range(3):  # SKIP_LOCKED skips a table while autovacuum holds it: try again
        assert fold.vacuum_tallies() is True
        if all(n > before[name] for name, n in counts().items()):
            break
        time.sleep(0.5)
    after = counts()
    assert set(after) == set(names)
    assert all(after[name] > before[name] for name in names), (before, after)


@pytest.mark.postgres_only
def test_a_fold_into_tables_the_statistics_think_empty_analyses_them_as_it_fills_them(
    client: Any, session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a bulk load or a rebuild the planner believes the applied rows empty, and
    can pick plans that compare each of them with each checklist of a batch: a fold that adds
    more checklists than the statistics know of analyses them, and one that adds fewer
    leaves them (here with the threshold lowered from 1,000 to 2)."""
    monkeypatch.setattr(fold, "ANALYZE_AFTER", 2)
    mission, token = _one_station(session)
    session.commit()
    session.execute(text("ANALYZE finding_applied"))  # the statistics of an empty table
    session.commit()
    known = "SELECT reltuples FROM pg_class WHERE relname = 'finding_applied'"
    assert session.execute(text(known)).scalar_one() <= 0
    for _ in range(3):
        post(client, token, "S-1", "voting")
    fold.run_once()
    session.commit()
    assert session.execute(text(known)).scalar_one() == 3
    post(client, token, "S-1", "voting")
    post(client, token, "S-1", "opening")
    fold.run_once()  # two checklists: fewer than the three the statistics know of
    session.commit()
    assert session.execute(text(known)).scalar_one() == 3


def test_applied_rows_and_visits_follow_reviews_after_they_were_folded(
    client: Any, session: Any
) -> None:
    """A review that leaves a folded checklist counting changes its row's state (the
    counting view ranks a verified report first); one that takes it out of the findings
    takes its row and its visit out too, and a visit with a checklist left keeps it."""
    mission, _ = make_mission(session)
    code = make_station(session, mission.id, "R-1")
    observer, token = make_observer(session, mission.id, [code])
    first = post(client, token, code, "closing", {"F11": "yes", **GOOD_COUNT})
    second = post(client, token, code, "closing", {"F11": "yes", **GOOD_COUNT})
    fold.run_once()

    def row(cid: str) -> Any:
        session.commit()
        return session.get(FindingApplied, uuid.UUID(cid))

    def visit() -> Any:
        session.commit()
        return session.get(
            FindingVisit,
            (observer.id, session.get(Checklist, uuid.UUID(first)).station_id, "closing"),
        )

    assert row(first).review_state == "received" and visit().checklists == 2
    set_review(session, mission.id, first, "verified")
    fold.run_once()
    assert row(first).review_state == "verified"
    set_review(session, mission.id, second, "rejected")
    fold.run_once()
    assert row(second) is None
    assert visit().checklists == 1
    set_review(session, mission.id, first, "rejected")
    fold.run_once()
    assert row(first) is None and visit() is None


@pytest.mark.postgres_only
def test_a_fold_process_folds_when_changes_are_announced_not_at_its_interval(
    client: Any, session: Any
) -> None:
    """`pollcheck fold` LISTENs for committed changes: a checklist is folded at once, not
    when the interval (here a minute) is over."""
    from api.config import get_settings
    from api.notify import listen_address

    mission, token = _one_station(session)
    folder = fold.BackgroundFolder(60.0, listen=listen_address(get_settings()))
    folder.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # the first fold: when the LISTEN began
            session.commit()
            if session.get(FindingFold, 1) is not None:
                break
            time.sleep(0.05)
        time.sleep(0.5)  # past the gap after that fold
        cid = uuid.UUID(post(client, token, "S-1", "voting"))
        while time.monotonic() < deadline and session.get(FindingApplied, cid) is None:
            time.sleep(0.05)
            session.commit()
        assert session.get(FindingApplied, cid) is not None, "not folded on the announcement"
    finally:
        folder.stop()


def test_a_fold_stops_at_its_limit_and_the_next_folds_the_rest(
    client: Any, session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a bulk load the fold commits every `limit` changes rather than hold one
    transaction over all of them; the next fold goes on where it stopped."""
    mission, token = _one_station(session)
    ids = [uuid.UUID(post(client, token, "S-1", "voting")) for _ in range(5)]
    session.commit()
    monkeypatch.setattr(fold, "BATCH", 1)  # one change a window
    with session_scope() as s:
        first = fold.fold(s, limit=2)
    assert (first.changes, first.more) == (2, True)
    with session_scope() as s:
        rest = fold.fold(s, limit=10)
    assert (rest.changes, rest.more) == (3, False)
    session.commit()
    assert all(session.get(FindingApplied, cid) is not None for cid in ids)


def test_after_a_failed_fold_the_folder_pauses_one_interval_then_tries_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No database needed: a failure costs one interval's pause, not two."""
    outcomes: list[Any] = [RuntimeError("database went away"), fold.FoldResult(folded=True)]

    def run_once() -> fold.FoldResult:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(fold, "run_once", run_once)
    woke: list[float] = []
    paused: list[float] = []

    class Wake:
        def wait(self, seconds: float) -> bool:
            woke.append(seconds)
            return False

        def clear(self) -> None:
            pass

    class Stop:
        def is_set(self) -> bool:
            return not outcomes and len(woke) > 2

        def wait(self, seconds: float) -> bool:
            paused.append(seconds)
            return False

    folder = fold.BackgroundFolder(0.5)
    folder._wake = Wake()  # type: ignore[assignment]
    folder._stop = Stop()  # type: ignore[assignment]
    folder.run()
    assert paused == [0.5]  # after the failure
    assert woke == [0.5, 0.0, 0.5]  # then straight to the next try, then the cadence


def test_counting_figures_are_counted_again_when_the_thresholds_change(
    client: Any, session: Any
) -> None:
    """A change of the checks' thresholds leaves the kept counting figures unread; the next
    fold counts them again by the new ones, and a change elsewhere in the settings does not."""
    from api.services.findings.stats import read_settings
    from models import Mission
    from tests.findings_factories import post_count

    mission, admin = make_mission(session)
    for code, place in PLACES:
        make_station(session, mission.id, code, **place)
    _, token = make_observer(session, mission.id, [c for c, _ in PLACES])
    post_count(client, token, "N-1")
    post_count(client, token, "N-1", {"P_V1": 385, "P_V2": 200})
    post_count(client, token, "S-1", {"P_B": 990, "P_I": 990, "P_U": 0, "P_V": 975})
    post_count(client, token, "X-1", {"P_X": 90, "P_V": 505, "P_V1": 320})
    whole, protocol = _folded_counting(session, mission.id)

    def kept_key() -> Any:
        session.commit()
        return session.scalar(
            select(FindingState.counting_key).where(FindingState.mission_id == mission.id)
        )

    key = kept_key()
    assert key == counting_service.counting_key(protocol, FindingsSettings())
    client.patch(
        f"/missions/{mission.id}",
        json={"settings": {"findings": {"turnout_max": 0.5}}},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert kept_key() is None
    session.expire_all()
    cfg, _ = read_settings(session.get(Mission, mission.id).settings)  # type: ignore[union-attr]
    assert counting_service._kept(session, whole, protocol, cfg) is None
    fold.run_once()
    assert kept_key() not in (None, key)
    _assert_counting_kept_equals_reports(session, mission.id, cfg)
    raw = counting_service.counting(session, whole, cfg, random_sample=False, kept=False)
    assert {c.check: c.failed for c in raw.checks}["turnout_below_threshold"] == 4
    # Settings the counting does not depend on: the figures stay as they are.
    again = kept_key()
    client.patch(
        f"/missions/{mission.id}",
        json={"settings": {"findings": {"turnout_max": 0.5, "small_denominator": 10}}},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert kept_key() == again
    # Figures too large to square in 64 bits: counted from the reports, never kept.
    client.patch(
        f"/missions/{mission.id}",
        json={"settings": {"findings": {"figure_max": 10_000_000}}},
        headers={"Authorization": f"Bearer {admin}"},
    )
    fold.run_once()
    assert kept_key() == counting_service.NOT_KEPT
    session.expire_all()
    cfg, _ = read_settings(session.get(Mission, mission.id).settings)  # type: ignore[union-attr]
    assert counting_service._kept(session, whole, protocol, cfg) is None
    assert session.scalar(select(func.count()).select_from(FindingCount)) == 0


@pytest.mark.postgres_only
def test_a_review_committed_while_a_fold_runs_moves_the_counting_figures_with_it(
    client: Any, session: Any, monkeypatch: Any
) -> None:
    """Each statement of a fold sees what is committed when it starts (READ COMMITTED): a
    review committed between the fold's reading of the review states and its copying of them
    is left to the next fold whole, never copied without its counting figures."""
    from tests.findings_factories import post_count

    mission, _ = make_mission(session)
    code = make_station(session, mission.id, "R-1")
    _, token = make_observer(session, mission.id, [code])
    older = post_count(client, token, code, {"P_V1": 385, "P_V2": 200})
    post_count(client, token, code)  # the latest report: its figures count until one is verified
    session.commit()
    fold.run_once()
    changes.record(session, mission.id, [uuid.UUID(older)])  # in the batch, its state unchanged
    session.commit()
    taken = fold._counting_stations

    def review_meanwhile(fold_session: Any) -> Any:
        result = taken(fold_session)
        with session_scope() as other:
            set_review(other, mission.id, older, "verified")
        return result

    monkeypatch.setattr(fold, "_counting_stations", review_meanwhile)
    assert fold.run_once().folded
    monkeypatch.undo()
    session.commit()
    assert session.get(FindingApplied, uuid.UUID(older)).review_state == "received"
    fold.run_once()  # the review's own change
    session.commit()
    assert session.get(FindingApplied, uuid.UUID(older)).review_state == "verified"
    _assert_counting_kept_equals_reports(session, mission.id)


def test_a_station_given_another_place_takes_its_checklists_there(
    client: Any, session: Any, monkeypatch: Any
) -> None:
    """Every place's tallies count a station where it was when its checklists were folded:
    a station moved by a new import takes them out there and the next fold puts them in
    where it is now, in every view, the counting figures too."""
    from tests.findings_factories import post_count

    monkeypatch.setattr(fold, "HELD_FROM", 1)  # the stations' values kept as they move
    mission, _ = make_mission(session)
    for code, place in PLACES:
        make_station(session, mission.id, code, **place)
    _, token = make_observer(session, mission.id, ["N-1", "S-1"])
    rng = random.Random(7)
    for phase in ("opening", "voting", "incident"):
        post(client, token, "N-1", phase, _without_hidden(phase, _random_answers(rng, phase)))
    post_count(client, token, "N-1")
    post_count(client, token, "S-1", {"P_V1": 385, "P_V2": 200})
    earlier = datetime.now(UTC) - timedelta(hours=3)  # arrivals of an earlier hour
    session.execute(update(Checklist).values(received_at=earlier))
    session.commit()
    fold.run_once()
    make_station(session, mission.id, "N-1", region="South", district="Hill")
    _assert_folded_equals_recompute(session, mission.id)
    south = resolve(session, mission.id, Filters(location="South"))
    assert question_service.tallies(session, south)[("all", "_", "_")][1] == 2  # stations
    # Moved back before a fold: taken out of the south, which never had them put in.
    make_station(session, mission.id, "N-1", region="North", district="Lake")
    make_station(session, mission.id, "N-1", region="South", district=None)
    _assert_folded_equals_recompute(session, mission.id)
    places = [Filters(), Filters(location="North"), Filters(location="South")]
    arrivals = [sections._arrivals(session, resolve(session, mission.id, f)) for f in places]
    assert [sum(h.checklists for h in a) for a in arrivals] == [5, 0, 5]
    assert session.scalar(select(func.count()).select_from(FindingArrival)) > 0  # from the fold


def test_stations_moved_within_their_region_keep_its_arrivals_and_move_in_parts(
    client: Any, session: Any, monkeypatch: Any
) -> None:
    """Several stations moved by one import, their ids bound a few at a time (as tens of
    thousands would be): all their checklists go to their new district, and the arrivals,
    counted by region, stay counted when no station left its region."""
    from api.services import stations as station_service
    from tests.findings_factories import post_count

    monkeypatch.setattr(sql, "IN_LIST", 1)
    mission, _ = make_mission(session)
    for code, place in PLACES:
        make_station(session, mission.id, code, **place)
    _, token = make_observer(session, mission.id, ["N-1", "N-2"])
    rng = random.Random(11)
    for code in ("N-1", "N-2"):
        post(
            client, token, code, "voting", _without_hidden("voting", _random_answers(rng, "voting"))
        )
        post_count(client, token, code)
    session.execute(update(Checklist).values(received_at=datetime.now(UTC) - timedelta(hours=3)))
    session.commit()
    fold.run_once()
    arrived = session.scalars(select(FindingArrival.checklists)).all()
    assert sum(arrived) == 4
    moved = [
        (n, {"code": code, "name": code, "region": "North", "district": "Marsh"})
        for n, code in enumerate(("N-1", "N-2"), start=2)
    ]
    assert not station_service.upsert_stations(session, mission.id, moved).problems
    if session.get_bind().dialect.name == "postgresql":  # the fold's tuning left behind
        assert session.scalar(text("SHOW enable_sort")) == "on"
    session.commit()
    # Taken out of the lake before the next fold: no view counts them twice meanwhile.
    lake = resolve(session, mission.id, Filters(location="North/Lake"))
    assert ("all", "_", "_") not in question_service.tallies(session, lake)
    assert session.scalars(select(FindingArrival.checklists)).all() == arrived
    counted = select(FindingState.arrivals_counted).where(FindingState.mission_id == mission.id)
    assert session.scalar(counted) is True  # no recount of every arrival due
    _assert_folded_equals_recompute(session, mission.id)
    marsh = resolve(session, mission.id, Filters(location="North/Marsh"))
    assert question_service.tallies(session, marsh)[("all", "_", "_")][1] == 2  # stations
    assert session.scalars(select(FindingArrival.checklists)).all() == arrived  # not recounted


@pytest.mark.postgres_only
def test_a_checklist_arriving_while_its_station_moves_is_folded_where_it_moved(
    client: Any, session: Any, monkeypatch: Any
) -> None:
    """A station with no checklists yet is moved by an import, and its first checklist
    arrives and a fold runs while the import writes the stations: the fold waits for the
    move, and counts the checklist at the station's new place, not the old one."""
    from api.services import stations as station_service

    mission, _ = make_mission(session)
    for code, place in PLACES:
        make_station(session, mission.id, code, **place)
    _, token = make_observer(session, mission.id, ["N-1"])
    session.commit()
    write = station_service.upsert
    folded: list[bool] = []

    def arriving_meanwhile(*args: Any, **kwargs: Any) -> Any:
        if not folded:
            post(client, token, "N-1", "voting")
            folded.append(fold.run_once().folded)
        return write(*args, **kwargs)

    monkeypatch.setattr(station_service, "upsert", arriving_meanwhile)
    south = [(2, {"code": "N-1", "name": "N-1", "region": "South", "district": "Hill"})]
    with session_scope() as importing:
        assert not station_service.upsert_stations(importing, mission.id, south).problems
    assert folded == [False]  # the move held the fold's lock
    assert fold.run_once().folded
    session.commit()
    _assert_folded_equals_recompute(session, mission.id)
    where = {f: resolve(session, mission.id, Filters(location=f)) for f in ("North", "South")}
    assert ("all", "_", "_") not in question_service.tallies(session, where["North"])
    assert question_service.tallies(session, where["South"])[("all", "_", "_")][1] == 1


def test_counting_figures_of_an_older_release_are_counted_again_by_the_first_fold(
    client: Any, session: Any, monkeypatch: Any
) -> None:
    """A release that changes what the kept figures are raises their version: the view reads
    the reports until the first fold after the upgrade has counted every mission's again."""
    from tests.findings_factories import post_count

    mission, _ = make_mission(session)
    code = make_station(session, mission.id, "R-1")
    _, token = make_observer(session, mission.id, [code])
    post_count(client, token, code)
    whole, protocol = _folded_counting(session, mission.id)
    assert counting_service._kept(session, whole, protocol, FindingsSettings()) is not None
    later = f"v{counting_service.FIGURES_VERSION + 1}."  # the next release's figures
    monkeypatch.setattr(counting_service, "KEY_PREFIX", later)
    assert counting_service._kept(session, whole, protocol, FindingsSettings()) is None
    fold.run_once()  # nothing new to fold: the older figures alone
    session.commit()
    key = session.scalar(
        select(FindingState.counting_key).where(FindingState.mission_id == mission.id)
    )
    assert key == counting_service.counting_key(protocol, FindingsSettings())
    assert key.startswith(later)
    _assert_counting_kept_equals_reports(session, mission.id)


def _missing_both_ways(session: Any, mission_id: uuid.UUID) -> list[Any]:
    """Coverage's missing teams and observers in every phase, from the fold's plan rows,
    asserted equal to the same joined from the plan and the visits."""
    from unittest import mock

    from api.services.findings import plans

    session.commit()
    found = []
    for phase in (None, "opening", "voting", "closing", "incident"):
        scope = resolve(session, mission_id, Filters(phase=phase))
        assert plans.counted(session, scope)
        kept = (
            sections._teams_missing(session, scope),
            sections._observers_missing(session, scope),
        )
        with mock.patch.object(plans, "counted", return_value=False):
            joined = (
                sections._teams_missing(session, scope),
                sections._observers_missing(session, scope),
            )
        assert kept == joined, phase
        # A first page shorter than the list: the same observers first, and all counted.
        for limit in (1, 2, 3):
            with mock.patch.object(sections, "LIST_LIMIT", limit):
                first = sections._observers_missing(session, scope)
                with mock.patch.object(plans, "counted", return_value=False):
                    assert first == sections._observers_missing(session, scope), (phase, limit)
        # Too many members or missing stations for an IN list (SQLite; PostgreSQL binds
        # one array of any length): read by a query of them.
        with mock.patch.object(sql, "IN_LIST", 1):
            assert sections._teams_missing(session, scope) == kept[0], phase
        found.append(kept)
    # The stations and assigned stations per region, kept and counted, wherever they answer.
    places = (None, "North", "South", "Turkey", "North/Lake")
    for filters in [Filters(), Filters(abroad=True), Filters(abroad=False)] + [
        Filters(location=place) for place in places if place
    ]:
        try:
            scope = resolve(session, mission_id, filters)
        except NotFound:  # a place of the other mission
            continue
        regions = sections._region_names(session, scope)
        kept_regions = sections._planned_per_region(session, scope, regions)
        with mock.patch.object(plans, "current", return_value=False):
            assert kept_regions == sections._planned_per_region(session, scope, regions), filters
    return found


def _plan_rows(session: Any) -> set[tuple[Any, ...]]:
    from api.services.findings import plans

    session.commit()
    tables = (plans.FOP, plans.FTP, plans.FRP)
    return {tuple(r) for t in tables for r in session.execute(select(t))}


def _assert_as_counted_afresh(session: Any) -> None:
    """Every plan row, last arrivals too, as the mission's rows counted whole."""
    kept = _plan_rows(session)
    session.execute(update(FindingState).values(plan_counted=None))
    session.commit()
    fold.run_once()
    assert _plan_rows(session) == kept


def test_the_plan_rows_answer_as_the_plan_joined_to_the_visits(client: Any, session: Any) -> None:
    """The fold's rows per observer and team (missing stations in each phase), moved by
    each batch's visits, equal the plan joined to the visits and the rows counted afresh
    after every kind of change: checklists arriving, corrected, rejected, restored and
    quarantined, teams whose members share stations, observers reassigned away from
    stations they reported at and moved between teams (the rows are counted again by the
    next fold; until then coverage joins the plan), a station moved."""
    from api.services import observers as observer_service
    from api.services.findings import plans
    from models.observer import ObserverUpdate

    mission, _ = make_mission(session)
    for code, place in PLACES:
        make_station(session, mission.id, code, **place)
    codes = [code for code, _ in PLACES]
    rng = random.Random(23)
    people = []
    for i, team in enumerate(["Team A", "Team A", "Team B", "Team B", None, None, "Team C"]):
        stations_ = rng.sample(codes, rng.randint(1, 4))
        people.append(
            (make_observer(session, mission.id, stations_, code=f"O-{i}", team=team), stations_)
        )
    # Another mission beside it, with a plan and a checklist of its own.
    other, _ = make_mission(session)
    make_station(session, other.id, "Z-1")
    make_station(session, other.id, "Z-2")
    _, elsewhere = make_observer(session, other.id, ["Z-1", "Z-2"], code="Z-OBS", team="Team A")
    post(client, elsewhere, "Z-1", "opening")
    fold.run_once()
    _missing_both_ways(session, mission.id)
    _missing_both_ways(session, other.id)
    posted: list[tuple[str, str, str, str]] = []  # id, token, station, phase
    rejected: list[str] = []
    for _ in range(5):
        for _ in range(12):
            (obs, token), stations_ = rng.choice(people)
            phase = rng.choice(["opening", "voting", "closing", "incident"])
            station = rng.choice(stations_)
            answers = _without_hidden(phase, _random_answers(rng, phase))
            posted.append((post(client, token, station, phase, answers), token, station, phase))
        for cid, *_ in rng.sample(posted, 4):
            set_review(session, mission.id, cid, review_state="rejected")
            rejected.append(cid)
        for cid in rng.sample(rejected, min(2, len(rejected))):
            set_review(session, mission.id, cid, review_state="verified")
        set_review(session, mission.id, rng.choice(posted)[0], quarantined=True)
        cid, token, station, phase = posted.pop(rng.randrange(len(posted)))
        answers = _without_hidden(phase, _random_answers(rng, phase))
        posted.append((correct(client, token, cid, station, phase, answers), token, station, phase))
        fold.run_once()
        _missing_both_ways(session, mission.id)
        _assert_as_counted_afresh(session)
    (obs, _), _ = people[0]
    observer_service.set_assignments(session, mission.id, obs.id, ["S-1", "S-2", "N-3"])
    # Team B loses a member to Team C; a team of one joins Team A: the teams left behind
    # are counted again by their own keys.
    observer_service.update(session, mission.id, people[2][0][0].id, ObserverUpdate(team="Team C"))
    observer_service.update(session, mission.id, people[4][0][0].id, ObserverUpdate(team="Team A"))
    (_, _), stations_ = people[5]  # by an import of observers: the same stations, a new team
    make_observer(session, mission.id, stations_, code="O-5", team="Team D")
    session.commit()
    scope = resolve(session, mission.id, Filters())
    assert not plans.counted(session, scope)  # due again: coverage joins the plan meanwhile
    assert plans.counted(session, resolve(session, other.id, Filters()))  # not another's
    (_, token), stations_ = people[4]  # a checklist folded with the change: counted after it
    post(client, token, stations_[0], "voting")
    fold.run_once()  # counts these observers' and teams' rows again, not the mission's
    assert session.scalar(
        select(FindingState.plan_counted).where(FindingState.mission_id == mission.id)
    )
    _missing_both_ways(session, mission.id)
    _missing_both_ways(session, other.id)
    assert session.scalar(select(func.count()).select_from(plans.PLC)) == 0
    _assert_as_counted_afresh(session)
    make_station(session, mission.id, "S-1", region="North", district="Lake")
    fold.run_once()
    _missing_both_ways(session, mission.id)
    # A fold from nothing counts the same rows.
    before = _plan_rows(session)
    with session_scope() as s:
        fold.rebuild(s)
    fold.run_once()
    assert _plan_rows(session) == before


@pytest.mark.postgres_only
def test_two_team_moves_at_once_leave_every_team_counted(client: Any, session: Any) -> None:
    """An observer moved to team B by one admin while another moves it on to team C: the
    second move waits for the first (the observer's row is locked) and so queues team B as
    the team it left, even when a fold counts the first move in between; team B's rows do
    not keep the observer's stations."""
    import threading

    from api.services import observers as observer_service
    from models.observer import ObserverUpdate

    mission, _ = make_mission(session)
    for code in ("T-1", "T-2", "T-3"):
        make_station(session, mission.id, code)
    moving, _ = make_observer(session, mission.id, ["T-1", "T-2"], code="MOVER", team="A")
    make_observer(session, mission.id, ["T-3"], code="STAYS", team="B")
    fold.run_once()
    moved, go_on = threading.Event(), threading.Event()

    def second_admin() -> None:
        with session_scope() as second:
            observer_service.update(second, mission.id, moving.id, ObserverUpdate(team="C"))
            moved.set()
            go_on.wait(10)

    admin = threading.Thread(target=second_admin)
    with session_scope() as first:  # committed at the end of the block
        observer_service.update(first, mission.id, moving.id, ObserverUpdate(team="B"))
        admin.start()
        time.sleep(0.3)  # the second admin reads the observer now, or waits for the first
    assert moved.wait(10)
    fold.run_once()  # counts the first move: B holds the observer's stations
    go_on.set()
    admin.join(10)
    fold.run_once()  # counts the second
    _missing_both_ways(session, mission.id)
    _assert_as_counted_afresh(session)


@pytest.mark.postgres_only
def test_a_plan_change_committed_while_a_fold_counts_the_queue_waits_for_the_next(
    client: Any, session: Any, monkeypatch: Any
) -> None:
    """The fold takes from the queue only the plan changes it read: one committed while it
    counts them (a lower id may commit later) stays queued, coverage joins the plan until
    the next fold has counted it too, and then the rows are as counted afresh."""
    from api.services import observers as observer_service
    from api.services.findings import plans

    mission, _ = make_mission(session)
    for code in ("Q-1", "Q-2", "Q-3"):
        make_station(session, mission.id, code)
    first, token = make_observer(session, mission.id, ["Q-1"], code="Q-A", team="A")
    second, _ = make_observer(session, mission.id, ["Q-2"], code="Q-B", team="B")
    post(client, token, "Q-1", "voting")
    fold.run_once()
    observer_service.set_assignments(session, mission.id, first.id, ["Q-1", "Q-3"])
    session.commit()
    counting = plans._observer_rows

    def change_meanwhile(where: Any) -> Any:
        monkeypatch.setattr(plans, "_observer_rows", counting)
        with session_scope() as other:
            observer_service.set_assignments(other, mission.id, second.id, ["Q-2", "Q-3"])
        return counting(where)

    monkeypatch.setattr(plans, "_observer_rows", change_meanwhile)
    assert fold.run_once().folded
    session.commit()
    queued = session.scalars(select(plans.PLC.c.observer_id)).all()
    assert queued == [second.id]  # the change committed meanwhile is still queued
    assert not plans.counted(session, resolve(session, mission.id, Filters()))
    fold.run_once()
    _missing_both_ways(session, mission.id)
    _assert_as_counted_afresh(session)


@pytest.mark.postgres_only
def test_a_fold_slower_than_a_request_may_be_is_not_cancelled(
    client: Any, session: Any, monkeypatch: Any
) -> None:
    """The fold has a statement timeout of its own: a fold that has fallen far behind
    takes longer a statement than the requests' timeout allows, and cancelled it would
    start over. (The requests keep theirs.)"""
    from api import db
    from api.config import get_settings

    mission, _ = make_mission(session)
    _, token = make_observer(session, mission.id, [make_station(session, mission.id, "S-1")])
    post(client, token, "S-1", "voting")
    monkeypatch.setenv("POLLCHECK_DB_STATEMENT_TIMEOUT_MS", "100")
    get_settings.cache_clear()
    db.reset_engines()
    try:
        slow = fold._fold_window

        def fold_window(session: Any, *args: Any) -> int:
            session.execute(text("SELECT pg_sleep(0.3)"))  # as a large window's statement
            return slow(session, *args)

        monkeypatch.setattr(fold, "_fold_window", fold_window)
        assert fold.run_once().checklists == 1
        with db.new_session() as request, pytest.raises(OperationalError):
            request.execute(text("SELECT pg_sleep(0.3)"))  # a request's: cancelled
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        db.reset_engines()
