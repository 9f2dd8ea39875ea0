"""One incoming SMS, from the gateway's request to the reply: logged once per gateway
message id, its sender identified, rate-limited, parsed, then stored through the checklist
intake like any channel's checklist (`api.services.checklists.submit`).

A checklist may take several SMS (one per section, as the card suggests). Within the
mission's window, the answers of an observer's SMS for the same station and phase add up:
while required answers are missing they are kept (`pending`, and the reply names what is
still needed); once complete they are stored as a checklist; a later SMS in the window
corrects that checklist as a new version (`replaces`), never as a second checklist.

Unknown and revoked numbers are logged and get nothing else: no checklist, no reply (a
reply would cost the mission an SMS to whoever floods it, and tell them the number works).
"""

from __future__ import annotations

import uuid
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlmodel import col

from api.config import Settings
from api.deps import Principal
from api.errors import Invalid, NotFound, TooManyRequests
from api.ratelimit import Allowance, spend
from api.services import checklists as checklist_service
from api.services.sms import numbers
from api.services.sms.card import TEXTS
from api.services.sms.codes import station_key
from api.services.sms.config import SmsSettings, sms_settings
from api.services.sms.gateways import Inbound
from api.services.sms.templates import sms_codes
from models import Mission, Observer, Role, Station
from models.base import table_of, utcnow
from models.checklist import ChecklistSubmit, Phase
from models.sms import Gateway, Outcome, SmsGateway, SmsMessage

MSG = table_of(SmsMessage)
# Checklist ids made from the gateway's message id: the same SMS always makes the same id.
SMS_NAMESPACE = uuid.UUID("5d1e8f0c-6b1f-4f43-9a57-3c3a51c0e5a1")
MAX_REPLY = 300  # characters: two SMS segments

REPLIES: dict[str, dict[str, str]] = {
    "en": {
        "stored": "received {station} {phase}, {n} answers",
        "corrected": "received {station} {phase}, {n} answers (version {v})",
        "pending": "kept {station} {phase}, {n} answers; still to send: {codes}",
        "invalid": "not stored: {errors}",
        "invalid_at": "{station} {phase} not stored: {errors}",
        "unread": ". Not read: {errors}",
    },
    "ru": {
        "stored": "получено {station} {phase}, ответов: {n}",
        "corrected": "получено {station} {phase}, ответов: {n} (версия {v})",
        "pending": "сохранено {station} {phase}, ответов: {n}; ещё нужны: {codes}",
        "invalid": "не сохранено: {errors}",
        "invalid_at": "{station} {phase} не сохранено: {errors}",
        "unread": ". Не принято: {errors}",
    },
}


@dataclass(frozen=True, slots=True)
class Handled:
    reply: str | None  # what goes back to the sender; None: nothing
    outcome: str
    message_id: uuid.UUID
    to: str
    repeated: bool = False  # a gateway's retry of a message already handled


def gateway_secret(session: Session, mission_id: uuid.UUID, gateway: Gateway) -> str:
    secret = session.scalar(
        select(col(SmsGateway.secret)).where(
            col(SmsGateway.mission_id) == mission_id, col(SmsGateway.gateway) == gateway.value
        )
    )
    if secret is None:
        # The same answer for a missing mission: a stranger learns nothing from it.
        raise NotFound(
            f"no {gateway.value} gateway is set up for this mission", code="sms_gateway_not_found"
        )
    return secret


def handle(
    session: Session, mission_id: uuid.UUID, gateway: Gateway, inbound: Inbound, settings: Settings
) -> Handled:
    mission = session.get(Mission, mission_id)
    if mission is None:
        raise NotFound(
            f"no {gateway.value} gateway is set up for this mission", code="sms_gateway_not_found"
        )
    config = sms_settings(mission.settings)
    now = utcnow()
    e164 = numbers.normalise(inbound.sender, config.region)
    repeated = _repeat(session, mission_id, gateway, inbound)
    if repeated is not None:
        return repeated
    # Spent before this transaction writes: the allowance lives on its own connection,
    # which SQLite would keep waiting behind this transaction's write lock.
    limited = False
    if e164 is not None:
        try:
            allowance = Allowance(config.per_minute, config.burst)
            spend(f"sms:{mission_id}:{e164}", 1, allowance, "too many SMS", "sms_limit")
        except TooManyRequests:
            limited = True
    row_id = _log_inbound(session, mission_id, gateway, inbound, e164, now)
    if row_id is None:  # the same message id, logged meanwhile by another request
        found = _repeat(session, mission_id, gateway, inbound)
        assert found is not None
        return found
    log = session.get(SmsMessage, row_id)
    assert log is not None

    def done(outcome: Outcome, reply: str | None = None, **fields: Any) -> Handled:
        log.outcome = outcome.value
        for name, value in fields.items():
            setattr(log, name, value)
        if reply is not None:
            reply = reply if len(reply) <= MAX_REPLY else reply[: MAX_REPLY - 1] + "…"
            session.add(
                SmsMessage(
                    mission_id=mission_id,
                    gateway=gateway.value,
                    direction="out",
                    phone=log.phone,
                    observer_id=log.observer_id,
                    text=reply,
                    outcome=Outcome.reply.value,
                    reply_to_id=log.id,
                    checklist_id=log.checklist_id,
                )
            )
        session.flush()
        return Handled(reply, outcome.value, log.id, log.phone)

    if e164 is None:
        return done(Outcome.unknown_number, errors=[_error("phone", "not a phone number")])
    if limited:
        return done(Outcome.rate_limited)
    sender = numbers.identify(session, mission_id, e164, config.region)
    if sender.revoked:
        return done(Outcome.revoked, observer_id=sender.observer_id)
    if sender.observer_id is None or sender.credential_id is None:
        return done(Outcome.unknown_number)
    log.observer_id = sender.observer_id
    lang = _language(session, sender.observer_id, mission)
    principal = Principal(sender.credential_id, mission_id, Role.observer, sender.observer_id)

    template, version, codes = sms_codes(session, mission_id, config)
    parsed = codes.parse(inbound.text, config.prefix)
    unread = [{"token": e.token, "code": e.code, "message": e.message("en")} for e in parsed.errors]
    unread_text = "; ".join(e.message(lang) for e in parsed.errors)
    if parsed.station is None or parsed.phase is None or not parsed.answers:
        return done(
            Outcome.invalid,
            REPLIES[lang]["invalid"].format(errors=unread_text),
            errors=unread,
            station=parsed.station,
            phase=parsed.phase,
        )
    assert parsed.station is not None and parsed.phase is not None
    station = _station_code(session, mission_id, parsed.station)
    log.station, log.phase, log.answers = station, parsed.phase, parsed.answers
    session.flush()
    answers, replaces = _earlier(session, principal, log, config, now)
    answers.update(parsed.answers)
    zone = zoneinfo.ZoneInfo(mission.timezone)
    body = ChecklistSubmit(
        id=uuid.uuid5(SMS_NAMESPACE, f"{mission_id}:{gateway.value}:{inbound.message_id}"),
        station=station,
        template=template,
        template_version=version,
        phase=Phase(parsed.phase),
        observed_at=now.astimezone(zone),
        replaces=replaces,
        sent_at=None,
        attachments=None,
        answers=answers,
    )
    item = body.model_dump(mode="json", exclude_none=True)
    phase_name = TEXTS.get(lang, TEXTS["en"])["names"][parsed.phase]
    words = {"station": station, "phase": phase_name, "n": len(answers)}

    def answered(outcome: Outcome, reply: str, **fields: Any) -> Handled:
        """The outcome, with the tokens that could not be read named after it: the
        answers that could were kept, so the observer resends only the fix."""
        if unread:
            reply += REPLIES[lang]["unread"].format(errors=unread_text)
            fields["errors"] = unread + (fields.get("errors") or [])
        return done(outcome, reply, **fields)

    try:
        outcome = checklist_service.submit(
            session, principal, body, item, orjson.dumps(item).decode(), settings
        )
    except Invalid as exc:
        problems = exc.errors or [_error("checklist", exc.detail)]
        missing = [
            str(e["path"][-1]) for e in problems if e.get("code") == "required" and e["path"]
        ]
        others = [e for e in problems if e.get("code") != "required"]
        if not others:
            reply = REPLIES[lang]["pending"].format(codes=" ".join(missing), **words)
            return answered(Outcome.pending, reply, errors=problems)
        text = "; ".join(_problem_text(e) for e in others)
        reply = REPLIES[lang]["invalid_at"].format(errors=text, **words)
        return answered(Outcome.invalid, reply, errors=problems)
    public = outcome.checklist
    key = "corrected" if public.version > 1 else "stored"
    reply = REPLIES[lang][key].format(v=public.version, **words)
    return answered(Outcome.stored, reply, checklist_id=public.id)


def _log_inbound(
    session: Session,
    mission_id: uuid.UUID,
    gateway: Gateway,
    inbound: Inbound,
    e164: str | None,
    now: datetime,
) -> uuid.UUID | None:
    """The new log row's id, or None when this message id was logged before (a retry).
    Unique in the database: two processes given the same retry at once log it once."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    row_id = uuid.uuid4()
    stored = session.execute(
        insert(MSG)
        .values(
            id=row_id,
            mission_id=mission_id,
            gateway=gateway.value,
            direction="in",
            message_id=inbound.message_id,
            phone=e164 or inbound.sender[:40],
            text=inbound.text,
            created_at=now,
            outcome=Outcome.invalid.value,
        )
        .on_conflict_do_nothing()
        .returning(MSG.c.id)
    ).first()
    return row_id if stored is not None else None


def _repeat(
    session: Session, mission_id: uuid.UUID, gateway: Gateway, inbound: Inbound
) -> Handled | None:
    """A retry gets the reply the first delivery got, and nothing is done again."""
    first = session.execute(
        select(MSG.c.id, MSG.c.outcome, MSG.c.phone).where(
            MSG.c.mission_id == mission_id,
            MSG.c.gateway == gateway.value,
            MSG.c.message_id == inbound.message_id,
        )
    ).first()
    if first is None:
        return None
    reply = session.scalar(
        select(MSG.c.text).where(MSG.c.reply_to_id == first.id, MSG.c.direction == "out")
    )
    return Handled(reply, first.outcome, first.id, first.phone, repeated=True)


def _earlier(
    session: Session, principal: Principal, log: SmsMessage, config: SmsSettings, now: datetime
) -> tuple[dict[str, Any], uuid.UUID | None]:
    """The answers this SMS adds to, and the checklist version it corrects (if any): the
    latest version of the last checklist an SMS of this observer stored for this station
    and phase within the window, with the answers of their SMS kept since. Incidents are
    never corrected this way: a later incident SMS is the next incident."""
    since = now - timedelta(minutes=config.window_minutes)
    rows = session.execute(
        select(MSG.c.outcome, MSG.c.answers, MSG.c.checklist_id)
        .where(
            MSG.c.mission_id == log.mission_id,
            MSG.c.observer_id == log.observer_id,
            MSG.c.direction == "in",
            MSG.c.station == log.station,
            MSG.c.phase == log.phase,
            MSG.c.created_at >= since,
            MSG.c.id != log.id,
            MSG.c.outcome.in_([Outcome.stored.value, Outcome.pending.value]),
        )
        .order_by(MSG.c.created_at, MSG.c.id)
    ).all()
    answers: dict[str, Any] = {}
    replaces = None
    for row in rows:
        if row.outcome == Outcome.stored.value and log.phase == "incident":
            # Each incident is a checklist of its own: a stored one closes the report,
            # and the next SMS starts the next incident.
            answers, replaces = {}, None
        elif row.outcome == Outcome.stored.value and row.checklist_id is not None:
            chain = checklist_service.versions(session, principal, row.checklist_id)
            latest = next((v for v in chain if v.is_latest), chain[-1])
            detail = checklist_service.get_detail(session, principal, latest.id)
            answers, replaces = dict(detail.answers), latest.id
        else:
            answers.update(row.answers or {})
    return answers, replaces


def _station_code(session: Session, mission_id: uuid.UUID, typed: str) -> str:
    """The station as the mission spells it: exactly, or with case, punctuation and O/0,
    l/1 forgiven when that names one station; else as typed (the intake names it)."""
    st = table_of(Station)
    exact = session.scalar(
        select(st.c.code).where(st.c.mission_id == mission_id, st.c.code == typed)
    )
    if exact is not None:
        return str(exact)
    key = station_key(typed)
    codes = session.scalars(select(st.c.code).where(st.c.mission_id == mission_id)).all()
    matches = [c for c in codes if station_key(c) == key]
    return matches[0] if len(matches) == 1 else typed


def _language(session: Session, observer_id: uuid.UUID, mission: Mission) -> str:
    preferred = session.scalar(
        select(col(Observer.language)).where(col(Observer.id) == observer_id)
    )
    for lang in (preferred, *(mission.languages or [])):
        if lang and lang[:2] in REPLIES:
            return lang[:2]
    return "en"


def _error(where: str, message: str) -> dict[str, Any]:
    return {"path": [where], "code": "invalid", "message": message}


def _problem_text(error: dict[str, Any]) -> str:
    path = [p for p in error.get("path", []) if p not in ("body", "answers")]
    where = str(path[-1]) if path else ""
    message = str(error.get("message", ""))
    return f"{where}: {message}" if where and where not in message else message
