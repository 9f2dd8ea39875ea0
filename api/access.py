"""Access control wiring: the review and audit routes, the audit of every write, and the
one place where request bodies are bounded and cleaned."""

from __future__ import annotations

from fastapi import Depends, FastAPI
from starlette.types import ASGIApp

from api.deps import audit_writes
from api.routes import audit, review
from api.sanitize import SanitizeBody

ROUTERS = (review.router, review.queue_router, audit.router)


def install(app: FastAPI) -> None:
    """Call before any router is included: the audit dependency applies to routes added after.
    The review and audit routers (`ROUTERS`) are the caller's to include."""
    app.router.dependencies.append(Depends(audit_writes, scope="function"))


def sanitize(app: ASGIApp) -> ASGIApp:
    return SanitizeBody(app)
