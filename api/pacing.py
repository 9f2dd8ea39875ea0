"""The turns observers' submissions take to be stored, paced by how far the findings are
behind them (`POLLCHECK_INTAKE_AT_ONCE`, `POLLCHECK_INTAKE_LAG_TARGET_S`).

Where one machine carries the API and PostgreSQL, every submission being stored is a
database session beside the findings fold's one, and at peak the cores are shared between
them. On the two-core bench machine the findings fell 14 to 16 s behind the checklists at
saturation; with one submission stored at a time in each process, about 2 s, for about
half the intake (bench/README.md). A fixed bound (`intake_at_once`) pays that price all day.
Pacing pays it only while the findings are behind and the observers can wait.

With a target set, each API process reads the fold's progress from the database every half
second (`fold.progress`) and steers how many submissions it stores at once (`Turns.step`):
- over the target: by half, or in proportion to how far over it the lag is, down to one; at
  most once in a target's length of time, so that one cut shows in the lag before the next;
- at half the target or less: one more every half second, up to the bound;
- all of them again:
  - as soon as a submission has waited its turn for `WAIT_BUDGET_S`, with no pacing for
    `PAUSE_S` after (the observers come first: pacing spends only the slack in their
    waiting);
  - when the fold has folded nothing for `STALLED_S` while changes wait (it is down or
    stuck, and holding the observers back would not bring the findings closer);
  - when the database cannot be read.

Where observers' new checklists are stored together (`api.services.intake.group`, on
PostgreSQL), fewer of them at once would only make the statements smaller: a statement's
fixed cost is about half of what the database spends on a checklist stored alone. So
while paced, single checklists are not held to `at_once`; instead the group's statements
start at least `gap_s` apart, so that those arriving meanwhile go in one (`group.pace`).
The gap doubles with each cut, from GAP_MIN_S up to GAP_MAX_S, and halves with each step
at half the target or less. Every single checklist (`POST /checklists`: corrections and
resends too) skips the turns then, and its whole trip, from the request's arrival to its
stored answer, counts towards `WAIT_BUDGET_S` as a turn's wait does. Batches and ODK
Collect's forms still take their turns.

Processes share nothing but the database: each reads the same lag and steers its own
submissions, so any number of them steer alike.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Protocol

import anyio
import anyio.to_thread

if TYPE_CHECKING:
    from api.services.findings.fold import Progress

log = logging.getLogger(__name__)

STEP_S = 0.5  # how often a process with a target reads the fold's progress
WAIT_BUDGET_S = 1.0  # the longest a submission waits its turn before pacing stops
STALLED_S = 30.0  # no fold for this long while changes wait: the fold is down, not slow
PAUSE_S = 30.0  # no pacing for this long after a submission waited WAIT_BUDGET_S
GAP_MIN_S = 0.05  # the first gap between the group's statements when paced
GAP_MAX_S = 0.25  # the longest: a statement's checklists wait at most about this long


class Group(Protocol):
    """Where single checklists are stored together (`api.services.intake.group`)."""

    def pace(self, gap_s: float) -> None: ...


class Turns:
    """At most `at_once` submissions stored at a time in this process; the rest wait their
    turn, first come first served. Without a target `at_once` stays `most`; with one,
    `step` moves it between one and `most`. With a `group`, single checklists are stored by
    its statements, which `step` spaces `gap_s` apart instead."""

    def __init__(self, most: int, target_s: float = 0.0, group: Group | None = None) -> None:
        self.most = max(1, most)
        self.target_s = target_s
        self.group = group
        self.at_once = self.most
        self.gap_s = 0.0
        self._limiter = anyio.CapacityLimiter(self.most)
        self._waiting: dict[object, float] = {}  # since when, by waiter, oldest first
        self._waited_s = 0.0  # the longest wait of a submission let in since the last step
        self._cut_at = -math.inf
        self._paused_until = -math.inf  # no cut before then: a submission waited too long

    @asynccontextmanager
    async def turn(self, single: bool = False) -> AsyncIterator[None]:
        """Wait for a turn, and hold it for the block. `single`: one checklist, which the
        group paces itself when there is one: no turn to wait for, and the whole block
        (the wait for a worker thread and for its statement, and the statement) counts as
        its wait."""
        me = object()
        self._waiting[me] = time.monotonic()
        if single and self.group is not None:
            try:
                yield
            finally:
                trip = time.monotonic() - self._waiting.pop(me)
                self._waited_s = max(self._waited_s, trip)
            return
        try:
            await self._limiter.acquire()
        finally:
            waited = time.monotonic() - self._waiting.pop(me)
        self._waited_s = max(self._waited_s, waited)
        try:
            yield
        finally:
            self._limiter.release()

    def longest_wait_s(self, now: float) -> float:
        """The longest wait for a turn since the last step: of those let in since, and of
        those still waiting."""
        oldest = next(iter(self._waiting.values()), now)
        return max(self._waited_s, now - oldest)

    def step(self, progress: Progress | None, now: float) -> int:
        """Steer by the fold's `progress` (None: it could not be read) at monotonic time
        `now`; the submissions stored at once from now on."""
        waited = self.longest_wait_s(now)
        self._waited_s = 0.0
        was_paced = self.paced
        why_not = None  # why the intake is not paced now, if it must not be
        if progress is None:
            why_not = "the findings' progress could not be read"
        elif waited >= WAIT_BUDGET_S:
            why_not = f"a submission waited {waited:.1f} s for its turn"
            self._paused_until = now + PAUSE_S
        elif progress.lag_s > STALLED_S and (
            progress.folded_s_ago is None or progress.folded_s_ago > STALLED_S
        ):
            why_not = f"the fold has folded nothing for {STALLED_S:.0f} s"
        if why_not is not None:
            self.at_once, self.gap_s = self.most, 0.0
        elif progress is not None and progress.lag_s > self.target_s:
            if now - self._cut_at >= self.target_s and now >= self._paused_until:
                # By half, or in proportion to how far over the target the lag is.
                share = min(0.5, self.target_s / progress.lag_s)
                self.at_once = max(1, int(self.at_once * share))
                self.gap_s = min(GAP_MAX_S, max(GAP_MIN_S, self.gap_s * 2))
                self._cut_at = now
        elif progress is not None and progress.lag_s <= self.target_s / 2:
            self.at_once = min(self.most, self.at_once + 1)
            self.gap_s = self.gap_s / 2 if self.gap_s / 2 >= GAP_MIN_S else 0.0
        self._limiter.total_tokens = self.at_once
        if self.group is not None:
            self.group.pace(self.gap_s)
        # Warnings, both: uvicorn's logging shows this module's only from WARNING on, and an
        # operator wants to see when the observers are held back and when no longer.
        if not was_paced and self.paced and progress is not None:
            log.warning(
                "findings %.1f s behind the checklists: observers' submissions stored %d at a "
                "time, of up to %d%s",
                progress.lag_s,
                self.at_once,
                self.most,
                f"; single checklists' statements {self.gap_s * 1000:.0f} ms apart"
                if self.group is not None
                else "",
            )
        elif was_paced and not self.paced:
            log.warning("intake no longer paced: %s", why_not or "the findings caught up")
        return self.at_once

    @property
    def paced(self) -> bool:
        """Whether the intake is held back now."""
        return self.at_once < self.most or (self.group is not None and self.gap_s > 0)


async def steer(turns: Turns, read: Callable[[], Progress], every_s: float = STEP_S) -> None:
    """Step `turns` by the fold's progress, read with `read` in a worker thread of its own,
    every `every_s` seconds until cancelled (and then leave the group unpaced)."""
    try:
        await _steer(turns, read, every_s)
    finally:
        if turns.group is not None:
            turns.group.pace(0.0)


async def _steer(turns: Turns, read: Callable[[], Progress], every_s: float) -> None:
    own = anyio.CapacityLimiter(1)  # never waits behind the requests' threads
    failing = False
    while True:
        try:
            # Abandoned if the process stops meanwhile: a read hanging on a database that
            # went away must not hold up the shutdown.
            progress: Progress | None = await anyio.to_thread.run_sync(
                read, limiter=own, abandon_on_cancel=True
            )
            failing = False
        except Exception:
            if not failing:  # once per outage, not twice a second
                log.warning("the findings' progress could not be read: intake not paced")
            failing, progress = True, None
        turns.step(progress, time.monotonic())
        await anyio.sleep(every_s)
