"""How many findings views one mission computes afresh at once, per process.

A fresh compute of the draft statement takes seconds at national scale, and dashboards ask
for views the cache does not hold (a new filter, a new time window): 48 such requests at
once took the database from the checklist intake. So a process computes at most
`findings_computes_at_once` views of one mission at a time; a request for a view that
another thread of the process is already computing waits for that result instead of
computing it too; and a request that finds no slot within `findings_compute_wait_s` is
served the last computed view if there is one, else 503 with Retry-After.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from api.config import Settings
from api.errors import Unavailable

_lock = threading.Lock()
_slots: dict[uuid.UUID, threading.BoundedSemaphore] = {}
_in_flight: dict[tuple[uuid.UUID, str], threading.Event] = {}
RETRY_AFTER_S = 2


class Busy(Unavailable):
    """No compute slot came free in time (the caller serves a stale view if it has one)."""

    def __init__(self) -> None:
        super().__init__(
            "the findings for this mission are being computed for other requests; retry shortly",
            code="findings_busy",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )


def _slot(mission_id: uuid.UUID, settings: Settings) -> threading.BoundedSemaphore:
    with _lock:
        slot = _slots.get(mission_id)
        if slot is None:
            slot = _slots[mission_id] = threading.BoundedSemaphore(
                max(1, settings.findings_computes_at_once)
            )
        return slot


@contextmanager
def computing(mission_id: uuid.UUID, key: str, settings: Settings) -> Iterator[bool]:
    """Yields True when this request is to compute the view (it holds one of the mission's
    slots meanwhile); False when another thread of this process has just computed the same
    view, which the caller then reads from the cache. Raises `Busy` after the wait."""
    flight = (mission_id, key)
    with _lock:
        done = _in_flight.get(flight)
        leads = done is None
        if done is None:
            done = _in_flight[flight] = threading.Event()
    if not leads:
        if not done.wait(settings.findings_compute_wait_s):
            raise Busy()
        yield False
        return
    try:
        slot = _slot(mission_id, settings)
        if not slot.acquire(timeout=settings.findings_compute_wait_s):
            raise Busy()
        try:
            yield True
        finally:
            slot.release()
    finally:
        with _lock:
            _in_flight.pop(flight, None)
        done.set()


def forget() -> None:
    """Drop every mission's slots (tests that change findings_computes_at_once)."""
    with _lock:
        _slots.clear()
