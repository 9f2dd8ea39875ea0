"""Issuing, listing and revoking tokens."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlmodel import col

from api.config import get_settings
from api.errors import Invalid, NotFound
from api.security import new_token, token_digest
from models import Credential, Observer, Role
from models.base import table_of, utcnow
from models.credential import CredentialIssued, CredentialPublic, ObserverTokenIssued

OBS = table_of(Observer)


def issue(
    session: Session,
    mission_id: uuid.UUID,
    role: Role,
    label: str,
    observer_id: uuid.UUID | None = None,
    created_by_id: uuid.UUID | None = None,
) -> CredentialIssued:
    """Make a token; the plain token exists only in the returned value."""
    if role == Role.observer:
        if observer_id is None:
            raise Invalid(
                "an observer token needs observer_id",
                code="observer_required",
                errors=[
                    {
                        "path": ["observer_id"],
                        "code": "missing",
                        "message": "required for the observer role",
                    }
                ],
            )
        observer = session.get(Observer, observer_id)
        if observer is None or observer.mission_id != mission_id:
            raise NotFound(f"no observer {observer_id} in this mission", code="observer_not_found")
    elif observer_id is not None:
        raise Invalid(
            "only observer tokens name an observer",
            code="observer_not_allowed",
            errors=[
                {
                    "path": ["observer_id"],
                    "code": "not_allowed",
                    "message": f"a {role.value} token is not an observer's",
                }
            ],
        )
    token = new_token(get_settings().secret_key)
    cred = Credential(
        mission_id=mission_id,
        role=role,
        observer_id=observer_id,
        label=label,
        token_hash=token_digest(token),
        token_prefix=token[:10],
        created_by_id=created_by_id,
    )
    session.add(cred)
    session.flush()
    return CredentialIssued(**CredentialPublic.model_validate(cred).model_dump(), token=token)


def list_for_mission(session: Session, mission_id: uuid.UUID) -> list[Credential]:
    return list(
        session.scalars(
            select(Credential)
            .where(col(Credential.mission_id) == mission_id)
            .order_by(col(Credential.created_at))
        )
    )


def revoke(session: Session, mission_id: uuid.UUID, credential_id: uuid.UUID) -> Credential:
    cred = session.get(Credential, credential_id)
    if cred is None or cred.mission_id != mission_id:
        raise NotFound(
            f"no credential {credential_id} in this mission", code="credential_not_found"
        )
    if cred.revoked_at is None:
        cred.revoked_at = utcnow()
        session.flush()
    return cred


def issue_for_observers(
    session: Session,
    mission_id: uuid.UUID,
    codes: list[str] | None,
    label: str = "phone",
    created_by_id: uuid.UUID | None = None,
    revoke_previous: bool = False,
) -> list[ObserverTokenIssued]:
    """A new token for each observer named by code (every observer when None), in code
    order. An unknown code issues nothing and is named in the error with its place. With
    `revoke_previous`, each observer's earlier tokens stop working (a card lost or
    reprinted)."""
    q = select(OBS.c.id, OBS.c.code, OBS.c.name).where(OBS.c.mission_id == mission_id)
    if codes is not None:
        q = q.where(OBS.c.code.in_(codes))
    observers = session.execute(q.order_by(OBS.c.code)).all()
    known = {o.code for o in observers}
    unknown = [(i, c) for i, c in enumerate(codes or []) if c not in known]
    if unknown:
        raise NotFound(
            f"no observer {', '.join(c for _, c in unknown)} in this mission; nothing issued",
            code="observer_not_found",
            errors=[
                {"path": ["body", "observers", i], "code": "unknown", "message": f"no {c!r}"}
                for i, c in unknown
            ],
        )
    issued = []
    for o in observers:
        revoked = revoke_observer_tokens(session, mission_id, o.id) if revoke_previous else 0
        token = issue(session, mission_id, Role.observer, f"{label} {o.code}", o.id, created_by_id)
        issued.append(
            ObserverTokenIssued(
                **token.model_dump(),
                observer_code=o.code,
                observer_name=o.name,
                revoked_previous=revoked,
            )
        )
    return issued


def revoke_observer_tokens(session: Session, mission_id: uuid.UUID, observer_id: uuid.UUID) -> int:
    """Revoke every token of one observer still in force; returns how many."""
    now = utcnow()
    creds = session.scalars(
        select(Credential).where(
            col(Credential.mission_id) == mission_id,
            col(Credential.observer_id) == observer_id,
            col(Credential.revoked_at).is_(None),
        )
    ).all()
    for cred in creds:
        cred.revoked_at = now
    session.flush()
    return len(creds)
