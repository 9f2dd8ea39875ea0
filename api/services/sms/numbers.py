"""Observers known by their registered phone numbers.

Numbers are compared in E.164 (`phonenumbers`, Google's libphonenumber): the observer
import keeps a phone as the mission typed it (`8 701 123 45 67`, `+7 (701) 123-45-67`),
a gateway sends it as the network gives it. A number without a country code is read in the
mission's SMS region (`settings.sms.region`).

Each process keeps a mission's directory (E.164 -> observers) for `DIRECTORY_TTL_S`, built
from the observers' phones in one query: an unknown number, even a flood of them, then
costs a dictionary look-up, not a scan. A number shared by two observers names neither.
`sms_number` holds what must persist per number: its revocation, and the credential the
observer's SMS checklists are stored under (made on first use; its token is never known).
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from dataclasses import dataclass

import phonenumbers
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlmodel import col

from api.errors import Invalid
from api.security import token_digest
from models import Credential, Observer, Role, SmsNumber
from models.base import utcnow

DIRECTORY_TTL_S = 10.0
_directories: dict[tuple[uuid.UUID, str | None], tuple[float, dict[str, list[uuid.UUID]]]] = {}
_lock = threading.Lock()


def normalise(raw: str, region: str | None) -> str | None:
    """The number in E.164, or None when it cannot be a phone number."""
    text = raw.strip()
    if text.lower().startswith("tel:"):
        text = text[4:]
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, region.upper() if region else None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_or_invalid(raw: str, region: str | None) -> str:
    found = normalise(raw, region)
    if found is None:
        raise Invalid(
            f"{raw!r} is not a phone number"
            + ("" if region else " (without a country code, set settings.sms.region)"),
            code="bad_phone",
            errors=[{"path": ["path", "phone"], "code": "bad_phone", "message": "not a number"}],
        )
    return found


def directory(
    session: Session, mission_id: uuid.UUID, region: str | None
) -> dict[str, list[uuid.UUID]]:
    """E.164 -> the observers registered with it, at most DIRECTORY_TTL_S old."""
    now = time.monotonic()
    key = (mission_id, region)
    cached = _directories.get(key)
    if cached is not None and cached[0] > now:
        return cached[1]
    found: dict[str, list[uuid.UUID]] = {}
    rows = session.execute(
        select(col(Observer.id), col(Observer.phone)).where(
            col(Observer.mission_id) == mission_id, col(Observer.phone).is_not(None)
        )
    ).all()
    for observer_id, phone in rows:
        e164 = normalise(phone or "", region)
        if e164 is not None:
            found.setdefault(e164, []).append(observer_id)
    with _lock:
        if len(_directories) > 1000:
            _directories.clear()
        _directories[key] = (now + DIRECTORY_TTL_S, found)
    return found


def forget_directories() -> None:
    """Read observers' phones afresh on next use (after an import; tests)."""
    with _lock:
        _directories.clear()


@dataclass(frozen=True, slots=True)
class Sender:
    e164: str
    observer_id: uuid.UUID | None  # None: no observer (or several) has this number
    credential_id: uuid.UUID | None
    revoked: bool


def identify(session: Session, mission_id: uuid.UUID, e164: str, region: str | None) -> Sender:
    """Who sent from this number: its observer (with the SMS credential, made on first
    use), or nobody; a revoked number is named so whatever observer it belongs to."""
    row = _number(session, mission_id, e164)
    if row is not None and row.revoked_at is not None:
        return Sender(e164, row.observer_id, None, revoked=True)
    owners = directory(session, mission_id, region).get(e164, [])
    if len(owners) != 1:
        return Sender(e164, None, None, revoked=False)
    observer_id = owners[0]
    if row is None:
        row = _new_number(session, mission_id, e164, observer_id)
        if row.revoked_at is not None:  # revoked meanwhile
            return Sender(e164, row.observer_id, None, revoked=True)
    if row.observer_id != observer_id or row.credential_id is None:
        # A new number, or one handed to another observer: their own credential.
        cred = Credential(
            mission_id=mission_id,
            role=Role.observer,
            observer_id=observer_id,
            label=f"sms {e164}",
            token_hash=token_digest(secrets.token_urlsafe(32)),
            token_prefix="sms",
        )
        session.add(cred)
        row.observer_id = observer_id
        row.credential_id = cred.id
        session.flush()
    return Sender(e164, observer_id, row.credential_id, revoked=False)


def _number(session: Session, mission_id: uuid.UUID, e164: str) -> SmsNumber | None:
    return session.scalar(
        select(SmsNumber).where(
            col(SmsNumber.mission_id) == mission_id, col(SmsNumber.e164) == e164
        )
    )


def _new_number(
    session: Session, mission_id: uuid.UUID, e164: str, observer_id: uuid.UUID | None
) -> SmsNumber:
    """The number's row, made now, or the one another request made at the same moment
    (the first SMS of a number delivered twice at once)."""
    try:
        with session.begin_nested():
            row = SmsNumber(mission_id=mission_id, e164=e164, observer_id=observer_id)
            session.add(row)
            session.flush()
        return row
    except IntegrityError:
        found = _number(session, mission_id, e164)
        assert found is not None
        return found


def set_revoked(
    session: Session, mission_id: uuid.UUID, raw: str, region: str | None, revoked: bool
) -> SmsNumber:
    """Revoke a number (its SMS are then logged and nothing else) or take that back."""
    e164 = normalise_or_invalid(raw, region)
    row = _number(session, mission_id, e164)
    if row is None:
        owners = directory(session, mission_id, region).get(e164, [])
        row = _new_number(session, mission_id, e164, owners[0] if len(owners) == 1 else None)
    row.revoked_at = (row.revoked_at or utcnow()) if revoked else None
    session.flush()
    return row
