"""The live event stream: `text/event-stream` for consoles and any HTTP client."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header
from fastapi.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from api import live
from api.config import Settings
from api.db import new_session
from api.deps import READERS, Principal, SettingsDep, require_in_mission
from api.errors import COMMON_ERRORS, Unavailable, error_responses
from api.services import events
from api.services.events import Cursor
from models.base import utcnow

RETRY_MS = 2000
KEEPALIVE = b": keepalive\n\n"

DESCRIPTION = """
Server-sent events telling a console what changed in the mission, so that it reloads only
the panels concerned. Send the token as `Authorization: Bearer …` like every route.

Events (`event:` name, JSON `data:`):

- `hello` on connect: `{"data_version", "server_time"}`;
- `checklist`, a new or corrected checklist: `{"checklist_id", "version", "station_code",
  "phase", "correction", "critical", "received_at"}`;
- `review`, a review decision: `{"checklist_id", "version", "state", "quarantined",
  "comment_present"}` (the checklist's state now);
- `findings`, the findings' data version moved: `{"data_version"}` (the `version` of every
  findings view);
- `reset`: what was missed is too much to replay; reload every panel;
- `unauthorized`: the token was revoked; the stream then ends.

Every event has an `id`; reconnect with `Last-Event-ID: <id>` to get what was missed (up to
500 events, else `reset`), then live events. An event may come twice after a reconnect.
`: keepalive` every 15 s. A stream ends after a while (an hour by default): reconnect with
`Last-Event-ID`.
"""


@asynccontextmanager
async def _stop_hub(_: FastAPI) -> AsyncIterator[None]:
    yield
    await live.stop_hub()


router = APIRouter(tags=["events"], lifespan=_stop_hub)


class EventStream(StreamingResponse):
    """An event stream that frees its place in the hub however it ends."""

    media_type = "text/event-stream"

    def __init__(self, content: AsyncIterator[bytes], on_close: Callable[[], None]) -> None:
        super().__init__(content, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.on_close()


@dataclass(frozen=True, slots=True)
class _Start:
    version: int
    replayed: list[events.Event] | None  # None: too much to replay


def _start(mission_id: uuid.UUID, last_event_id: str | None) -> _Start:
    """The findings version now, and what a resuming client missed (None: too much, or a
    `Last-Event-ID` that is not ours)."""
    cursor = Cursor.parse(last_event_id)
    with new_session() as session:
        version = events.findings_versions(session, {mission_id})[mission_id]
        replayed = events.replay(session, mission_id, cursor.change_id) if cursor else None
        session.rollback()
    return _Start(version, replayed if last_event_id else [])


def _frame(name: str, data: dict[str, Any], at: Cursor) -> bytes:
    return live.frame(name, data, at.change_id, at.version)


async def _frames(
    stream: live.Stream, start: _Start, cursor: Cursor | None, settings: Settings
) -> AsyncIterator[bytes]:
    position = cursor.change_id if cursor else stream.floor
    version = cursor.version if cursor else start.version
    yield f"retry: {RETRY_MS}\n\n".encode()
    hello = {"data_version": start.version, "server_time": utcnow().isoformat()}
    yield _frame("hello", hello, Cursor(position, version))
    replayed: set[int] = set()
    if cursor is not None or start.replayed is None:
        if start.replayed is None:
            position, version = max(position, stream.floor), start.version
            yield _frame("reset", {}, Cursor(position, version))
        else:
            for event in start.replayed:
                assert event.change_id is not None
                replayed.add(event.change_id)
                position = max(position, min(event.change_id, stream.floor))
                yield _frame(event.name, event.data, Cursor(position, version))
            # Every change up to the hub's floor was committed before the replay read.
            position = max(position, stream.floor)
        if version != start.version:
            version = start.version
            yield _frame("findings", {"data_version": version}, Cursor(position, version))
    ends = time.monotonic() + settings.events_stream_max_s
    keepalive = settings.events_keepalive_s
    while (left := ends - time.monotonic()) > 0:
        try:
            batch = await asyncio.wait_for(stream.queue.get(), min(keepalive, left))
        except TimeoutError:
            if left > keepalive:
                yield KEEPALIVE
            continue
        out: list[bytes] = []
        for message in batch:
            if message.name == live.END:
                break
            if message.name == live.UNAUTHORIZED:
                out.append(_frame("unauthorized", {}, Cursor(position, version)))
                break
            if message.version is not None:  # findings
                if message.version == version:
                    continue
            elif message.change_id is not None and (
                message.change_id in replayed or (cursor and message.change_id <= cursor.change_id)
            ):
                continue  # the client has it already
            shared = message.frame and position <= message.floor
            if message.version is None and message.told != version:
                shared = False
            position = max(position, message.floor)
            if message.version is not None:
                version = message.version
            out.append(
                message.frame
                if shared
                else _frame(message.name, message.data, Cursor(position, version))
            )
        else:
            if out:
                yield b"".join(out)
            continue
        if out:
            yield b"".join(out)
        return


# One event as OpenAPI 3.2 describes server-sent events: its fields, `data` being JSON.
EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "event": {
            "type": "string",
            "enum": ["hello", "checklist", "review", "findings", "reset", "unauthorized"],
        },
        "data": {"type": "string", "contentMediaType": "application/json"},
        "id": {"type": "string", "description": "A cursor: send it back as Last-Event-ID"},
        "retry": {"type": "integer", "minimum": 0},
    },
}

ReaderOfMission = Annotated[Principal, Depends(require_in_mission(*READERS))]


# The errors are JSON (the route's own answers are an event stream).
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {
        "description": doc["description"],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }
    for status, doc in (COMMON_ERRORS | error_responses(Unavailable)).items()
}


@router.get(
    "/missions/{mission_id}/events",
    response_class=EventStream,
    status_code=200,
    description=DESCRIPTION,
    responses=ERRORS
    | {
        200: {
            "description": "A stream of server-sent events (see above)",
            "content": {
                "text/event-stream": {
                    "itemSchema": EVENT_SCHEMA,
                    "schema": {"type": "array", "items": EVENT_SCHEMA},
                }
            },
        }
    },
)
async def mission_events(
    mission_id: uuid.UUID,
    principal: ReaderOfMission,
    settings: SettingsDep,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=64,
            description="The id of the last event received: resume after it",
        ),
    ] = None,
) -> Any:
    """What changes in the mission, as it happens (server-sent events; admin, analyst, viewer)."""
    hub = live.hub(settings)
    stream = await hub.open(mission_id, principal.credential_id)  # 503 past the limit
    cursor = Cursor.parse(last_event_id)
    try:
        start = await run_in_threadpool(_start, mission_id, last_event_id)
    except BaseException:
        hub.close(stream)
        raise
    return EventStream(_frames(stream, start, cursor, settings), lambda: hub.close(stream))
