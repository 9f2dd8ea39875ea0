"""The findings views' sections are models end to end: built as models, stored in the
shared cache as their JSON, read back into the same models by the statement, and served as
the schema the OpenAPI document gives each view."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest

from api.services.findings import views
from api.services.findings.scope import Filters
from models import Role
from tests.factories import auth, make_token
from tests.findings_factories import FRESH, computed, sections_computed, view
from tests.services.test_statement import _busy_mission

ROUTES = {
    "findings": "findings",
    "coverage": "findings/coverage",
    "incidents": "findings/incidents",
    "critical": "findings/critical",
    "counting": "findings/counting",
    "statement": "statement?format=json",
}
# The only objects whose keys the schema leaves open: the filters a view was asked with,
# and a statement sentence's evidence (the questions, counts and figures behind it).
FREE_FORM = {"filters", "evidence"}


def test_each_section_read_back_from_the_cache_is_the_section_computed(
    client: Any, session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The statement reads its sections from the shared cache: each view's stored JSON,
    read back into its section's model, must be the section itself (times with their zone,
    intervals, ids), and the statement drafted from the cached sections must be the one
    drafted from sections computed afresh."""
    mission = _busy_mission(client, session)
    for name, model in views.MODELS.items():
        section = views.compute(session, mission.id, name, Filters())
        assert isinstance(section, model), name
        served = views.get_view(session, FRESH, mission.id, name, Filters(), None)
        assert model.model_validate_json(served.body) == section, name
    # Each section is in the cache now (asked above): the statement is assembled from them.
    computed_here = sections_computed(monkeypatch)
    assembled = view(session, mission.id, "statement")
    assert computed_here == []
    monkeypatch.undo()
    afresh = computed(session, mission.id, "statement")
    assert assembled["markdown"] == afresh["markdown"]
    assert assembled["sentences"] == afresh["sentences"]
    assert assembled["annex"] == afresh["annex"] and assembled["annex"]


def _schema(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}


def _open_objects(spec: dict[str, Any], schema: dict[str, Any], path: str, seen: set[str]) -> list:
    """Every place in a schema where an object's keys are left open (dict[str, Any])."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        if name in seen:
            return []
        seen.add(name)
        return _open_objects(spec, spec["components"]["schemas"][name], path, seen)
    found = []
    if schema.get("type") == "object" and not schema.get("properties"):
        extra = schema.get("additionalProperties", True)
        if extra is True or extra == {}:
            found.append(path)
    for key, sub in schema.get("properties", {}).items():
        found += _open_objects(spec, sub, f"{path}.{key}", seen)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            found += _open_objects(spec, schema[key], f"{path}[]", seen)
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        for sub in schema.get(key, []):
            found += _open_objects(spec, sub, path, seen)
    return found


def test_every_view_served_is_the_schema_the_api_documents(client: Any, session: Any) -> None:
    """Each view of a busy mission (every kind of question, counting, incidents, critical
    answers, missing teams) validates against its schema in /openapi.json, and no part of
    a section is documented as an object of any keys."""
    mission = _busy_mission(client, session)
    token = make_token(session, mission.id, Role.viewer)
    spec = client.get("/openapi.json").json()
    for name, route in ROUTES.items():
        response = client.get(f"/missions/{mission.id}/{route}", headers=auth(token))
        assert response.status_code == 200, (name, response.text)
        responses = spec["paths"][f"/missions/{{mission_id}}/{route.split('?')[0]}"]["get"]
        ref = responses["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        model = ref.rsplit("/", 1)[1]
        validator = jsonschema_rs.validator_for(_schema(spec, model))
        errors = [f"{e.instance_path}: {e.message}" for e in validator.iter_errors(response.json())]
        assert errors == [], (name, errors[:5])
        open_keys = _open_objects(spec, _schema(spec, model), model, set())
        assert {p.rsplit(".", 1)[-1].rstrip("[]") for p in open_keys} <= FREE_FORM, open_keys
