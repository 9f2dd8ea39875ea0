"""What each SMS gateway posts, how its requests prove they are the gateway's, and how a
reply goes back in its response. Plain functions on plain values: the route reads HTTP.

- Twilio posts a form (`MessageSid`, `From`, `Body`) signed in `X-Twilio-Signature`:
  base64 HMAC-SHA1, keyed with the account's auth token, of the URL it posted to followed by
  every parameter's name and value in name order. The reply is TwiML.
- RapidPro / TextIt, from a flow's "Call webhook" action with its default body: JSON with
  `contact.urn` (`tel:+…`) and `input` (`uuid`, `text`); the action sends the shared secret
  as `Authorization: Token <secret>`. The reply is JSON (`reply`), for the flow's next
  "Send message" to use as `@webhook.reply`.
- Generic, for SMS-forwarding apps on an Android phone: JSON `{id, from, text}` with the
  shared secret as `X-Pollcheck-Secret` (or `Authorization: Bearer <secret>`). The reply is
  JSON `{reply: {to, text}}` (null: send nothing).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.errors import Forbidden, Invalid
from models.sms import Gateway


@dataclass(frozen=True, slots=True)
class Inbound:
    message_id: str
    sender: str
    text: str


def twilio_signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    data = url + "".join(k + params[k] for k in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def check_twilio(auth_token: str, url: str, params: dict[str, str], signature: str | None) -> None:
    expected = twilio_signature(auth_token, url, params)
    if not signature or not hmac.compare_digest(expected, signature):
        raise Forbidden(
            "X-Twilio-Signature does not match this URL and body for the mission's auth token",
            code="bad_signature",
        )


def check_secret(secret: str, given: str | None) -> None:
    if not given or not hmac.compare_digest(secret.encode(), given.encode()):
        raise Forbidden("the shared secret is missing or wrong", code="bad_secret")


def secret_from_headers(gateway: Gateway, headers: Any) -> str | None:
    """The shared secret as the gateway sends it."""
    authorization = headers.get("authorization") or ""
    scheme, _, value = authorization.partition(" ")
    if gateway == Gateway.rapidpro and scheme.lower() == "token":
        return value.strip()
    if scheme.lower() == "bearer":
        return value.strip()
    secret: str | None = headers.get("x-pollcheck-secret")
    return secret


class _TwilioForm(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    MessageSid: str = Field(min_length=1, max_length=100)
    From: str = Field(min_length=1, max_length=40)
    Body: str = Field("", max_length=2000)


class _RapidProContact(BaseModel):
    model_config = ConfigDict(extra="ignore")
    urn: str = Field(min_length=1, max_length=60)


class _RapidProInput(BaseModel):
    model_config = ConfigDict(extra="ignore")
    uuid: str = Field(min_length=1, max_length=100)
    text: str = Field("", max_length=2000)


class _RapidPro(BaseModel):
    model_config = ConfigDict(extra="ignore")
    contact: _RapidProContact
    input: _RapidProInput


class _Generic(BaseModel):
    # Forwarding apps add fields of their own (device, sim slot, times): they are ignored.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    id: str = Field(min_length=1, max_length=100, description="The app's id of the message")
    from_: str = Field(alias="from", min_length=1, max_length=40)
    text: str = Field(max_length=2000)


def parse_inbound(gateway: Gateway, data: Any) -> Inbound:
    """The message in a gateway's request (the form's fields or the JSON document)."""
    try:
        if gateway == Gateway.twilio:
            form = _TwilioForm.model_validate(data)
            return Inbound(form.MessageSid, form.From, form.Body)
        if gateway == Gateway.rapidpro:
            rp = _RapidPro.model_validate(data)
            return Inbound(rp.input.uuid, rp.contact.urn, rp.input.text)
        generic = _Generic.model_validate(data)
        return Inbound(generic.id, generic.from_, generic.text)
    except ValidationError as exc:
        raise Invalid(
            f"not a {gateway.value} message",
            code="bad_sms_request",
            errors=[
                {"path": ["body", *e["loc"]], "code": e["type"], "message": e["msg"]}
                for e in exc.errors()
            ],
        ) from exc


def twiml(reply: str | None) -> str:
    """Twilio sends the `<Message>` back to the sender; an empty response sends nothing."""
    body = f"<Message>{escape(reply)}</Message>" if reply else ""
    return f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>'


def json_reply(gateway: Gateway, to: str, reply: str | None, outcome: str) -> dict[str, Any]:
    if gateway == Gateway.rapidpro:
        return {"reply": reply or "", "outcome": outcome}
    return {"reply": {"to": to, "text": reply} if reply else None, "outcome": outcome}
