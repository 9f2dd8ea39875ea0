"""Reading JSON bodies once, with errors that name the position and every bad field; and
which media types each route's body may have."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from fastapi import FastAPI, Request
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

from api.errors import Invalid, UnsupportedMediaType, error_responses

M = TypeVar("M", bound=BaseModel)


async def raw_body(request: Request) -> bytes:
    return await request.body()


def parse_json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Invalid(
            f"malformed JSON at line {exc.lineno}, column {exc.colno} (character {exc.pos}): "
            f"{exc.msg}",
            code="malformed_json",
            errors=[
                {
                    "path": ["body"],
                    "code": "malformed_json",
                    "message": f"line {exc.lineno}, column {exc.colno}: {exc.msg}",
                }
            ],
        ) from exc


def field_errors(
    exc: ValidationError, prefix: tuple[str | int, ...] = ("body",)
) -> list[dict[str, Any]]:
    return [
        {"path": [*prefix, *e["loc"]], "code": e["type"], "message": e["msg"]} for e in exc.errors()
    ]


def validate(model: type[M], data: Any, prefix: tuple[str | int, ...] = ("body",)) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = field_errors(exc, prefix)
        raise Invalid(
            f"{len(errors)} problem(s): "
            + "; ".join(
                f"{'.'.join(str(p) for p in e['path'])}: {e['message']}" for e in errors[:5]
            ),
            code="invalid_request",
            errors=errors,
        ) from exc


def json_body_doc(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a route that reads its JSON body itself."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
            },
        }
    }


# Other names clients give the types a route declares.
_ALIASES = {
    "application/yaml": ("application/x-yaml", "text/yaml", "text/x-yaml"),
}
_ALIAS_NAMES = frozenset(a for names in _ALIASES.values() for a in names)
_ANY_BYTES = "application/octet-stream"  # a route that takes files takes any type


def media_types(route: APIRoute) -> frozenset[str]:
    """The media types a route's body may have, as its OpenAPI description declares them:
    the `requestBody` of a route that reads its body itself, else its body field's type
    (JSON unless the route says otherwise). Empty for a route without a body. Worked out
    once per route (routes are not hashable, so it is kept on the route)."""
    known: frozenset[str] | None = route.__dict__.get("_media_types")
    if known is None:
        known = route.__dict__["_media_types"] = _declared_types(route)
    return known


def _declared_types(route: APIRoute) -> frozenset[str]:
    content = (route.openapi_extra or {}).get("requestBody", {}).get("content")
    if content:
        declared = tuple(content)
    elif route.body_field is not None:
        declared = (getattr(route.body_field.field_info, "media_type", "application/json"),)
    else:
        return frozenset()
    return frozenset(declared + tuple(a for t in declared for a in _ALIASES.get(t, ())))


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    return (length is not None and length != "0") or "transfer-encoding" in request.headers


async def require_media_type(request: Request) -> None:
    """415 for a body of a type the route does not take. The body sanitiser cleans JSON and
    text; a JSON route that read `text/plain` or `application/octet-stream` as JSON let NUL
    bytes, control characters and deep nesting past it (500s, and stored escapes)."""
    if request.method not in ("POST", "PUT", "PATCH") or not _has_body(request):
        return
    accepted = media_types(request.scope["route"])
    if not accepted or _ANY_BYTES in accepted:
        return
    raw = request.headers.get("content-type", "")
    ctype = raw.split(";")[0].strip().lower()
    if ctype in accepted or ("application/json" in accepted and ctype.endswith("+json")):
        return
    expected = " or ".join(sorted(accepted - _ALIAS_NAMES))
    raise UnsupportedMediaType(
        f"this route takes {expected}, not {ctype or 'a body without a Content-Type'}",
        code="unsupported_media_type",
        errors=[
            {
                "path": ["header", "Content-Type"],
                "code": "unsupported_media_type",
                "message": f"send Content-Type: {expected}",
            }
        ],
    )


def declare_media_errors(app: FastAPI) -> None:
    """Show the 415 in the OpenAPI description of every route that takes a body."""
    for route in app.routes:
        if isinstance(route, APIRoute) and media_types(route):
            route.responses = {**error_responses(UnsupportedMediaType), **route.responses}
