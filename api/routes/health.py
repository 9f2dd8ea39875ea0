from __future__ import annotations

from typing import Any

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.db import get_engine
from api.errors import Unavailable, error_responses, is_unavailable
from api.migrate import alembic_config

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up (no database call)."""
    return {"status": "ok"}


@router.get("/readyz", responses=error_responses(Unavailable))
def readyz() -> Any:
    """The database answers and its schema is migrated to the newest revision."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
            current = MigrationContext.configure(conn).get_current_revision()
    except Exception as exc:
        if is_unavailable(exc):
            raise Unavailable(
                "the database is not answering", code="database_down", headers={"Retry-After": "5"}
            ) from exc
        raise
    if current != head:
        return JSONResponse(
            {
                "error": "ServiceUnavailable",
                "code": "not_migrated",
                "detail": f"database is at revision {current}, the code expects {head}; "
                "run `pollcheck migrate`",
            },
            status_code=503,
            headers={"Retry-After": "30"},
        )
    return {"status": "ready", "revision": current}
