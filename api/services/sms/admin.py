"""The staff's side of SMS: gateways and their secrets, numbers and their revocation, the
message log."""

from __future__ import annotations

import uuid

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session
from sqlmodel import col

from api.errors import NotFound
from api.services import audit
from api.services.checklists import decode_cursor, encode_cursor
from api.services.sms import numbers
from api.services.sms.config import sms_settings
from models import Mission, Observer, SmsGateway
from models.base import table_of, utcnow
from models.sms import (
    Gateway,
    SmsGatewayPublic,
    SmsMessage,
    SmsMessagePublic,
    SmsNumber,
    SmsNumberPublic,
)

MSG = table_of(SmsMessage)


def webhook_path(mission_id: uuid.UUID, gateway: Gateway) -> str:
    return f"/sms/{gateway.value}/{mission_id}"


def set_gateway(
    session: Session, mission_id: uuid.UUID, gateway: Gateway, secret: str
) -> SmsGatewayPublic:
    row = session.get(SmsGateway, (mission_id, gateway.value))
    if row is None:
        row = SmsGateway(mission_id=mission_id, gateway=gateway.value, secret=secret)
        session.add(row)
    else:
        row.secret, row.created_at = secret, utcnow()
    session.flush()
    # Noted without the body, which holds the secret.
    audit.note(session, "sms gateway set", f"sms/gateways/{gateway.value}")
    return SmsGatewayPublic(
        gateway=gateway, webhook_path=webhook_path(mission_id, gateway), created_at=row.created_at
    )


def list_gateways(session: Session, mission_id: uuid.UUID) -> list[SmsGatewayPublic]:
    rows = session.scalars(select(SmsGateway).where(col(SmsGateway.mission_id) == mission_id)).all()
    return [
        SmsGatewayPublic(
            gateway=Gateway(r.gateway),
            webhook_path=webhook_path(mission_id, Gateway(r.gateway)),
            created_at=r.created_at,
        )
        for r in sorted(rows, key=lambda r: r.gateway)
    ]


def mission(session: Session, mission_id: uuid.UUID) -> Mission:
    mission = session.get(Mission, mission_id)
    if mission is None:
        raise NotFound(f"no mission {mission_id}", code="mission_not_found")
    return mission


def set_number(
    session: Session, mission_id: uuid.UUID, phone: str, revoked: bool
) -> SmsNumberPublic:
    region = sms_settings(mission(session, mission_id).settings).region
    row = numbers.set_revoked(session, mission_id, phone, region, revoked)
    return _number_public(session, row)


def _number_public(session: Session, row: SmsNumber) -> SmsNumberPublic:
    code = (
        session.scalar(select(col(Observer.code)).where(col(Observer.id) == row.observer_id))
        if row.observer_id
        else None
    )
    return SmsNumberPublic(
        e164=row.e164, observer_id=row.observer_id, observer_code=code, revoked_at=row.revoked_at
    )


def list_numbers(session: Session, mission_id: uuid.UUID) -> list[SmsNumberPublic]:
    """Every observer's number as SMS reads it (E.164), and every revoked number; an
    observer whose phone cannot be read is listed without one, so the admin can fix it."""
    region = sms_settings(mission(session, mission_id).settings).region
    revoked = {
        r.e164: r
        for r in session.scalars(
            select(SmsNumber).where(
                col(SmsNumber.mission_id) == mission_id, col(SmsNumber.revoked_at).is_not(None)
            )
        )
    }
    out = []
    observers = session.execute(
        select(col(Observer.id), col(Observer.code), col(Observer.phone))
        .where(col(Observer.mission_id) == mission_id, col(Observer.phone).is_not(None))
        .order_by(col(Observer.code))
    ).all()
    for observer_id, code, phone in observers:
        e164 = numbers.normalise(phone or "", region)
        row = revoked.pop(e164, None) if e164 else None
        out.append(
            SmsNumberPublic(
                e164=e164 or "",
                observer_id=observer_id,
                observer_code=code,
                revoked_at=row.revoked_at if row else None,
            )
        )
    out += [_number_public(session, r) for r in revoked.values()]
    return out


def list_messages(
    session: Session,
    mission_id: uuid.UUID,
    *,
    phone: str | None = None,
    outcome: str | None = None,
    direction: str | None = None,
    station: str | None = None,
    observer_id: uuid.UUID | None = None,
    text: str | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> tuple[list[SmsMessagePublic], str | None]:
    """The log, newest first, a page at a time."""
    q = select(*[MSG.c[f] for f in SmsMessagePublic.model_fields]).where(
        MSG.c.mission_id == mission_id
    )
    if phone:
        region = sms_settings(mission(session, mission_id).settings).region
        q = q.where(MSG.c.phone == (numbers.normalise(phone, region) or phone))
    if outcome:
        q = q.where(MSG.c.outcome == outcome)
    if direction:
        q = q.where(MSG.c.direction == direction)
    if station:
        q = q.where(MSG.c.station == station)
    if observer_id:
        q = q.where(MSG.c.observer_id == observer_id)
    if text:
        q = q.where(MSG.c.text.icontains(text, autoescape=True))
    if cursor:
        at, mid = decode_cursor(cursor)
        q = q.where(or_(MSG.c.created_at < at, and_(MSG.c.created_at == at, MSG.c.id < mid)))
    rows = session.execute(
        q.order_by(MSG.c.created_at.desc(), MSG.c.id.desc()).limit(limit + 1)
    ).all()
    page = [SmsMessagePublic.model_validate(dict(r._mapping)) for r in rows[:limit]]
    next_cursor = encode_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit else None
    return page, next_cursor
