"""Every table, imported here so that Alembic sees the whole schema."""

from models.attachment import Attachment
from models.audit import AuditEvent
from models.base import metadata
from models.checklist import Answer, Checklist, ChecklistChange, ReviewState
from models.client import ChecklistClient
from models.credential import Credential, Role
from models.finding import (
    FindingApplied,
    FindingArrival,
    FindingCache,
    FindingCount,
    FindingCountReport,
    FindingCritical,
    FindingFold,
    FindingHeld,
    FindingIncident,
    FindingObserverPlan,
    FindingPlanChange,
    FindingRegionPlan,
    FindingState,
    FindingTally,
    FindingTeamPlan,
    FindingVisit,
)
from models.location import Location, LocationKind
from models.mission import Mission, Sampling
from models.observer import Assignment, Observer, Team
from models.ratelimit import RateLimitBucket, RateLimitWindow
from models.review import ReviewEvent
from models.sms import SmsGateway, SmsMessage, SmsNumber
from models.station import Station
from models.template import ChecklistTemplate, TemplateStatus

__all__ = [
    "Answer",
    "Assignment",
    "Attachment",
    "AuditEvent",
    "Checklist",
    "ChecklistChange",
    "ChecklistClient",
    "ChecklistTemplate",
    "Credential",
    "FindingApplied",
    "FindingArrival",
    "FindingCache",
    "FindingCount",
    "FindingCountReport",
    "FindingCritical",
    "FindingFold",
    "FindingHeld",
    "FindingIncident",
    "FindingObserverPlan",
    "FindingPlanChange",
    "FindingRegionPlan",
    "FindingState",
    "FindingTally",
    "FindingTeamPlan",
    "FindingVisit",
    "Location",
    "LocationKind",
    "Mission",
    "Observer",
    "RateLimitBucket",
    "RateLimitWindow",
    "ReviewEvent",
    "ReviewState",
    "Role",
    "Sampling",
    "SmsGateway",
    "SmsMessage",
    "SmsNumber",
    "Station",
    "Team",
    "TemplateStatus",
    "metadata",
]
