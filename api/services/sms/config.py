"""A mission's SMS set-up, kept in `mission.settings["sms"]` and changed like its other
settings (`PATCH /missions/{id}`):

```yaml
sms:
  template: default          # the template SMS checklists use (its newest published version)
  prefix: AST                # optional first word of every message
  region: KZ                 # numbers written without +country code are of this country
  window_minutes: 180        # a later SMS for the same station and phase completes this
  per_minute: 6              # SMS from one number; past it they are logged, not handled
  burst: 12
```

Gateway secrets are not here (every member of a mission reads its settings): they are set
by an admin with `PUT /missions/{id}/sms/gateways/{gateway}` and never shown again.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.errors import Invalid


class SmsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    template: str | None = Field(None, description="Template code; the mission's only one if unset")
    prefix: str | None = Field(None, max_length=16)
    region: str | None = Field(
        None, min_length=2, max_length=2, description="ISO 3166 country for local numbers"
    )
    window_minutes: int = Field(180, ge=1, le=7 * 24 * 60)
    per_minute: float = Field(6, ge=0, description="SMS a minute from one number; 0: no limit")
    burst: int = Field(12, ge=1, description="SMS at once from one number")


def sms_settings(mission_settings: Any, base: tuple[str, ...] = ("settings",)) -> SmsSettings:
    """The mission's SMS settings; a broken block is a 422 naming the bad field (its path
    from `base`: the settings of a request body, or of the stored mission)."""
    raw = mission_settings.get("sms") if isinstance(mission_settings, dict) else None
    try:
        return SmsSettings.model_validate(raw or {})
    except ValidationError as exc:
        raise Invalid(
            "the mission's settings.sms are not valid",
            code="sms_settings_invalid",
            errors=[
                {
                    "path": [*base, "sms", *e["loc"]],
                    "code": e["type"],
                    "message": e["msg"],
                }
                for e in exc.errors()
            ],
        ) from exc
