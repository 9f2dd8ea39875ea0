"""`POLLCHECK_INTAKE_LAG_TARGET_S`: each process stores fewer observers' submissions at once
while the findings are further behind than the target, and all of them again when the
findings catch up, when a submission has waited a second for its turn, when the fold has
stopped, or when the database cannot be read (`api.pacing`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from api import deps
from api.config import get_settings
from api.pacing import GAP_MAX_S, GAP_MIN_S, PAUSE_S, STALLED_S, WAIT_BUDGET_S, Turns, steer
from api.services.findings import fold as fold_service
from api.services.findings.fold import Progress
from api.services.intake import group
from tests.factories import auth, checklist_payload, make_mission, make_observer, make_station
from tests.findings_factories import changes_recorded_ago


def behind(lag_s: float, folded_s_ago: float | None = 0.5) -> Progress:
    return Progress(lag_s=lag_s, folded_s_ago=folded_s_ago)


def test_behind_the_target_it_halves_once_a_target_apart_down_to_one() -> None:
    turns = Turns(20, target_s=2.0)
    assert turns.step(behind(3.0), now=100.0) == 10
    assert turns.step(behind(3.0), now=101.0) == 10  # the cut has not shown in the lag yet
    assert [turns.step(behind(3.0), now=t) for t in (102.0, 104.0, 106.0, 108.0)] == [5, 2, 1, 1]


def test_far_behind_it_cuts_in_proportion() -> None:
    turns = Turns(20, target_s=2.0)
    assert turns.step(behind(8.0), now=0.0) == 5  # four times the target: a quarter
    assert turns.step(behind(60.0), now=2.0) == 1


def test_caught_up_it_adds_one_a_step_up_to_the_bound() -> None:
    turns = Turns(3, target_s=2.0)
    assert turns.step(behind(5.0), now=0.0) == 1
    assert turns.step(behind(1.5), now=0.5) == 1  # between half the target and the target: held
    assert [turns.step(behind(1.0), now=t) for t in (1.0, 1.5, 2.0)] == [2, 3, 3]


def test_without_a_lag_nothing_is_paced() -> None:
    turns = Turns(4, target_s=2.0)
    assert [turns.step(behind(0.0), now=t) for t in (0.0, 0.5)] == [4, 4]


def test_a_stopped_fold_or_an_unreadable_database_ends_the_pacing() -> None:
    turns = Turns(8, target_s=2.0)
    assert turns.step(behind(4.0), now=0.0) == 4
    # Changes wait longer than STALLED_S and nothing was folded for as long: the fold is
    # down, and holding the observers back would not bring the findings closer.
    assert turns.step(behind(STALLED_S + 10, folded_s_ago=STALLED_S + 5), now=10.0) == 8
    assert turns.step(behind(STALLED_S + 10, folded_s_ago=None), now=20.0) == 8
    # As far behind, but the fold is folding: slow, not stopped, and the pacing goes on.
    assert turns.step(behind(STALLED_S + 10, folded_s_ago=3.0), now=30.0) == 1
    assert turns.step(None, now=31.0) == 8


def test_a_submission_waiting_its_turn_for_a_second_ends_the_pacing() -> None:
    """Paced down to one at a time, a second submission waits for the first; once it has
    waited WAIT_BUDGET_S, the next step lets as many in as the bound, and it goes in; no
    pacing for PAUSE_S after."""
    inside: list[str] = []

    async def main() -> None:
        turns = Turns(4, target_s=2.0)
        for now in (0.0, 2.0):
            turns.step(behind(5.0), now=now)
        assert turns.at_once == 1
        done = anyio.Event()

        async def submission(name: str, until: anyio.Event | None = None) -> None:
            async with turns.turn():
                inside.append(name)
                if until is not None:
                    await until.wait()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(submission, "first", done)
            await anyio.sleep(0.05)
            tasks.start_soon(submission, "second")
            await anyio.sleep(0.05)
            assert inside == ["first"]  # one at a time: the second waits its turn
            # Half a budget later it still waits (the findings are still behind).
            assert turns.step(behind(5.0), now=time.monotonic() + WAIT_BUDGET_S / 2) == 1
            released = time.monotonic() + WAIT_BUDGET_S
            assert turns.step(behind(5.0), now=released) == 4
            await anyio.sleep(0.05)
            assert inside == ["first", "second"]
            # The findings are still behind, but the observers come first for a while.
            assert turns.step(behind(5.0), now=released + PAUSE_S - 1) == 4
            assert turns.step(behind(5.0), now=released + PAUSE_S) == 1
            done.set()

    anyio.run(main)


class FakeGroup:
    """Stands for `api.services.intake.group`: the gaps the pacing set."""

    def __init__(self) -> None:
        self.gaps: list[float] = []

    def pace(self, gap_s: float) -> None:
        self.gaps.append(gap_s)


def test_with_checklists_stored_together_the_cuts_space_their_statements_too() -> None:
    """Each cut doubles the gap between the group's statements, from GAP_MIN_S up to
    GAP_MAX_S; each step at half the target or less halves it, to nothing below
    GAP_MIN_S. The other submissions' turns move as without a group."""
    assert (GAP_MIN_S, GAP_MAX_S) == (0.05, 0.25)
    group = FakeGroup()
    turns = Turns(20, target_s=2.0, group=group)
    cuts = [turns.step(behind(3.0), now=t) for t in (0.0, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0)]
    assert cuts == [10, 10, 5, 2, 1, 1, 1]
    assert group.gaps == pytest.approx([0.05, 0.05, 0.1, 0.2, 0.25, 0.25, 0.25])
    turns.step(behind(1.5), now=11.0)  # between half the target and the target: held
    assert group.gaps[-1] == pytest.approx(0.25) and turns.paced
    caught_up = [turns.step(behind(0.5), now=t) for t in (11.5, 12.0, 12.5, 13.0)]
    assert caught_up == [2, 3, 4, 5]
    assert group.gaps[-4:] == pytest.approx([0.125, 0.0625, 0.0, 0.0])
    assert turns.paced  # the other submissions are still held to five at a time
    for t in range(15):
        turns.step(behind(0.5), now=14.0 + t)
    assert turns.at_once == 20 and not turns.paced


def test_with_checklists_stored_together_they_take_no_turn_but_their_trip_counts() -> None:
    """Paced down to one at a time, a batch waits for another's turn; a single checklist
    goes straight on (the group paces it). A single checklist's whole trip counts as a
    turn's wait does: one still under way for WAIT_BUDGET_S, or one that took as long,
    ends the pacing."""
    group = FakeGroup()
    inside: list[str] = []

    async def main() -> None:
        turns = Turns(4, target_s=2.0, group=group)
        for now in (0.0, 2.0):
            turns.step(behind(5.0), now=now)
        assert turns.at_once == 1 and turns.paced
        done = anyio.Event()

        async def submission(name: str, single: bool, until: anyio.Event | None = None) -> None:
            async with turns.turn(single):
                inside.append(name)
                if until is not None:
                    await until.wait()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(submission, "batch", False, done)
            await anyio.sleep(0.05)
            entered = time.monotonic()
            tasks.start_soon(submission, "checklist", True, done)
            await anyio.sleep(0.05)
            assert inside == ["batch", "checklist"]  # no turn to wait for
            assert turns.step(behind(5.0), now=entered + WAIT_BUDGET_S / 2) == 1
            assert turns.step(behind(5.0), now=entered + WAIT_BUDGET_S + 0.1) == 4
            assert group.gaps[-1] == 0.0 and not turns.paced
            done.set()

        # Paced again (after the pause a long wait earns), then a checklist's trip that
        # took the budget, over by the next step.
        for now in (PAUSE_S + 10.0, PAUSE_S + 12.0):
            turns.step(behind(5.0), now=time.monotonic() + now)
        assert turns.paced
        async with turns.turn(single=True):
            await anyio.sleep(WAIT_BUDGET_S)
        assert turns.step(behind(5.0), now=time.monotonic()) == 4

    anyio.run(main)


def test_through_a_database_outage_every_submission_goes_in_and_it_is_said_once(
    caplog: Any,
) -> None:
    turns = Turns(4, target_s=1.0)
    assert turns.step(behind(3.0), now=0.0) == 1
    reads: list[float] = []

    def unreadable() -> Progress:
        reads.append(time.monotonic())
        raise OSError("connection refused")

    async def main() -> None:
        with anyio.move_on_after(0.35):
            await steer(turns, unreadable, every_s=0.1)

    with caplog.at_level(logging.WARNING, logger="api.pacing"):
        anyio.run(main)
    assert len(reads) >= 3 and turns.at_once == 4
    said = [r.getMessage() for r in caplog.records]
    assert sum(m.startswith("the findings' progress could not be read") for m in said) == 1
    assert said.count("intake no longer paced: the findings' progress could not be read") == 1


def _until(check: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def paced(monkeypatch: Any) -> Any:
    monkeypatch.setenv("POLLCHECK_INTAKE_LAG_TARGET_S", "1")
    monkeypatch.setenv("POLLCHECK_INTAKE_AT_ONCE", "4")
    get_settings.cache_clear()
    deps.forget_limiters()
    yield
    monkeypatch.delenv("POLLCHECK_INTAKE_LAG_TARGET_S")
    monkeypatch.delenv("POLLCHECK_INTAKE_AT_ONCE")
    get_settings.cache_clear()
    deps.forget_limiters()


def test_a_process_paces_its_intake_by_the_findings_lag_read_from_the_database(
    paced: None, session: Any, caplog: Any
) -> None:
    """A real app with its start-up: a checklist stored 5 s ago and not folded puts the
    findings behind the 1 s target, and the process stores fewer submissions at once (still
    taking them); once the fold has folded it, the process goes back to its bound. The log
    says when the pacing starts and ends, and why."""
    caplog.set_level(logging.INFO, logger="api.pacing")
    from fastapi.testclient import TestClient

    from api.main import create_app

    mission, _ = make_mission(session)
    make_station(session, mission.id, "S-1")
    token = make_observer(session, mission.id, ["S-1"])[1]
    session.commit()
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        turns = deps.intake_turns()
        assert turns is not None and turns.at_once == 4
        sent = client.post("/checklists", json=checklist_payload("S-1"), headers=auth(token))
        assert sent.status_code == 201, sent.text
        changes_recorded_ago(session, 5)
        assert _until(lambda: turns.at_once < 4), "the process never paced its intake"
        if turns.group is not None:  # PostgreSQL: single checklists are stored together
            assert _until(lambda: group._gap_s == turns.gap_s >= GAP_MIN_S)
        again = client.post("/checklists", json=checklist_payload("S-1"), headers=auth(token))
        assert again.status_code == 201, again.text
        fold_service.run_once()
        assert _until(lambda: not turns.paced), "the pacing never ended"
        assert turns.at_once == 4 and group._gap_s == 0.0
    said = [r.getMessage() for r in caplog.records if r.name == "api.pacing"]
    assert any("behind the checklists: observers' submissions stored" in m for m in said), said
    assert "intake no longer paced: the findings caught up" in said, said


def test_the_fold_s_progress_as_the_database_says(client: Any, session: Any) -> None:
    mission, _ = make_mission(session)
    make_station(session, mission.id, "S-1")
    token = make_observer(session, mission.id, ["S-1"])[1]
    session.commit()
    assert fold_service.progress(session) == Progress(lag_s=0.0, folded_s_ago=None)
    sent = client.post("/checklists", json=checklist_payload("S-1"), headers=auth(token))
    assert sent.status_code == 201, sent.text
    changes_recorded_ago(session, 7)
    progress = fold_service.progress(session)
    assert 7.0 <= progress.lag_s < 9.0 and progress.folded_s_ago is None
    fold_service.run_once()
    session.commit()  # a fresh snapshot (SQLite keeps one a transaction)
    progress = fold_service.progress(session)
    assert progress.lag_s == 0.0
    assert progress.folded_s_ago is not None and progress.folded_s_ago < 2.0
