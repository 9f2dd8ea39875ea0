"""The live event stream's machinery in one API process: one hub per process (per event
loop) tails the change outbox for every open stream and fans the events out.

- One look at the database serves every stream of the process: the outbox rows past the
  tail, the findings versions of the missions being watched, and every `events_token_check_s`
  whether the streams' tokens still stand. It runs in a worker thread, never in the loop.
- On PostgreSQL one listening connection per process (`LISTEN`, `api.notify.CHANNEL`)
  wakes the hub when any process committed changes; a look every `SAFETY_POLL_S` catches
  writes that sent no notification. On SQLite the hub looks every `SQLITE_POLL_S`.
  Changes committed in this process wake it directly (`api.notify.on_change`).
- Each stream has a bounded queue: a console that cannot keep up is told `reset` (reload
  every panel) instead of the queue growing. A stream that ends (the client went away, the
  token was revoked, the database failed a look) leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
import weakref
from dataclasses import dataclass, field
from typing import Any

import anyio
import orjson

from api import notify
from api.config import Settings
from api.db import get_engine, new_session
from api.errors import Unavailable
from api.services import events

log = logging.getLogger("pollcheck.live")

MIN_STEP_S = 0.1  # looks closer together than this are merged into one
SQLITE_POLL_S = 0.5
SAFETY_POLL_S = 5.0
QUEUE_MAX = 600  # batches: a minute of looks at the busiest
READY_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Message:
    """What the hub hands a stream: an event, or an order (`reset`, `unauthorized`, `end`).
    `floor`: every change up to it has been handed over (with this message or before).
    `frame`: the event as sent to a stream whose findings version is `told` and whose
    position is not past `floor` (nearly every stream: rendered once for all of them)."""

    name: str
    data: dict[str, Any]
    change_id: int | None = None
    floor: int = 0
    version: int | None = None  # findings events: the new version
    told: int | None = None
    frame: bytes = b""


RESET = "reset"
UNAUTHORIZED = "unauthorized"
END = "end"  # the hub cannot go on (the database failed): the client reconnects


def frame(name: str, data: dict[str, Any], change_id: int, version: int) -> bytes:
    """One event on the wire; its id is the cursor `<change id>.<findings version>`."""
    body = orjson.dumps(data)
    return b"event: %s\ndata: %s\nid: %d.%d\n\n" % (name.encode(), body, change_id, version)


@dataclass(eq=False)
class Stream:
    """One open stream's queue: batches of messages, one batch per look of the hub (at the
    peak of intake a look finds a hundred checklists; a stream takes them in one go)."""

    mission_id: uuid.UUID
    credential_id: uuid.UUID
    floor: int  # the hub's floor when the stream opened
    queue: asyncio.Queue[list[Message]] = field(default_factory=lambda: asyncio.Queue(QUEUE_MAX))

    def put(self, batch: list[Message]) -> None:
        if batch[-1].name in (UNAUTHORIZED, END):
            self._clear()
            batch = batch[-1:]
        elif self.queue.full():
            self._clear()
            batch = [Message(RESET, {}, floor=batch[-1].floor)]
        self.queue.put_nowait(batch)

    def _clear(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()


@dataclass
class _Look:
    events: list[events.Event]
    floor: int
    versions: dict[uuid.UUID, int]
    valid: set[uuid.UUID] | None  # None: credentials not checked this time


class Hub:
    def __init__(self, settings: Settings) -> None:
        self.max_streams = settings.events_max_streams
        self.token_check_s = settings.events_token_check_s
        self.postgres = get_engine().dialect.name == "postgresql"
        # LISTEN holds a session: past PgBouncer, to PostgreSQL itself.
        self.listen_dsn = notify.listen_address(settings)
        self.streams: dict[uuid.UUID, set[Stream]] = {}
        self.count = 0
        self.tail: events.Tail | None = None
        self.versions: dict[uuid.UUID, int] = {}
        self.listening = False
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._looked = asyncio.Event()  # replaced after each look, once set
        self._looks = 0  # looks done
        self._looking = False
        self._poked = False
        self._checked_at = 0.0
        self._limiter = anyio.CapacityLimiter(1)  # its own thread: never behind requests
        self._tasks: list[asyncio.Task[None]] = []
        self._stop_local = notify.on_change(self._poke)

    @property
    def floor(self) -> int:
        return self.tail.floor if self.tail else 0

    # -- streams ---------------------------------------------------------------------------

    async def open(self, mission_id: uuid.UUID, credential_id: uuid.UUID) -> Stream:
        if self.count >= self.max_streams:
            raise Unavailable(
                "this server holds as many event streams as it may; retry shortly",
                code="too_many_streams",
                headers={"Retry-After": "30"},
            )
        self._start()
        stream = Stream(mission_id, credential_id, 0)
        self.streams.setdefault(mission_id, set()).add(stream)
        self.count += 1
        self._wake.set()
        # Wait for a look that began after the stream was added: its floor is current, and
        # the new mission's findings version is known from it on.
        want = self._looks + (2 if self._looking else 1)
        deadline = time.monotonic() + READY_TIMEOUT_S
        try:
            while self._looks < want:
                await asyncio.wait_for(self._looked.wait(), deadline - time.monotonic())
        except TimeoutError:
            self.close(stream)
            raise Unavailable(
                "the database is not answering; retry shortly",
                code="database_down",
                headers={"Retry-After": "5"},
            ) from None
        stream.floor = self.floor
        return stream

    def close(self, stream: Stream) -> None:
        group = self.streams.get(stream.mission_id)
        if group is None or stream not in group:
            return
        group.discard(stream)
        self.count -= 1
        if not group:
            del self.streams[stream.mission_id]
            self.versions.pop(stream.mission_id, None)

    def _all(self) -> list[Stream]:
        return [s for group in self.streams.values() for s in group]

    # -- the loop --------------------------------------------------------------------------

    def _poke(self) -> None:
        """From any thread: look again soon."""
        if not self._poked and self.count:
            self._poked = True
            self._loop.call_soon_threadsafe(self._wake.set)

    def _start(self) -> None:
        if self._tasks:
            return
        self._tasks.append(self._loop.create_task(self._run(), name="pollcheck-events"))
        if self.postgres:
            self._tasks.append(self._loop.create_task(self._listen(), name="pollcheck-listen"))

    async def stop(self) -> None:
        self._stop_local()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        for stream in self._all():
            stream.put([Message(END, {})])

    def _poll_s(self) -> float:
        return SAFETY_POLL_S if self.postgres and self.listening else SQLITE_POLL_S

    async def _run(self) -> None:
        failures = 0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_s())
            self._wake.clear()
            self._poked = False
            if not self.count:
                self.tail = None  # nobody watches: start afresh when someone does
                continue
            missions = set(self.streams)
            credentials = {s.credential_id for s in self._all()}
            self._looking = True
            try:
                look = await anyio.to_thread.run_sync(
                    self._look, missions, credentials, limiter=self._limiter
                )
            except Exception:
                self._looking = False
                failures += 1
                log.warning("the event stream could not read the database", exc_info=True)
                # The consoles reconnect (and see 503 while the database is away) rather
                # than sit on a stream that looks live and is not.
                for stream in self._all():
                    stream.put([Message(END, {})])
                self.tail = None
                await asyncio.sleep(min(5.0, 0.5 * failures))
                continue
            self._looking = False
            failures = 0
            try:
                self._fan_out(look)
            except Exception:  # a bug here must not stop every stream of the process
                log.exception("the event stream could not hand out events")
            self._looks += 1
            looked, self._looked = self._looked, asyncio.Event()
            looked.set()
            await asyncio.sleep(MIN_STEP_S)

    def _look(self, missions: set[uuid.UUID], credentials: set[uuid.UUID]) -> _Look:
        with new_session() as session:
            if self.tail is None:
                self.tail = events.start_tail(session)
                found: list[events.Event] = []
            else:
                found = events.advance(session, self.tail, missions)
            versions = events.findings_versions(session, missions)
            valid = None
            now = time.monotonic()
            if now - self._checked_at >= self.token_check_s:
                valid = events.valid_credentials(session, credentials)
                self._checked_at = now
            session.rollback()
            return _Look(found, self.tail.floor, versions, valid)

    def _fan_out(self, look: _Look) -> None:
        batches: dict[uuid.UUID, list[Message]] = {}
        for event in look.events:
            assert event.change_id is not None
            at = min(event.change_id, look.floor)
            told = self.versions.get(event.mission_id, 0)
            batches.setdefault(event.mission_id, []).append(
                Message(
                    event.name,
                    event.data,
                    event.change_id,
                    at,
                    told=told,
                    frame=frame(event.name, event.data, at, told),
                )
            )
        for mission_id, version in look.versions.items():
            known = self.versions.get(mission_id)
            self.versions[mission_id] = version
            # A mission watched anew is told its version too: a stream that opened while
            # it moved skips it only if it already has it.
            if known != version:
                data = {"data_version": version}
                batches.setdefault(mission_id, []).append(
                    Message(
                        "findings",
                        data,
                        floor=look.floor,
                        version=version,
                        told=known,
                        frame=frame("findings", data, look.floor, version),
                    )
                )
        for mission_id, batch in batches.items():
            for stream in self.streams.get(mission_id, ()):
                stream.put(batch)
        if look.valid is not None:
            for stream in self._all():
                if stream.credential_id not in look.valid:
                    stream.put([Message(UNAUTHORIZED, {})])

    async def _listen(self) -> None:
        """Hold this process's one LISTEN connection; reconnect when it drops."""
        import psycopg

        dsn = self.listen_dsn
        assert dsn is not None  # listening only on PostgreSQL
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    dsn, autocommit=True, connect_timeout=5, application_name="pollcheck listen"
                )
                async with conn:
                    await conn.execute(f"LISTEN {notify.CHANNEL}")
                    self.listening = True
                    self._wake.set()  # whatever was committed while nobody listened
                    async for _ in conn.notifies():
                        if self.count:
                            self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("the event stream's LISTEN connection failed", exc_info=True)
            self.listening = False
            await asyncio.sleep(2.0)


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def hub(settings: Settings) -> Hub:
    """This process's hub (one per event loop: each test client runs a loop of its own)."""
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None:
        found = _hubs[loop] = Hub(settings)
    return found


async def stop_hub() -> None:
    found = _hubs.pop(asyncio.get_running_loop(), None)
    if found is not None:
        await found.stop()
