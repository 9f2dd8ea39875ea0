from __future__ import annotations

import logging
from typing import Any

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from api.db import get_engine
from api.errors import Unavailable, error_responses, is_unavailable
from api.migrate import alembic_config
from api.services.findings import fold

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up (no database call)."""
    return {"status": "ok"}


@router.get("/readyz", responses=error_responses(Unavailable))
def readyz() -> Any:
    """The database answers and its schema is migrated to the newest revision. With it,
    for monitoring, how far the findings are behind the changes of every mission
    (`findings_lag_s`, 0 when the fold has looked at all) and when a fold last folded
    (`folded_s_ago`, null before the first): a lag that grows while `folded_s_ago` does
    too means no fold is running. Both are null when they cannot be read."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
            current = MigrationContext.configure(conn).get_current_revision()
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
            try:
                with Session(bind=conn) as session:
                    progress: fold.Progress | None = fold.progress(session)
            except DBAPIError as exc:  # for monitoring only: the node is ready all the same
                if exc.connection_invalidated:  # but not when the database went away
                    raise
                log.warning("the fold's progress could not be read", exc_info=True)
                progress = None
    except Exception as exc:
        if is_unavailable(exc):
            raise Unavailable(
                "the database is not answering", code="database_down", headers={"Retry-After": "5"}
            ) from exc
        raise
    ago = None if progress is None else progress.folded_s_ago
    return {
        "status": "ready",
        "revision": current,
        "findings_lag_s": None if progress is None else round(progress.lag_s, 3),
        "folded_s_ago": None if ago is None else round(ago, 1),
    }
