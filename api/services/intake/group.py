"""Group commit: observers' new checklists that arrive together are stored by one statement.

Each observer's new checklist used to be its own statement and its own commit. Under a
peak, twenty of them a process were in PostgreSQL at once, each paying a statement's and a
commit's fixed cost, and each a session the scheduler shared the cores with, beside the
findings fold's one. Here the checklists a process receives while one of its statements is
in flight wait for it, and then go in the next statement together (the array of
`storage.write_batch_committed`): PostgreSQL stores them for about half the CPU each, and
the fold shares the database with a few sessions instead of dozens.

Nothing waits for company: a checklist that finds no statement in flight is written at
once, alone, so a quiet day sees no change (unless the intake is paced, below). `at_once`
statements may be in flight per process (the first checklists to arrive write at once, up
to that many), and one statement takes at most `most` checklists.

Every checklist still gets its own answer, and is committed before its answer leaves. A
statement for several is all or nothing. If the database refuses it over a value (or picks
it as a deadlock's victim), each of its checklists is written again alone, each on its own
thread and after the next statement has started, so one bad checklist fails only itself
and holds nobody else up. If the database cannot be had (down, no connection free, a
statement timeout), each gets that error at once (a 503 for the phone to send again).
A checklist the statement leaves out (an unknown or unassigned station, an id already
stored) goes the intake's full path, as when it was alone. Two checklists with one id (a
resend racing itself) never share a statement: the second waits for a later one, and the
database's constraint stores only one of them, as for two requests at once. Statements
insert in the order of the checklists' ids, so two of them in flight at once (another
process's, or `at_once` > 1) that share ids wait for each other in one order, never in a
deadlock.

The waiting is on each request's worker thread (intake runs on one, `deps.in_intake_trip`):
the thread whose checklist opens a statement writes it, then hands the next statement to
the first of the threads still waiting, which gathers the checklists waiting by then.

While the findings are further behind than the intake's pacing target (`api.pacing`),
a writer's statements start at least a gap apart (`pace`, up to a quarter of a second), so
that more go together: fewer, larger statements leave the findings fold more of the
database for the same intake.
"""

from __future__ import annotations

import copy
import math
import threading
import time
import uuid
import weakref
from collections import deque
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from api import errors
from api.services.intake import storage


@dataclass(slots=True, eq=False)
class _Waiting:
    new: storage.NewVersion
    # Held from the start; released when the checklist has its outcome, or when its
    # thread is to write the next statement (`lead`).
    wake: threading.Lock = field(default_factory=threading.Lock)
    stored: bool | None = None
    error: Exception | None = None
    alone: bool = False  # to be written again alone, by its own thread
    lead: bool = False  # handed the writer's slot: to gather and write the next statement

    @property
    def id(self) -> uuid.UUID:
        return self.new.row["id"]

    @property
    def done(self) -> bool:
        return self.stored is not None or self.error is not None or self.alone


class GroupWriter:
    """An engine's observers' new checklists, stored a statement at a time for many."""

    def __init__(self, engine: Engine, most: int, at_once: int) -> None:
        # Weakly: the process's table of writers is keyed by the engine (`writer`).
        self._engine = weakref.ref(engine)
        self._most = max(1, most)
        self._at_once = max(1, at_once)
        self._mutex = threading.Lock()
        self._queue: deque[_Waiting] = deque()  # waiting for a statement, in arrival order
        self._writing = 0  # statements in flight
        # Of those, the ones whose thread has yet to gather its checklists (`_take`): while
        # one has, a statement that ends hands on no further slot, or the queue would be
        # split between two statements that could have been one.
        self._gathering = 0
        self._started = -math.inf  # when the last statement started (monotonic)

    def store(self, new: storage.NewVersion) -> bool:
        """Whether this observer's new checklist was stored; committed before it returns."""
        engine = self._engine()
        assert engine is not None  # the caller's session holds it
        me = _Waiting(new)
        me.wake.acquire()
        with self._mutex:
            if self._writing < self._at_once:
                self._writing += 1
                self._gathering += 1
                me.lead = True  # nobody is waiting: a statement in flight has room
            else:
                self._queue.append(me)
        if not me.lead:
            me.wake.acquire()  # an outcome from another thread's statement, or the slot
        if me.lead:
            batch, gathered = [me], False
            try:
                # Paced (`pace`): statements start at least a gap apart, so that what
                # arrives meanwhile goes together. The start is taken under the mutex, so
                # that two statements in flight (`at_once`) keep the gap between them too.
                with self._mutex:
                    now = time.monotonic()
                    start = self._started = max(now, self._started + _gap_s)
                if start > now:
                    time.sleep(start - now)
                with self._mutex:
                    batch, gathered = self._take(me), True
                self._write(engine, batch)
            finally:  # whatever happens, nobody is left waiting
                with self._mutex:
                    if not gathered:
                        self._gathering -= 1
                    after = self._hand()
                for w in batch:
                    if not w.done:  # the writing thread itself failed
                        w.alone = True
                    if w is not me:
                        w.wake.release()
                if after is not None:
                    after.wake.release()
        if me.alone:
            return storage.write_statement_committed(engine, new)
        if me.error is not None:
            raise me.error
        assert me.stored is not None
        return me.stored

    def _hand(self) -> _Waiting | None:
        """The first checklist waiting, off the queue, to gather and write the next
        statement (under the mutex); None when nothing waits or another statement's
        thread is still to gather them, and then one statement fewer is in flight."""
        if not self._queue or self._gathering:
            self._writing -= 1
            return None
        first = self._queue.popleft()
        first.lead = True
        self._gathering += 1
        return first

    def _take(self, me: _Waiting) -> list[_Waiting]:
        """The next statement's checklists: `me`'s, and those waiting after it (under the
        mutex)."""
        self._gathering -= 1
        batch = [me]
        ids = {me.id}
        later: list[_Waiting] = []
        while self._queue and len(batch) < self._most:
            w = self._queue.popleft()
            if w.id in ids:
                later.append(w)  # a resend racing itself: after the first is stored
            else:
                ids.add(w.id)
                batch.append(w)
        self._queue.extendleft(reversed(later))
        return batch

    def _write(self, engine: Engine, batch: list[_Waiting]) -> None:
        """Give each checklist of `batch` its outcome, or have it written alone."""
        if len(batch) == 1:  # the writing thread's own checklist, written in its turn
            w = batch[0]
            try:
                w.stored = storage.write_statement_committed(engine, w.new)
            except Exception as e:  # noqa: BLE001 - raised again by this same thread
                w.error = e
            return
        try:
            rows = [storage.batch_row(w.new) for w in batch]  # only for a shared statement
            stored = storage.write_batch_committed(engine, rows)
        except Exception as e:  # noqa: BLE001 - answered in each checklist's own thread
            if _unavailable(e):
                # No database to be had: written alone, the last of them would only wait
                # longer for the same error.
                for w in batch:
                    w.error = copy.copy(e)
            else:  # refused over a value, or a deadlock's victim: each alone says which
                for w in batch:
                    w.alone = True
            return
        for w in batch:
            w.stored = w.id in stored


def _unavailable(e: Exception) -> bool:
    """The database could not be had, or took too long: not worth a try per checklist.
    (A deadlock's victim is worth one: the other statement has gone on.)"""
    if isinstance(e, DBAPIError) and str(getattr(e.orig, "sqlstate", "")).startswith("40"):
        return False  # SQLSTATE class 40: transaction rollback (deadlock, serialization)
    return isinstance(e, PoolTimeout) or errors.is_unavailable(e)


_gap_s = 0.0  # the least time between a writer's statements' starts (`pace`)


def pace(gap_s: float) -> None:
    """Start each writer's statements at least `gap_s` apart (0: as soon as one ends)."""
    global _gap_s
    _gap_s = max(0.0, gap_s)


_writers: weakref.WeakKeyDictionary[Engine, GroupWriter] = weakref.WeakKeyDictionary()
_writers_mutex = threading.Lock()


def writer(engine: Engine, most: int, at_once: int) -> GroupWriter:
    """The process's group writer for `engine`."""
    with _writers_mutex:
        found = _writers.get(engine)
        if found is None or (found._most, found._at_once) != (max(1, most), max(1, at_once)):
            found = _writers[engine] = GroupWriter(engine, most, at_once)
        return found
