"""`Annotated` dependency aliases: sessions, the caller's credential and role gates."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import Depends, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.orm import Session

from api import ratelimit
from api.body import raw_body
from api.config import Settings, get_settings
from api.db import autocommits, get_engine, new_session, session_scope
from api.errors import Forbidden, Unauthorized
from api.pacing import Group, Turns
from api.security import token_digest
from api.services import audit
from models import Credential, Role
from models.base import table_of, utcnow

# Dependencies that do no I/O are `async def`: FastAPI runs every plain `def` dependency in
# a worker thread, and each such hop costs about 0.3 ms of CPU (measured in process: the
# eight hops of a checklist post were a third of its CPU). Only work that waits on the
# database goes to a thread, and a request makes as few of those trips as it can.


async def _session(read: bool) -> AsyncIterator[Session]:
    session = new_session(read)  # no connection yet: that comes with the first statement
    try:
        yield session
    except BaseException:
        if session.in_transaction():
            await run_in_threadpool(session.rollback)
        raise
    else:
        # A read session on PostgreSQL autocommits (api.db): nothing to commit, and no
        # worker-thread trip for it.
        if session.in_transaction() and not (read and autocommits(session)):
            await run_in_threadpool(session.commit)
    finally:
        session.close()  # nothing left to commit or roll back: returns the connection only


async def get_session() -> AsyncIterator[Session]:
    async for session in _session(read=False):
        yield session


async def get_read_session() -> AsyncIterator[Session]:
    async for session in _session(read=True):
        yield session


_T = TypeVar("_T")
_dashboard_limiter: anyio.CapacityLimiter | None = None
_intake_turns: Turns | None = None  # with `intake_at_once` or `intake_lag_target_s` set


def dashboard_limiter() -> anyio.CapacityLimiter:
    """The worker threads for dashboards' findings requests, apart from the default ones
    that checklist intake uses (`dashboard_threads` of them, one per connection of the
    dashboards' pool, `api.db.get_read_engine`)."""
    global _dashboard_limiter
    if _dashboard_limiter is None:
        _dashboard_limiter = anyio.CapacityLimiter(max(1, get_settings().dashboard_threads))
    return _dashboard_limiter


def forget_limiters() -> None:
    """Make the dashboards' limiter and the intake's turns afresh, from the settings of now
    (at start-up)."""
    global _dashboard_limiter, _intake_turns
    _dashboard_limiter = None
    _intake_turns = None


def intake_turns() -> Turns | None:
    """The turns observers' submissions take in this process (`api.pacing`): at most
    `intake_at_once` at a time, fewer while the findings are further behind than
    `intake_lag_target_s`; None when neither is set."""
    global _intake_turns
    settings = get_settings()
    if _intake_turns is None and (settings.intake_at_once > 0 or settings.intake_lag_target_s > 0):
        most = settings.intake_at_once or settings.db_pool_size
        paces: Group | None = None  # single checklists stored together, paced by their own
        if (
            settings.intake_lag_target_s > 0
            and settings.intake_group > 1
            and get_engine().dialect.name == "postgresql"
        ):
            from api.services.intake import group  # which needs this module first

            paces = group
        _intake_turns = Turns(most, settings.intake_lag_target_s, paces)
    return _intake_turns


async def in_intake_trip(func: Callable[..., _T], *args: Any, single: bool = False) -> _T:
    """`func(*args)` in a worker thread, as a route's trip, for work that stores observers'
    submissions, in its turn (`intake_turns`; `single`: one checklist, which the group of
    new checklists paces itself when it is on). Fewer intake sessions busy at once in
    PostgreSQL leave the findings fold, one session, more of the database's CPU at peak
    (`bench/README.md`: 6 at once on the two-core bench machine kept the findings a third
    closer to the checklists, for 3 to 5 % less intake)."""
    turns = intake_turns()
    if turns is None:
        return await run_in_threadpool(func, *args)
    async with turns.turn(single):
        return await run_in_threadpool(func, *args)


async def current_settings() -> Settings:
    return get_settings()


# scope="function": the transaction commits before the response is sent, so a 2xx
# always means the data is durable.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
ReadSessionDep = Annotated[Session, Depends(get_read_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(current_settings)]

bearer = HTTPBearer(auto_error=False, description="A Pollcheck token: `Authorization: Bearer pc_…`")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: one credential, one mission, one role."""

    credential_id: uuid.UUID
    mission_id: uuid.UUID
    role: Role
    observer_id: uuid.UUID | None


_CRED = table_of(Credential)


# Built once: every request runs it, and a prebuilt statement skips SQLAlchemy's per-call
# expression building and cache-key hashing; run on the connection, it skips the ORM layer.
_BY_DIGEST = select(*[_CRED.c[name] for name in ratelimit.CREDENTIAL_COLUMNS]).where(
    _CRED.c.token_hash == bindparam("digest")
)


def authenticate(
    session: Session, token: str, settings: Settings, checklists: int = 0
) -> Principal:
    """The token's principal, its request counted against the rate limit (429 past it),
    and, for a submitter, `checklists` charged to its allowance (429 past it). A token this
    process has seen before is found, counted and charged in one statement."""
    digest = token_digest(token)
    work = None
    if checklists:
        before = ratelimit.known(digest)
        if before is not None and before.role in SUBMITTERS:
            work = ratelimit.checklist_charge(before, checklists, settings)
    now = utcnow()
    counted = ratelimit.lookup_and_count(digest, settings, now, work=work)
    row: Any  # a credential row, from either statement
    if counted is None:
        row = session.connection().execute(_BY_DIGEST, {"digest": digest}).first()
    else:
        row = counted[0]
    if row is None:
        raise Unauthorized(
            "unknown token", code="invalid_token", headers={"WWW-Authenticate": "Bearer"}
        )
    if row.revoked_at is not None:
        raise Unauthorized(
            "this token was revoked", code="revoked_token", headers={"WWW-Authenticate": "Bearer"}
        )
    interval = timedelta(seconds=settings.token_touch_interval_s)
    if counted is None and (row.last_used_at is None or now - row.last_used_at > interval):
        # Written at most once per interval, outside the request's transaction, so that
        # a busy phone does not turn every request into a write of the same row; on the
        # rate limit's pool, as a time that a crash may lose. (Its own small pool, with
        # overflow connections opened and closed per use, started several PostgreSQL
        # sessions a second under load: every token is touched once a minute.) On
        # PostgreSQL the lookup's own statement wrote it (`ratelimit.lookup_and_count`).
        with ratelimit.bookkeeping_engine().connect() as conn:
            conn.execute(
                update(_CRED)
                .where(_CRED.c.id == row.id)
                .where(or_(_CRED.c.last_used_at.is_(None), _CRED.c.last_used_at < now - interval))
                .values(last_used_at=now)
            )
    if counted is None:
        ratelimit.hit(row.id, settings)
    else:
        ratelimit.check(counted[1], settings)
    principal = Principal(row.id, row.mission_id, Role(row.role), row.observer_id)
    ratelimit.remember_good(digest, principal)
    if work is not None and counted is not None and work.key == ratelimit.checklist_key(principal):
        if not counted[2]:
            raise work.refusal()
    elif checklists and principal.role in SUBMITTERS:
        ratelimit.spend_checklists(principal, checklists, settings)
    return principal


BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def get_principal(
    request: Request, session: SessionDep, settings: SettingsDep, auth: BearerDep
) -> Principal:
    return principal_of(request, session, settings, auth)


def principal_of(
    request: Request,
    session: Session,
    settings: Settings,
    auth: HTTPAuthorizationCredentials | None,
    checklists: int = 0,
) -> Principal:
    """The caller, as `get_principal`; a submitter's `checklists` are charged to its
    allowance on the way (checklist intake)."""
    if auth is None or not auth.credentials:
        ratelimit.bad_token(ratelimit.client_address(request), settings)
        raise Unauthorized(
            "send a token as `Authorization: Bearer …`",
            code="missing_token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        principal = authenticate(session, auth.credentials, settings, checklists)
    except Unauthorized:
        # A bad token counts against its address (429 past the address's allowance).
        ratelimit.bad_token(ratelimit.client_address(request), settings)
        raise
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def in_one_trip(
    request: Request,
    auth: HTTPAuthorizationCredentials | None,
    settings: Settings,
    roles: tuple[Role, ...],
    work: Callable[[Session, Principal], _T],
    intake: bool = False,
) -> Awaitable[_T]:
    """A route's whole database work, the token's check first, in one worker-thread trip
    and one session committed at its end. A route whose principal and session come from
    dependencies makes three trips (the token, the route, the commit) and holds its pooled
    connection between them while it waits for a thread: under a burst of phones the
    threads then wait for those connections, and requests get 503 after the pool's
    timeout instead of being served (tests/test_load.py). `intake`: the work stores
    observers' submissions (`in_intake_trip`)."""

    def trip() -> _T:
        with session_scope() as session:
            principal = check_role(principal_of(request, session, settings, auth), *roles)
            return work(session, principal)

    return in_intake_trip(trip) if intake else run_in_threadpool(trip)


def check_role(principal: Principal, *roles: Role) -> Principal:
    if principal.role not in roles:
        names = ", ".join(sorted(r.value for r in roles))
        raise Forbidden(
            f"this needs the role {names}; the token has {principal.role.value}",
            code="wrong_role",
        )
    return principal


def require(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    async def gate(principal: CurrentPrincipal) -> Principal:
        return check_role(principal, *roles)

    return gate


def check_mission(principal: Principal, mission_id: uuid.UUID, *roles: Role) -> Principal:
    """The token must be of this mission, and of one of these roles."""
    if principal.mission_id != mission_id:
        raise Forbidden("this token belongs to another mission", code="other_mission")
    return check_role(principal, *roles)


def require_in_mission(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A role gate for routes under /missions/{mission_id}: the token must be of that mission."""

    async def mission_gate(
        mission_id: Annotated[uuid.UUID, Path(description="Mission id")],
        principal: CurrentPrincipal,
    ) -> Principal:
        return check_mission(principal, mission_id, *roles)

    return mission_gate


READERS = (Role.admin, Role.analyst, Role.viewer)


AdminOfMission = Annotated[Principal, Depends(require_in_mission(Role.admin))]
StaffOfMission = Annotated[Principal, Depends(require_in_mission(Role.admin, Role.analyst))]
MemberOfMission = Annotated[Principal, Depends(require_in_mission(*Role))]
Admin = Annotated[Principal, Depends(require(Role.admin))]
SUBMITTERS = (Role.observer, Role.analyst)
Submitter = Annotated[Principal, Depends(require(*SUBMITTERS))]
Analyst = Annotated[Principal, Depends(require(Role.analyst))]
Staff = Annotated[Principal, Depends(require(Role.admin, Role.analyst))]
Observer = Annotated[Principal, Depends(require(Role.observer))]
AnyMember = Annotated[Principal, Depends(require(*Role))]


async def audit_writes(
    request: Request, session: SessionDep, body: Annotated[bytes, Depends(raw_body)]
) -> AsyncIterator[None]:
    """Every router's dependency: a write that succeeded is audited in its own transaction."""
    yield  # only reached again when the route returned without raising
    if request.method not in audit.WRITE_METHODS:
        return
    if not audit.needs_request_record(session):
        return
    route = getattr(request.scope.get("route"), "path", request.url.path)
    await run_in_threadpool(record_write, request, session, route, body)


def record_write(request: Request, session: Session, route: str, body: bytes) -> None:
    """The audit row (or the service's notes) of a successful write, in its transaction."""
    principal: Principal | None = getattr(request.state, "principal", None)
    actor = (
        audit.Actor(principal.mission_id, principal.credential_id, principal.role.value)
        if principal
        else audit.Actor(None, None, "anonymous")
    )
    ctype = request.headers.get("content-type", "")
    audit.record_request(session, actor, request.method, route, request.url.path, body, ctype)
