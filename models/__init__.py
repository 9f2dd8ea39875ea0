"""Every table, imported here so that Alembic sees the whole schema."""

from models.base import metadata
from models.checklist import Answer, Checklist, ChecklistChange, ReviewState
from models.credential import Credential, Role
from models.location import Location, LocationKind
from models.mission import Mission, Sampling
from models.observer import Assignment, Observer, Team
from models.station import Station
from models.template import ChecklistTemplate, TemplateStatus

__all__ = [
    "Answer",
    "Assignment",
    "Checklist",
    "ChecklistChange",
    "ChecklistTemplate",
    "Credential",
    "Location",
    "LocationKind",
    "Mission",
    "Observer",
    "ReviewState",
    "Role",
    "Sampling",
    "Station",
    "Team",
    "TemplateStatus",
    "metadata",
]
