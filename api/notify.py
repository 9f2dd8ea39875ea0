"""Tells every API process that changes were committed, so that their live event streams
look at the change outbox at once (`api.live`).

On PostgreSQL the signal is a NOTIFY on one channel, which each process's one listening
connection hears. It is sent after the writing transaction has committed (so only
committed changes are announced), from a thread of the writing process, at most once per
`MIN_INTERVAL_S` however many transactions committed meanwhile: a NOTIFY inside each
intake transaction makes PostgreSQL serialise those transactions' commits on its notify
queue lock, and on the development machine 8 concurrent committers went from about 1,100
to about 330 commits a second with a trigger that notified in each (`bench/consoles.py`
measures it again). The streams of the writing process itself are woken directly. A
process that dies between its commit and its notify leaves the change to the listeners'
periodic look (`api.live.SAFETY_POLL_S`). On SQLite there is no one to notify: other
processes poll.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import text

from api.config import Settings

log = logging.getLogger("pollcheck.notify")

CHANNEL = "pollcheck_changes"
MIN_INTERVAL_S = 0.1

_wanted = threading.Event()
_lock = threading.Lock()
_thread: threading.Thread | None = None
_local: list[Callable[[], None]] = []


def on_change(callback: Callable[[], None]) -> Callable[[], None]:
    """Call `callback` (from any thread; it must not block) whenever this process commits
    changes; returns the function that stops it."""
    _local.append(callback)

    def stop() -> None:
        if callback in _local:
            _local.remove(callback)

    return stop


def poke() -> None:
    """Changes were committed in this process: wake its streams, notify the others."""
    for callback in tuple(_local):
        try:
            callback()
        except Exception:  # never the writer's problem (a hub whose loop has closed)
            log.debug("a change callback failed", exc_info=True)
    if _wanted.is_set():
        return
    _wanted.set()
    global _thread
    if _thread is None:
        with _lock:
            if _thread is None:
                _thread = threading.Thread(target=_run, name="pollcheck-notify", daemon=True)
                _thread.start()


def send() -> None:
    """One NOTIFY on its own (autocommit) connection; nothing on SQLite."""
    from api.ratelimit import bookkeeping_engine

    engine = bookkeeping_engine()
    if engine.dialect.name != "postgresql":
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


def _run() -> None:
    while True:
        _wanted.wait()
        _wanted.clear()
        try:
            send()
        except Exception:  # the listeners' periodic look still finds the changes
            log.warning("could not notify the other processes of a change", exc_info=True)
        time.sleep(MIN_INTERVAL_S)


def listen_address(settings: Settings) -> str | None:
    """Where a process LISTENs for the announcements: PostgreSQL itself (past PgBouncer,
    which cannot hold a LISTEN: `direct_database_url`), as a libpq address; None on
    SQLite, where nothing is announced."""
    from sqlalchemy.engine import make_url

    from api.db import get_engine

    engine = get_engine()
    if engine.dialect.name != "postgresql":
        return None
    direct = settings.direct_database_url or engine.url
    return make_url(direct).set(drivername="postgresql").render_as_string(hide_password=False)
