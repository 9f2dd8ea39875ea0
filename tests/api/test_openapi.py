"""The OpenAPI document describes every route, its body and its errors."""

from __future__ import annotations

from typing import Any

PUBLIC = {"/healthz", "/readyz"}


def _operations(client: Any) -> list[tuple[str, str, dict[str, Any]]]:
    spec = client.get("/openapi.json").json()
    return [
        (path, method, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def test_every_route_is_described(client) -> None:
    undocumented = [
        f"{m.upper()} {p}"
        for p, m, op in _operations(client)
        if not op.get("description") and not op.get("summary")
    ]
    assert undocumented == []


def test_every_write_documents_its_body(client) -> None:
    missing = [
        f"{m.upper()} {p}"
        for p, m, op in _operations(client)
        if m in {"post", "put", "patch"}
        and "requestBody" not in op
        and not p.endswith(("/publish", "/revoke"))
    ]
    assert missing == []


def test_every_protected_route_documents_its_errors(client) -> None:
    missing = []
    for path, method, op in _operations(client):
        if path in PUBLIC or path.startswith("/app"):
            continue
        codes = set(op.get("responses", {}))
        if not {"401", "403"} <= codes:
            missing.append(f"{method.upper()} {path}: {sorted(codes)}")
    assert missing == []


def test_error_schema_is_the_one_shape(client) -> None:
    spec = client.get("/openapi.json").json()
    body = spec["components"]["schemas"]["ErrorBody"]
    assert set(body["properties"]) == {"error", "detail", "code", "errors"}
    assert "ChecklistSubmit" in spec["components"]["schemas"]


def test_every_findings_view_documents_how_far_behind_it_is(client) -> None:
    """A client reading a view from the OpenAPI document learns of `X-Findings-Lag` (and,
    with a replica, `X-Replica-Lag`) on its answers, a 304 included."""
    views = [
        (p, op)
        for p, m, op in _operations(client)
        if m == "get"
        and (p.endswith("/statement") or "/findings" in p)
        and "304" in op["responses"]
    ]
    assert len(views) == 7, [p for p, _ in views]  # six views and the statement
    for path, op in views:
        for status in ("200", "304"):
            headers = op["responses"][status].get("headers", {})
            assert {"X-Findings-Lag", "X-Replica-Lag"} <= set(headers), (path, status)
