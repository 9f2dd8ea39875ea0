"""Reading JSON bodies once, with errors that name the position and every bad field."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from fastapi import Request
from pydantic import BaseModel, ValidationError

from api.errors import Invalid

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
