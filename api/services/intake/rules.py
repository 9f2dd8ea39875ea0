"""The intake's rules as pure functions of plain values: no database, no HTTP, no clock.

Every channel (the JSON route, the phone's batch, later OpenRosa and SMS) stores a checklist
by the same rules, and these functions are the only place they are written down; `core`
looks up what they need and `storage` writes what they decide. A rule says no with a
`Refusal`: either one field problem among possibly several (`FieldProblem`, gathered into
one `invalid_checklist` refusal so the phone learns of every problem at once) or a conflict
that ends the intake at once. The HTTP layer maps refusals to 422 and 409.

Codes are defined once, here: the channels and their tests name them, and an OpenRosa
answer must be able to say the same thing as the JSON one.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

import orjson

from models.checklist import Hold, ReviewState
from models.credential import Role

# The refusals' codes (`code` in the error body).
INVALID_CHECKLIST = "invalid_checklist"
ID_TAKEN = "id_taken"
ID_REUSED = "id_reused_with_other_content"
NOT_LATEST = "not_latest_version"

# What `checklist.clock_skew_s` (a 4-byte INTEGER) holds: about 68 years either way. A
# phone clock further off than that (a `sent_at` in 2099) is no clock to correct by; the
# checklist is invalid, where it used to overflow the column and fail its whole batch.
MAX_CLOCK_SKEW_S = 2**31 - 1

FieldProblem = dict[str, Any]  # {"path": [...], "code": ..., "message": ...}, as AnswerError


def problem(path: list[str | int], code: str, message: str) -> FieldProblem:
    return {"path": path, "code": code, "message": message}


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a checklist was not stored: `invalid` (its content, with every field problem) or
    `conflict` (its id or its place in a version chain)."""

    kind: Literal["invalid", "conflict"]
    code: str
    message: str
    problems: tuple[FieldProblem, ...] = ()


class Refused(Exception):
    """Raised by the intake with the `Refusal`; nothing of the checklist was stored."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


def conflict(code: str, message: str) -> Refused:
    return Refused(Refusal("conflict", code, message))


def invalid(problems: list[FieldProblem]) -> Refused:
    return Refused(
        Refusal(
            "invalid",
            INVALID_CHECKLIST,
            f"the checklist has {len(problems)} problem(s); nothing was stored",
            tuple(problems),
        )
    )


class Caller(Protocol):
    """Who sends (an `api.deps.Principal`; any object with these attributes)."""

    @property
    def mission_id(self) -> uuid.UUID: ...
    @property
    def role(self) -> Role: ...
    @property
    def observer_id(self) -> uuid.UUID | None: ...


# --- replay or conflict --------------------------------------------------------------------


def content_hash(item: Any) -> str:
    """Same content, same hash, whatever the key order or white space."""
    return hashlib.sha256(orjson.dumps(item, option=orjson.OPT_SORT_KEYS)).hexdigest()


def sent_content(item: Any) -> Any:
    """The checklist without its send time: a phone stamps `sent_at` anew on every attempt,
    and a resend after a dropped answer must still be a replay, not a conflict."""
    if isinstance(item, dict) and "sent_at" in item:
        return {k: v for k, v in item.items() if k != "sent_at"}
    return item


def check_replay(
    caller: Caller,
    stored_mission_id: uuid.UUID,
    stored_observer_id: uuid.UUID,
    stored_digest: str,
    checklist_id: uuid.UUID,
    digest: str,
) -> None:
    """A checklist id that is already stored: a replay (returns) or a conflict (raises)."""
    if stored_mission_id != caller.mission_id or (
        caller.role == Role.observer and stored_observer_id != caller.observer_id
    ):
        # Never reveal another mission's or observer's checklist, even by its id.
        raise conflict(
            ID_TAKEN, "this checklist id is already used; make a new id for a new checklist"
        )
    if stored_digest != digest:
        raise conflict(
            ID_REUSED,
            f"checklist {checklist_id} was already received with other content; "
            "send a correction with a new id and `replaces` to change it",
        )


def corrected_meanwhile(checklist_id: uuid.UUID | None) -> Refused:
    """Two corrections of one version raced and this one lost."""
    if checklist_id is None:
        return conflict(NOT_LATEST, "this version was corrected meanwhile by another request")
    return conflict(NOT_LATEST, f"checklist {checklist_id} was corrected meanwhile")


# --- roles and the version chain -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Replaced:
    """What a correction needs of the version it corrects."""

    id: uuid.UUID
    root_id: uuid.UUID
    version: int
    is_latest: bool
    observer_id: uuid.UUID
    mission_id: uuid.UUID
    quarantined: bool
    review_state: str
    hold: str | None


def role_problem(caller: Caller, replaces: uuid.UUID | None) -> FieldProblem | None:
    """Observers post new checklists and corrections; analysts only corrections."""
    if replaces is None and caller.role != Role.observer:
        return problem(
            ["replaces"],
            "observer_only",
            "only observers post new checklists; analysts post corrections",
        )
    return None


def correction_target(
    caller: Caller, replaces: uuid.UUID, replaced: Replaced | None
) -> tuple[Replaced | None, FieldProblem | None]:
    """The version a correction replaces, if the caller may correct it, or the problem; a
    version that is no longer the latest is a conflict (raised)."""
    if (
        replaced is None
        or replaced.mission_id != caller.mission_id
        or (caller.role == Role.observer and replaced.observer_id != caller.observer_id)
    ):
        return None, problem(
            ["replaces"], "unknown_checklist", f"no checklist {replaces} of yours to correct"
        )
    if not replaced.is_latest:
        raise conflict(
            NOT_LATEST, f"checklist {replaces} was already corrected; correct its latest version"
        )
    return replaced, None


def owner(caller: Caller, replaced: Replaced | None) -> uuid.UUID | None:
    """Whose checklist it is: an analyst's correction stays the observer's."""
    return replaced.observer_id if replaced is not None else caller.observer_id


def hold_for_correction(state: str, quarantined: bool, hold: str | None) -> Hold | None:
    """The hold a correction gets from the version it corrects: a rejection or quarantine
    there, or a hold not yet decided, must not be undone by the correction alone."""
    if state == ReviewState.rejected or hold == Hold.correction_of_rejected:
        return Hold.correction_of_rejected
    if quarantined or hold == Hold.correction_of_quarantined:
        return Hold.correction_of_quarantined
    return None


@dataclass(frozen=True, slots=True)
class Chain:
    """A version's place in its chain and what it inherits from the version it corrects."""

    root_id: uuid.UUID
    version: int
    # A quarantine holds the whole chain out of the findings until an analyst lifts it; a
    # correction must not be a way around it. The review state starts afresh, but a
    # correction of a rejected or quarantined version waits for an analyst (`hold`).
    quarantined: bool
    hold: Hold | None


def chain(checklist_id: uuid.UUID, replaced: Replaced | None) -> Chain:
    if replaced is None:
        return Chain(checklist_id, 1, False, None)
    return Chain(
        replaced.root_id,
        replaced.version + 1,
        replaced.quarantined,
        hold_for_correction(replaced.review_state, replaced.quarantined, replaced.hold),
    )


# --- station and assignment ------------------------------------------------------------


def unknown_station(station_code: str) -> FieldProblem:
    return problem(["station"], "unknown_station", f"no station {station_code!r} in this mission")


def assignment_problem(caller: Caller, station_code: str, assigned: bool) -> FieldProblem | None:
    """An observer reports only from the stations assigned to them; staff from any."""
    if caller.role == Role.observer and not assigned:
        return problem(
            ["station"], "not_assigned", f"station {station_code} is not assigned to you"
        )
    return None


# --- the phone's clock -------------------------------------------------------------------


def clock_skew_problem(skew_s: int) -> FieldProblem | None:
    """The problem with a phone clock this many seconds behind the server's, if any."""
    if abs(skew_s) <= MAX_CLOCK_SKEW_S:
        return None
    return problem(
        ["sent_at"],
        "implausible_clock",
        f"the phone's clock is {abs(skew_s) // 31_557_600} years off; set its date and send again",
    )


def clock(
    received_at: datetime,
    sent_at: datetime | None,
    observed_at: datetime,
    future_tolerance_s: int,
) -> tuple[int | None, list[FieldProblem]]:
    """How far the phone's clock is behind the server's (None: unknown or implausible), and
    the problems with the times: the observation, corrected by that skew, may not lie in
    the future beyond the tolerance."""
    problems: list[FieldProblem] = []
    skew_s: int | None = None
    if sent_at is not None:
        skew_s = round((received_at - sent_at).total_seconds())
        bad = clock_skew_problem(skew_s)
        if bad is not None:
            problems.append(bad)
            skew_s = None
    corrected = observed_at + timedelta(seconds=skew_s or 0)
    if corrected > received_at + timedelta(seconds=future_tolerance_s):
        problems.append(
            problem(
                ["observed_at"],
                "in_future",
                "the observation time is in the future; check the phone's clock",
            )
        )
    return skew_s, problems


def clock_flagged(skew_s: int | None, flag_s: int) -> bool:
    """Whether the analysts should look at the phone's clock."""
    return skew_s is not None and abs(skew_s) > flag_s


def utc_offset_min(observed_at: datetime) -> int:
    """The phone's own UTC offset, kept to show the time as the observer saw it."""
    offset = observed_at.utcoffset() or timedelta(0)
    return int(offset.total_seconds() // 60)


# --- the template ----------------------------------------------------------------------


def template_problem(code: str, version: int, exists: bool, published: bool) -> FieldProblem | None:
    if not exists:
        return problem(["template"], "unknown_template", f"no template {code} version {version}")
    if not published:
        return problem(
            ["template_version"],
            "template_not_published",
            f"template {code} version {version} is not published",
        )
    return None
