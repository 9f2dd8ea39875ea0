"""The intake's rules on their own: plain values in, a decision out, no database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from api.deps import Principal
from api.services.intake import rules
from api.services.intake.rules import Refused, Replaced
from models import Role
from models.checklist import Hold

MISSION = uuid.uuid4()
OBSERVER = uuid.uuid4()
NOW = datetime(2026, 3, 15, 9, 0, tzinfo=UTC)


def _observer(observer_id: uuid.UUID = OBSERVER, mission_id: uuid.UUID = MISSION) -> Principal:
    return Principal(uuid.uuid4(), mission_id, Role.observer, observer_id)


def _analyst(mission_id: uuid.UUID = MISSION) -> Principal:
    return Principal(uuid.uuid4(), mission_id, Role.analyst, None)


def _version(**over: object) -> Replaced:
    fields: dict[str, object] = {
        "id": uuid.uuid4(),
        "root_id": uuid.uuid4(),
        "version": 2,
        "is_latest": True,
        "observer_id": OBSERVER,
        "mission_id": MISSION,
        "quarantined": False,
        "review_state": "received",
        "hold": None,
    }
    return Replaced(**(fields | over))  # type: ignore[arg-type]


def _code(exc: pytest.ExceptionInfo[Refused]) -> tuple[str, str]:
    return exc.value.refusal.kind, exc.value.refusal.code


# --- replay or conflict ----------------------------------------------------------------


def test_the_same_content_hashes_alike_whatever_the_key_order() -> None:
    assert rules.content_hash({"a": 1, "b": [1, 2]}) == rules.content_hash({"b": [1, 2], "a": 1})
    assert rules.content_hash({"a": 1}) != rules.content_hash({"a": 2})


def test_a_resend_with_a_new_send_time_hashes_as_the_first_send() -> None:
    first = {"id": "x", "answers": {"A1": "yes"}, "sent_at": "2026-03-15T08:00:00Z"}
    again = first | {"sent_at": "2026-03-15T08:05:00Z"}
    assert rules.content_hash(rules.sent_content(first)) == rules.content_hash(
        rules.sent_content(again)
    )
    assert rules.sent_content(first) == {"id": "x", "answers": {"A1": "yes"}}


def test_a_resend_of_the_same_content_by_its_sender_is_a_replay() -> None:
    cid = uuid.uuid4()
    rules.check_replay(_observer(), MISSION, OBSERVER, "d1", cid, "d1")  # no refusal


def test_an_analyst_resending_a_correction_of_an_observers_checklist_is_a_replay() -> None:
    rules.check_replay(_analyst(), MISSION, OBSERVER, "d1", uuid.uuid4(), "d1")


def test_an_id_reused_with_other_content_is_a_conflict_naming_the_way_out() -> None:
    cid = uuid.uuid4()
    with pytest.raises(Refused) as exc:
        rules.check_replay(_observer(), MISSION, OBSERVER, "d1", cid, "d2")
    assert _code(exc) == ("conflict", rules.ID_REUSED)
    assert str(cid) in exc.value.refusal.message and "replaces" in exc.value.refusal.message


@pytest.mark.parametrize(
    "caller",
    [
        _observer(observer_id=uuid.uuid4()),
        _observer(mission_id=uuid.uuid4()),
        _analyst(uuid.uuid4()),
    ],
    ids=["another observer", "another mission's observer", "another mission's analyst"],
)
def test_an_id_someone_else_used_is_taken_without_saying_whose(caller: Principal) -> None:
    with pytest.raises(Refused) as exc:
        # Even with the same content: the answer must not confirm what the checklist holds.
        rules.check_replay(caller, MISSION, OBSERVER, "d1", uuid.uuid4(), "d1")
    assert _code(exc) == ("conflict", rules.ID_TAKEN)
    assert str(MISSION) not in exc.value.refusal.message


# --- roles and the version chain -------------------------------------------------------


def test_only_observers_post_new_checklists() -> None:
    assert rules.role_problem(_observer(), None) is None
    assert rules.role_problem(_analyst(), uuid.uuid4()) is None
    found = rules.role_problem(_analyst(), None)
    assert found is not None and found["code"] == "observer_only"
    assert found["path"] == ["replaces"]


def test_an_observer_corrects_only_their_own_latest_version() -> None:
    mine = _version()
    assert rules.correction_target(_observer(), mine.id, mine) == (mine, None)
    theirs = _version(observer_id=uuid.uuid4())
    target, found = rules.correction_target(_observer(), theirs.id, theirs)
    assert target is None and found is not None and found["code"] == "unknown_checklist"


@pytest.mark.parametrize(
    "stored",
    [None, _version(mission_id=uuid.uuid4())],
    ids=["no such checklist", "another mission's"],
)
def test_a_correction_of_an_unknown_checklist_is_a_field_problem(stored: Replaced | None) -> None:
    replaces = uuid.uuid4()
    target, found = rules.correction_target(_analyst(), replaces, stored)
    assert target is None
    assert found == {
        "path": ["replaces"],
        "code": "unknown_checklist",
        "message": f"no checklist {replaces} of yours to correct",
    }


def test_a_correction_of_a_version_already_corrected_is_a_conflict() -> None:
    old = _version(is_latest=False)
    with pytest.raises(Refused) as exc:
        rules.correction_target(_observer(), old.id, old)
    assert _code(exc) == ("conflict", rules.NOT_LATEST)


def test_an_analysts_correction_stays_the_observers_checklist() -> None:
    assert rules.owner(_analyst(), _version()) == OBSERVER
    assert rules.owner(_observer(), None) == OBSERVER


def test_a_new_checklist_starts_its_own_chain() -> None:
    cid = uuid.uuid4()
    assert rules.chain(cid, None) == rules.Chain(cid, 1, False, None)


def test_a_correction_continues_the_chain_and_keeps_its_quarantine() -> None:
    old = _version(version=3, quarantined=True)
    assert rules.chain(uuid.uuid4(), old) == rules.Chain(
        old.root_id, 4, True, Hold.correction_of_quarantined
    )


@pytest.mark.parametrize(
    ("state", "quarantined", "hold", "expected"),
    [
        ("received", False, None, None),
        ("verified", False, None, None),
        ("has_issues", False, None, None),
        ("rejected", False, None, Hold.correction_of_rejected),
        ("received", True, None, Hold.correction_of_quarantined),
        ("rejected", True, None, Hold.correction_of_rejected),
        # A correction of a correction still waiting waits in turn.
        ("received", False, "correction_of_rejected", Hold.correction_of_rejected),
        ("received", False, "correction_of_quarantined", Hold.correction_of_quarantined),
    ],
)
def test_a_correction_waits_for_an_analyst_when_its_version_was_rejected_or_quarantined(
    state: str, quarantined: bool, hold: str | None, expected: Hold | None
) -> None:
    assert rules.hold_for_correction(state, quarantined, hold) == expected


# --- station and assignment ------------------------------------------------------------


def test_an_observer_reports_only_from_an_assigned_station_and_staff_from_any() -> None:
    assert rules.assignment_problem(_observer(), "S-1", assigned=True) is None
    assert rules.assignment_problem(_analyst(), "S-1", assigned=False) is None
    found = rules.assignment_problem(_observer(), "S-1", assigned=False)
    assert found == {
        "path": ["station"],
        "code": "not_assigned",
        "message": "station S-1 is not assigned to you",
    }


def test_an_unknown_station_is_named_in_its_problem() -> None:
    assert rules.unknown_station("S-9") == {
        "path": ["station"],
        "code": "unknown_station",
        "message": "no station 'S-9' in this mission",
    }


# --- the phone's clock -------------------------------------------------------------------


def test_the_clock_skew_is_how_far_the_phone_is_behind() -> None:
    skew, problems = rules.clock(NOW, NOW - timedelta(seconds=90), NOW - timedelta(hours=1), 300)
    assert (skew, problems) == (90, [])
    skew, _ = rules.clock(NOW, NOW + timedelta(seconds=30), NOW - timedelta(hours=1), 300)
    assert skew == -30


def test_without_a_send_time_the_skew_is_unknown() -> None:
    assert rules.clock(NOW, None, NOW - timedelta(hours=1), 300) == (None, [])


def test_an_observation_in_the_future_is_refused_beyond_the_tolerance() -> None:
    assert rules.clock(NOW, None, NOW + timedelta(seconds=299), 300) == (None, [])
    _, problems = rules.clock(NOW, None, NOW + timedelta(seconds=301), 300)
    assert [p["code"] for p in problems] == ["in_future"]
    assert problems[0]["path"] == ["observed_at"]


def test_a_phone_clock_running_fast_is_corrected_before_the_future_check() -> None:
    # The phone's clock is an hour ahead: its observation "in an hour" is now.
    ahead = timedelta(hours=1)
    assert rules.clock(NOW, NOW + ahead, NOW + ahead, 300) == (-3600, [])


def test_an_implausible_phone_clock_is_refused_and_not_used_to_correct() -> None:
    far = NOW - timedelta(seconds=rules.MAX_CLOCK_SKEW_S + 1)
    skew, problems = rules.clock(NOW, far, NOW - timedelta(minutes=5), 300)
    assert skew is None
    assert [(p["path"], p["code"]) for p in problems] == [(["sent_at"], "implausible_clock")]
    assert "68 years off" in problems[0]["message"]
    assert rules.clock_skew_problem(rules.MAX_CLOCK_SKEW_S) is None


def test_a_clock_is_flagged_beyond_the_missions_threshold_either_way() -> None:
    assert not rules.clock_flagged(None, 600)
    assert not rules.clock_flagged(600, 600)
    assert rules.clock_flagged(601, 600)
    assert rules.clock_flagged(-601, 600)


@pytest.mark.parametrize(("hours", "minutes"), [(5, 0), (-3, -30), (0, 0)])
def test_the_phones_utc_offset_is_kept_in_minutes(hours: int, minutes: int) -> None:
    zone = timezone(timedelta(hours=hours, minutes=minutes))
    assert rules.utc_offset_min(NOW.astimezone(zone)) == hours * 60 + minutes


# --- the template and the refusal ------------------------------------------------------


def test_a_template_must_exist_and_be_published() -> None:
    assert rules.template_problem("default", 1, exists=True, published=True) is None
    missing = rules.template_problem("default", 9, exists=False, published=False)
    assert missing is not None and (missing["path"], missing["code"]) == (
        ["template"],
        "unknown_template",
    )
    draft = rules.template_problem("default", 2, exists=True, published=False)
    assert draft is not None and (draft["path"], draft["code"]) == (
        ["template_version"],
        "template_not_published",
    )


def test_an_invalid_checklist_carries_every_problem_and_says_how_many() -> None:
    problems = [rules.unknown_station("S-9"), rules.problem(["answers", "A1"], "required", "x")]
    refusal = rules.invalid(problems).refusal
    assert (refusal.kind, refusal.code) == ("invalid", rules.INVALID_CHECKLIST)
    assert list(refusal.problems) == problems
    assert refusal.message.startswith("the checklist has 2 problem(s)")
