"""Property-based fuzzing of the whole OpenAPI surface with schemathesis: whatever a client
sends, the API never answers 5xx, and every answer has a documented status, content type
and shape.

Each operation is called with a token of the role it is meant for (from the authorisation
matrix) and with the ids of a real mission, observer and checklist, so the fuzzing reaches
past the role gates into validation and the database. Bounded: POLLCHECK_FUZZ_EXAMPLES per
operation (10); POLLCHECK_FUZZ_RANDOM=1 draws new examples instead of the same ones.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.test_authz_matrix import MATRIX, ROLES, World, world  # noqa: F401
from tests.factories import app_with_settings

EXAMPLES = int(os.environ.get("POLLCHECK_FUZZ_EXAMPLES", "10"))
# The same examples on every run (CI stays deterministic); POLLCHECK_FUZZ_RANDOM=1 explores.
DERANDOMIZE = os.environ.get("POLLCHECK_FUZZ_RANDOM") != "1"


# Hundreds of calls a minute with one token: the rate limit has tests of its own.
schema = schemathesis.openapi.from_asgi("/openapi.json", app_with_settings(rate_limit_per_minute=0))


def _role_for(method: str, path: str) -> str | None:
    row = MATRIX.get((method, path))
    if row is None:
        return "admin"
    return next((r for r in ROLES if row.expect[r] < 400), None)


@pytest.fixture(scope="module")
def fuzz_world(world: tuple[TestClient, World]) -> World:  # noqa: F811 (the fixture)
    return world[1]


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=DERANDOMIZE,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_no_input_gets_a_5xx_or_an_undocumented_answer(case: Any, fuzz_world: World) -> None:
    w = fuzz_world
    params = case.path_parameters or {}
    for name, value in (
        ("mission_id", w.mission_id),
        ("observer_id", w.observer_id),
        ("checklist_id", w.checklist_id),
        ("token", w.tokens["observer"]),  # the OpenRosa key path
    ):
        if name in params:
            params[name] = str(value)
    role = _role_for(case.method.upper(), case.path)
    headers = {"Authorization": f"Bearer {w.tokens[role]}"} if role else {}
    case.call_and_validate(
        headers=headers,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
