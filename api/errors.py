"""One error base, one error shape: `{"error", "detail", "code", "errors": [...]}`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

log = logging.getLogger("pollcheck")


class FieldError(BaseModel):
    path: list[str | int]
    code: str
    message: str


class ErrorBody(BaseModel):
    error: str
    detail: str
    code: str | None = None
    errors: list[FieldError] | None = None


class AppError(Exception):
    status_code = 400
    error = "BadRequest"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code
        self.errors = errors
        self.headers = headers

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.error, "detail": self.detail}
        if self.code:
            out["code"] = self.code
        if self.errors is not None:
            out["errors"] = self.errors
        return out


class NotFound(AppError):
    status_code = 404
    error = "NotFound"


class Conflict(AppError):
    status_code = 409
    error = "Conflict"


class Forbidden(AppError):
    status_code = 403
    error = "Forbidden"


class Unauthorized(AppError):
    status_code = 401
    error = "Unauthorized"


class Invalid(AppError):
    status_code = 422
    error = "ValidationError"


class TooLarge(AppError):
    status_code = 413
    error = "PayloadTooLarge"


class UnsupportedMediaType(AppError):
    status_code = 415
    error = "UnsupportedMediaType"


class TooManyRequests(AppError):
    status_code = 429
    error = "TooManyRequests"


class Unavailable(AppError):
    status_code = 503
    error = "ServiceUnavailable"


def error_responses(*classes: type[AppError]) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route, so the OpenAPI document shows its errors."""
    out: dict[int | str, dict[str, Any]] = {}
    for cls in classes:
        out[cls.status_code] = {"model": ErrorBody, "description": cls.error}
    return out


# Any authenticated route may also meet its rate limit (429) or a database that is away (503).
COMMON_ERRORS = error_responses(Unauthorized, Forbidden, Invalid, TooManyRequests, Unavailable)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for e in exc.errors():
        loc = list(e.get("loc", ()))
        if e.get("type") == "json_invalid":
            pos = loc[1] if len(loc) > 1 else "?"
            reason = (e.get("ctx") or {}).get("error", "invalid JSON")
            out.append(
                {
                    "path": ["body"],
                    "code": "malformed_json",
                    "message": f"malformed JSON at character {pos}: {reason}",
                }
            )
            continue
        out.append({"path": loc, "code": e.get("type", "invalid"), "message": e.get("msg", "")})
    return out


def is_unavailable(exc: BaseException) -> bool:
    """True when the database could not be reached or dropped the connection."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError | InterfaceError)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(_: Request, exc: AppError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e['path'])}: {e['message']}" for e in errors[:5]
        )
        return JSONResponse(
            {
                "error": "ValidationError",
                "detail": detail,
                "code": "invalid_request",
                "errors": errors,
            },
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        names = {404: "NotFound", 405: "MethodNotAllowed", 401: "Unauthorized", 403: "Forbidden"}
        return JSONResponse(
            {"error": names.get(exc.status_code, "HTTPError"), "detail": str(exc.detail)},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(DBAPIError)
    async def _db_error(_: Request, exc: DBAPIError) -> JSONResponse:
        if not is_unavailable(exc):
            log.exception("database error", exc_info=exc)
            return JSONResponse(
                {"error": "InternalError", "detail": "an unexpected error occurred; it was logged"},
                status_code=500,
            )
        # The database went away or refused: nothing was committed, the client may retry.
        log.warning("database unavailable: %s", exc.__class__.__name__)
        return JSONResponse(
            {
                "error": "ServiceUnavailable",
                "detail": "the database is not answering; nothing was stored, retry shortly",
            },
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(PoolTimeout)
    async def _pool_exhausted(_: Request, exc: PoolTimeout) -> JSONResponse:
        # Every connection of the pool stayed busy for `db_pool_timeout_s`: the process is
        # overloaded. Nothing was stored; a phone retries later.
        log.warning("connection pool exhausted: %s", exc)
        return JSONResponse(
            {
                "error": "ServiceUnavailable",
                "detail": "the server is busy; nothing was stored, retry shortly",
                "code": "overloaded",
            },
            status_code=503,
            headers={"Retry-After": "2"},
        )

    @app.exception_handler(ClientDisconnect)
    async def _gone(_: Request, exc: ClientDisconnect) -> Response:
        # A phone lost its signal mid-request: nothing was stored and nobody is listening.
        # Common on bad networks, so no stack trace; the phone resends the whole request.
        log.info("client disconnected before its request body was complete")
        return Response(status_code=400)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse(
            {"error": "InternalError", "detail": "an unexpected error occurred; it was logged"},
            status_code=500,
        )
