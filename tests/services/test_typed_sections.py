"""The findings views' sections are models end to end: built as models, stored in the
shared cache as their JSON, read back into the same models by the statement, and served as
the schema the OpenAPI document gives each view."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest
from sqlalchemy import update

from api.services.findings import views
from api.services.findings.scope import Filters
from models import Role, Station
from models.base import table_of
from models.views import (
    AnswerFindings,
    ChoiceFindings,
    FindingsSection,
    FindingsTotals,
    IntegerFindings,
    PhaseFindings,
    StatementSection,
)
from tests.factories import auth, make_observer, make_station, make_token
from tests.findings_factories import FRESH, computed, sections_computed, view
from tests.services.test_statement import _busy_mission

ROUTES = {
    "findings": "findings",
    "coverage": "findings/coverage",
    "incidents": "findings/incidents",
    "critical": "findings/critical",
    "counting": "findings/counting",
    "statement": "statement?format=json",
    "map": "findings/map",
}
# The only objects whose keys the schema leaves open: the filters a view was asked with,
# and a statement sentence's evidence (the questions, counts and figures behind it).
FREE_FORM = {"filters", "evidence"}


def _busy_random_mission(client: Any, session: Any) -> Any:
    """The busy mission, declared a random sample (intervals and a quick count in its
    views), with a team whose station nobody reported from (missing teams and observers)."""
    from sqlalchemy import update

    from models import Mission

    mission = _busy_mission(client, session)
    station = make_station(session, mission.id, "Z-99", region="North")
    make_observer(session, mission.id, [station], code="ZZ-1", team="Team Z")
    session.execute(update(Mission).where(Mission.id == mission.id).values(sampling="random"))
    session.commit()
    return mission


def test_each_section_read_back_from_the_cache_is_the_section_computed(
    client: Any, session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The statement reads its sections from the shared cache: each view's stored JSON,
    read back into its section's model, must be the section itself (times with their zone,
    intervals, ids, missing teams and observers), and the statement drafted from the cached
    sections must be the one drafted from sections computed afresh."""
    mission = _busy_random_mission(client, session)
    for name in views.SECTIONS:
        model = views.MODELS[name]
        section = views.compute(session, mission.id, name, Filters())
        assert isinstance(section, model), name
        served = views.get_view(session, FRESH, mission.id, name, Filters(), None)
        assert model.model_validate_json(served.body) == section, name
    coverage = computed(session, mission.id, "coverage")
    assert coverage["teams_missing"]["data"] and coverage["observers_missing"]["data"]
    assert computed(session, mission.id, "findings")["phases"][0]["questions"][0]["answers"][0][
        "ci95"
    ]
    # Each section is in the cache now (asked above): the statement is assembled from them.
    computed_here = sections_computed(monkeypatch)
    assembled = view(session, mission.id, "statement")
    assert computed_here == []
    monkeypatch.undo()
    afresh = computed(session, mission.id, "statement")
    assert assembled["markdown"] == afresh["markdown"]
    assert assembled["sentences"] == afresh["sentences"]
    assert assembled["annex"] == afresh["annex"] and assembled["annex"]
    statement = StatementSection.model_validate_json(
        views.get_view(session, FRESH, mission.id, "statement", Filters(), None).body
    )
    assert statement == views.compute(session, mission.id, "statement", Filters())


def test_a_view_cached_in_another_shape_is_computed_again(
    client: Any, session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each section's shape is part of its cache key: a view cached by a release whose models
    differ (a node not yet upgraded) is computed again rather than read into this one's."""
    mission = _busy_mission(client, session)
    view(session, mission.id, "coverage")
    computed_here = sections_computed(monkeypatch)
    view(session, mission.id, "coverage")
    assert computed_here == []  # the same data and shape: served from the cache
    monkeypatch.setitem(views.SHAPES, "coverage", "another release's")
    view(session, mission.id, "coverage")
    assert computed_here == ["coverage"]


def test_a_role_naming_a_question_of_another_kind_leaves_its_sentence_out() -> None:
    """The roles come from the newest template that names them; a question's findings
    from the newest that has it. Where a role's code is a question of another kind there,
    its sentence is left out: read as a count of 0, it would have said that secrecy was
    respected, or access free, "in all observations"."""
    from api.checklist_schema import StatementQuestions
    from api.services.findings import statement

    common: dict[str, Any] = {
        "label": "A question",
        "section": "voting",
        "asked": 10,
        "answered": 10,
        "not_applicable": 0,
        "unanswered": 0,
        "stations": 4,
        "critical": 0,
    }
    roles = StatementQuestions(
        observers_admitted="B1",
        observers_restricted="B3",
        secrecy="D4",
        intimidation="D8",
        accessibility=["C1"],
        voting_assessment="H2",
    )
    codes = ["B1", "B3", "D4", "D8", "C1", "H2"]

    def yes_no(code: str) -> ChoiceFindings:
        answers = [
            AnswerFindings(value=v, label=v, count=n, stations=n, share=None, text=None,
                           ci95=None, critical=False)
            for v, n in (("yes", 6), ("no", 4))
        ]  # fmt: skip
        return ChoiceFindings(code=code, type="yes_no", answers=answers, **common)

    def sentences(questions: list[Any]) -> list[str]:
        findings = FindingsSection(
            totals=FindingsTotals(observations=10, stations=4, phases=[]),
            phases=[
                PhaseFindings(phase="voting", observations=10, stations=4, questions=questions)
            ],
            irregularities=[],
        )
        w, qi = statement.Writer("en", 30), statement._index(findings)
        statement._access(w, "h_access", "voting", qi, roles)
        statement._voting(w, qi, roles)
        statement._accessibility(w, qi, roles)
        return [s.key for s in w.sentences]

    assert sentences([yes_no(c) for c in codes]) == [
        "access_restricted",
        "secrecy",
        "intimidation",
        "accessibility",
    ]
    numbers = [IntegerFindings(code=c, type="integer", total=40, **common) for c in codes]
    assert sentences(numbers) == []


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
    # Two stations on the map, so that its stations' schema is checked too.
    session.execute(
        update(table_of(Station))
        .where(table_of(Station).c.code.in_(["N-0", "S-0"]))
        .values(latitude=51.1, longitude=71.4)
    )
    token = make_token(session, mission.id, Role.viewer)
    spec = client.get("/openapi.json").json()
    for name, route in ROUTES.items():
        response = client.get(f"/missions/{mission.id}/{route}", headers=auth(token))
        assert response.status_code == 200, (name, response.text)
        if name == "map":
            assert len(response.json()["stations"]) == 2
        responses = spec["paths"][f"/missions/{{mission_id}}/{route.split('?')[0]}"]["get"]
        ref = responses["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        model = ref.rsplit("/", 1)[1]
        validator = jsonschema_rs.validator_for(_schema(spec, model))
        errors = [f"{e.instance_path}: {e.message}" for e in validator.iter_errors(response.json())]
        assert errors == [], (name, errors[:5])
        open_keys = _open_objects(spec, _schema(spec, model), model, set())
        assert {p.rsplit(".", 1)[-1].rstrip("[]") for p in open_keys} <= FREE_FORM, open_keys
