"""Checklist intake, one core for every channel: `rules` (pure), `storage` (the look-ups and
the two writers), `core` (the entry point `intake`). See each module's docstring."""

from api.services.intake.core import Outcome, intake
from api.services.intake.rules import Refusal, Refused

__all__ = ["Outcome", "Refusal", "Refused", "intake"]
