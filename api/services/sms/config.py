"""A mission's SMS set-up, kept in `mission.settings["sms"]` and changed like its other
settings (`PATCH /missions/{id}`):

```yaml
sms:
  template: default          # the template SMS checklists use (its newest published version)
  prefix: AST                # optional first word of every message
  region: KZ                 # numbers written without +country code are of this country
  window_minutes: 180        # a later SMS for the same station and phase completes this
  gateways:                  # one entry per gateway the mission uses; the others answer 404
    twilio: {auth_token: "…"}
    rapidpro: {secret: "…"}
    generic: {secret: "…"}
```
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.errors import Invalid


class GatewaySecret(BaseModel):
    model_config = ConfigDict(extra="forbid")
    secret: str | None = Field(None, min_length=16, description="Shared secret (generic, RapidPro)")
    auth_token: str | None = Field(None, min_length=16, description="Twilio account auth token")


class SmsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    template: str | None = Field(None, description="Template code; the mission's only one if unset")
    prefix: str | None = Field(None, max_length=16)
    region: str | None = Field(
        None, min_length=2, max_length=2, description="ISO 3166 country for local numbers"
    )
    window_minutes: int = Field(180, ge=1, le=7 * 24 * 60)
    gateways: dict[str, GatewaySecret] = Field(default_factory=dict)


def sms_settings(mission_settings: Any) -> SmsSettings:
    """The mission's SMS settings; a broken block is a 422 naming the bad field."""
    raw = mission_settings.get("sms") if isinstance(mission_settings, dict) else None
    try:
        return SmsSettings.model_validate(raw or {})
    except ValidationError as exc:
        raise Invalid(
            "the mission's settings.sms are not valid",
            code="sms_settings_invalid",
            errors=[
                {
                    "path": ["settings", "sms", *e["loc"]],
                    "code": e["type"],
                    "message": e["msg"],
                }
                for e in exc.errors()
            ],
        ) from exc
