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

Processes share nothing but the database: each reads the same lag and steers its own
submissions, so any number of them steer alike.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

if TYPE_CHECKING:
    from api.services.findings.fold import Progress

log = logging.getLogger(__name__)

STEP_S = 0.5  # how often a process with a target reads the fold's progress
WAIT_BUDGET_S = 1.0  # the longest a submission waits its turn before pacing stops
STALLED_S = 30.0  # no fold for this long while changes wait: the fold is down, not slow
PAUSE_S = 30.0  # no pacing for this long after a submission waited WAIT_BUDGET_S


class Turns:
    """At most `at_once` submissions stored at a time in this process; the rest wait their
    turn, first come first served. Without a target `at_once` stays `most`; with one,
    `step` moves it between one and `most`."""

    def __init__(self, most: int, target_s: float = 0.0) -> None:
        self.most = max(1, most)
        self.target_s = target_s
        self.at_once = self.most
        self._limiter = anyio.CapacityLimiter(self.most)
        self._waiting: dict[object, float] = {}  # since when, by waiter, oldest first
        self._waited_s = 0.0  # the longest wait of a submission let in since the last step
        self._cut_at = -math.inf
        self._paused_until = -math.inf  # no cut before then: a submission waited too long

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Wait for a turn, and hold it for the block."""
        me = object()
        self._waiting[me] = time.monotonic()
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
        before = self.at_once
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
            self.at_once = self.most
        elif progress is not None and progress.lag_s > self.target_s:
            if now - self._cut_at >= self.target_s and now >= self._paused_until:
                # By half, or in proportion to how far over the target the lag is.
                share = min(0.5, self.target_s / progress.lag_s)
                self.at_once = max(1, int(self.at_once * share))
                self._cut_at = now
        elif progress is not None and progress.lag_s <= self.target_s / 2:
            self.at_once = min(self.most, self.at_once + 1)
        self._limiter.total_tokens = self.at_once
        # Warnings, both: uvicorn's logging shows this module's only from WARNING on, and an
        # operator wants to see when the observers are held back and when no longer.
        if before == self.most and self.at_once < self.most and progress is not None:
            log.warning(
                "findings %.1f s behind the checklists: observers' submissions stored %d at a "
                "time, of up to %d",
                progress.lag_s,
                self.at_once,
                self.most,
            )
        elif before < self.most and self.at_once == self.most:
            log.warning("intake no longer paced: %s", why_not or "the findings caught up")
        return self.at_once


async def steer(turns: Turns, read: Callable[[], Progress], every_s: float = STEP_S) -> None:
    """Step `turns` by the fold's progress, read with `read` in a worker thread of its own,
    every `every_s` seconds until cancelled."""
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
