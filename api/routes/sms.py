from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Query, Request, Response

from api.body import parse_json, raw_body
from api.deps import AdminOfMission, SessionDep, SettingsDep, StaffOfMission
from api.errors import COMMON_ERRORS, Forbidden, NotFound, error_responses
from api.services import audit
from api.services.sms import admin, gateways, intake
from api.services.sms.card import SmsCard, build_card
from api.services.sms.config import sms_settings
from api.services.sms.templates import sms_template
from models.sms import (
    Gateway,
    Outcome,
    SmsGatewayPublic,
    SmsGatewaySet,
    SmsMessagesPublic,
    SmsNumberPublic,
    SmsNumberUpdate,
)

router = APIRouter(tags=["sms"])
NOT_FOUND = error_responses(NotFound)
FORM = "application/x-www-form-urlencoded"


@router.post(
    "/sms/{gateway}/{mission_id}",
    responses=COMMON_ERRORS | error_responses(Forbidden, NotFound),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                FORM: {"schema": {"type": "object", "description": "Twilio's form"}},
                "application/json": {"schema": {"type": "object"}},
            },
        }
    },
)
def receive_sms(
    gateway: Gateway,
    mission_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    raw: Annotated[bytes, Depends(raw_body)],
) -> Any:
    """An incoming SMS from a gateway (checked by its signature or shared secret), answered
    with the reply in the gateway's own form; a retry of a message id gets the same reply."""
    # The webhook's own record is the SMS log (every message in and out, with what it
    # became); an audit row per SMS would repeat it, sent by nobody the audit could name.
    audit.recorded_by_operation(session)
    secret = intake.gateway_secret(session, mission_id, gateway)
    if gateway == Gateway.twilio:
        params = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        signature = request.headers.get("x-twilio-signature")
        gateways.check_twilio(secret, str(request.url), params, signature)
        data: Any = params
    else:
        gateways.check_secret(secret, gateways.secret_from_headers(gateway, request.headers))
        data = parse_json(raw)
    handled = intake.handle(
        session, mission_id, gateway, gateways.parse_inbound(gateway, data), settings
    )
    if gateway == Gateway.twilio:
        return Response(gateways.twiml(handled.reply), media_type="application/xml")
    return gateways.json_reply(gateway, handled.to, handled.reply, handled.outcome)


@router.get(
    "/missions/{mission_id}/sms/card",
    response_model=SmsCard,
    responses=COMMON_ERRORS | NOT_FOUND,
)
def sms_card(
    mission_id: uuid.UUID,
    session: SessionDep,
    principal: StaffOfMission,
    template: str | None = None,
    version: Annotated[int | None, Query(ge=1)] = None,
    lang: Annotated[str, Query(min_length=2, max_length=8)] = "en",
) -> Any:
    """The observers' SMS card of a template: question codes, answer codes, examples."""
    config = sms_settings(admin.mission(session, mission_id).settings)
    *_, definition = sms_template(session, mission_id, config, template, version)
    return build_card(definition, lang, config.prefix)


@router.get(
    "/missions/{mission_id}/sms/messages",
    response_model=SmsMessagesPublic,
    responses=COMMON_ERRORS,
)
def sms_messages(
    mission_id: uuid.UUID,
    session: SessionDep,
    _: StaffOfMission,
    phone: str | None = None,
    outcome: Outcome | None = None,
    direction: Annotated[str | None, Query(pattern="^(in|out)$")] = None,
    station: str | None = None,
    observer_id: uuid.UUID | None = None,
    text: Annotated[
        str | None, Query(max_length=160, description="Messages containing this text")
    ] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """Every SMS in and out, newest first, with what it became (staff)."""
    data, next_cursor = admin.list_messages(
        session,
        mission_id,
        phone=phone,
        outcome=outcome.value if outcome else None,
        direction=direction,
        station=station,
        observer_id=observer_id,
        text=text,
        cursor=cursor,
        limit=limit,
    )
    return SmsMessagesPublic(data=data, count=len(data), next_cursor=next_cursor)


@router.get(
    "/missions/{mission_id}/sms/gateways",
    response_model=list[SmsGatewayPublic],
    responses=COMMON_ERRORS,
)
def sms_gateways(mission_id: uuid.UUID, session: SessionDep, _: AdminOfMission) -> Any:
    """The gateways set up for the mission and where each posts (never their secrets)."""
    return admin.list_gateways(session, mission_id)


@router.put(
    "/missions/{mission_id}/sms/gateways/{gateway}",
    response_model=SmsGatewayPublic,
    responses=COMMON_ERRORS,
)
def set_sms_gateway(
    mission_id: uuid.UUID,
    gateway: Gateway,
    body: SmsGatewaySet,
    session: SessionDep,
    _: AdminOfMission,
) -> Any:
    """Set up a gateway, or replace its secret (admin)."""
    return admin.set_gateway(session, mission_id, gateway, body.secret)


@router.get(
    "/missions/{mission_id}/sms/numbers",
    response_model=list[SmsNumberPublic],
    responses=COMMON_ERRORS | NOT_FOUND,
)
def sms_numbers(mission_id: uuid.UUID, session: SessionDep, _: StaffOfMission) -> Any:
    """Observers' numbers as SMS reads them (E.164; empty when unreadable), and revocations."""
    return admin.list_numbers(session, mission_id)


@router.put(
    "/missions/{mission_id}/sms/numbers/{phone}",
    response_model=SmsNumberPublic,
    responses=COMMON_ERRORS | NOT_FOUND,
)
def set_sms_number(
    mission_id: uuid.UUID,
    phone: str,
    body: SmsNumberUpdate,
    session: SessionDep,
    _: AdminOfMission,
) -> Any:
    """Revoke a number (its SMS are then only logged) or restore it (admin)."""
    return admin.set_number(session, mission_id, phone, body.revoked)
