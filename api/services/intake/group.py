"""Group commit: observers' new checklists that arrive together are stored by one statement.

Each observer's new checklist used to be its own statement and its own commit. Under a
peak, twenty of them a process were in PostgreSQL at once, each paying a statement's and a
commit's fixed cost, and each a session the scheduler shared the cores with, beside the
findings fold's one. Here the checklists a process receives while one of its statements is
in flight wait for it, and then go in the next statement together (the array of
`storage.write_batch_committed`): PostgreSQL stores them for about half the CPU each, and
the fold shares the database with a few sessions instead of dozens.

Nothing waits for company: a checklist that finds no statement in flight is written at
once, alone, so a quiet day sees no change. `at_once` statements may be in flight per
process (the first checklists to arrive write at once, up to that many), and one statement
takes at most `most` checklists.

Every checklist still gets its own answer, and is committed before its answer leaves. A
batch's statement is all or nothing: if it fails (a value the database refuses, a lost
connection), each of its checklists is tried again alone, so one bad checklist fails only
itself. A checklist the statement leaves out (an unknown or unassigned station, an id
already stored) goes the intake's full path, as when it was alone. Two checklists with one
id (a resend racing itself) never share a statement: the second waits for a later one, and
the database's constraint stores only one of them, as for two requests at once.

The waiting is on each request's worker thread (intake runs on one, `deps.in_intake_trip`):
the thread whose checklist opens a statement writes it, then hands the statements still
waiting to the first of their threads.
"""

from __future__ import annotations

import copy
import threading
import uuid
import weakref
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import TimeoutError as PoolTimeout

from api import errors
from api.services.intake import storage


@dataclass(slots=True, eq=False)
class _Waiting:
    row: dict[str, Any]  # `storage.batch_row`
    new: storage.NewVersion
    # Held from the start; released when the checklist was written, or when its thread is
    # to write the statement `batch`.
    wake: threading.Lock = field(default_factory=threading.Lock)
    batch: list[_Waiting] | None = None
    stored: bool | None = None
    error: Exception | None = None

    @property
    def id(self) -> uuid.UUID:
        return self.row["id"]


class GroupWriter:
    """An engine's observers' new checklists, stored a statement at a time for many."""

    def __init__(self, engine: Engine, most: int, at_once: int) -> None:
        self._engine = engine
        self._most = max(1, most)
        self._at_once = max(1, at_once)
        self._mutex = threading.Lock()
        self._queue: deque[_Waiting] = deque()  # waiting for a statement, in arrival order
        self._writing = 0  # statements in flight

    def store(self, new: storage.NewVersion) -> bool:
        """Whether this observer's new checklist was stored; committed before it returns."""
        me = _Waiting(storage.batch_row(new), new)
        me.wake.acquire()
        with self._mutex:
            if self._writing < self._at_once:
                self._writing += 1
                me.batch = [me]  # nobody is waiting: a statement in flight has room
            else:
                self._queue.append(me)
        if me.batch is None:
            me.wake.acquire()  # written by another thread's statement, or handed one to write
        if me.batch is not None:
            try:
                self._write(me.batch)
            finally:  # whatever happens, nobody is left waiting
                with self._mutex:
                    after = self._take()
                for w in me.batch:
                    if w is not me:
                        w.wake.release()
                if after is not None:
                    after[0].batch = after
                    after[0].wake.release()
        if me.error is not None:
            raise me.error
        assert me.stored is not None
        return me.stored

    def _take(self) -> list[_Waiting] | None:
        """The next statement's checklists, off the queue (under the mutex); None when
        nothing waits, and then one statement fewer is in flight."""
        if not self._queue:
            self._writing -= 1
            return None
        batch: list[_Waiting] = []
        ids: set[uuid.UUID] = set()
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

    def _write(self, batch: list[_Waiting]) -> None:
        """Store `batch`, setting each checklist's outcome; never raises."""
        if len(batch) > 1:
            try:
                stored = storage.write_batch_committed(self._engine, [w.row for w in batch])
            except Exception as e:  # noqa: BLE001 - answered in each checklist's own thread
                if _unavailable(e):
                    # No database to be had (down, or every connection busy): trying each
                    # checklist again alone would only make the last of them wait longer.
                    for w in batch:
                        w.error = copy.copy(e)
                    return
                # The database refused the statement over a value: each alone says which.
            else:
                for w in batch:
                    w.stored = w.id in stored
                return
        gone: Exception | None = None
        for w in batch:
            if gone is not None:
                w.error = copy.copy(gone)
                continue
            try:
                w.stored = storage.write_statement_committed(self._engine, w.new)
            except Exception as e:  # noqa: BLE001 - raised again in the checklist's own thread
                w.error = e
                gone = e if _unavailable(e) else None


def _unavailable(e: Exception) -> bool:
    return isinstance(e, PoolTimeout) or errors.is_unavailable(e)


_writers: weakref.WeakKeyDictionary[Engine, GroupWriter] = weakref.WeakKeyDictionary()
_writers_mutex = threading.Lock()


def writer(engine: Engine, most: int, at_once: int) -> GroupWriter:
    """The process's group writer for `engine`."""
    with _writers_mutex:
        found = _writers.get(engine)
        if found is None or (found._most, found._at_once) != (max(1, most), max(1, at_once)):
            found = _writers[engine] = GroupWriter(engine, most, at_once)
        return found
