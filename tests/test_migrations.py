"""Alembic is the only source of the schema: prove the models agree and downgrades work."""

from __future__ import annotations

import importlib.util
import os
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, delete, inspect, select, text, update

import models
from api import migrate
from api.db import get_engine, normalise_url
from api.services.findings import fold
from models import (
    Answer,
    Checklist,
    FindingApplied,
    FindingCountReport,
    FindingCritical,
    FindingObserverPlan,
    FindingVisit,
)
from tests.factories import make_mission, make_observer, make_station
from tests.findings_factories import correct, post, post_count, set_review


def test_migrated_database_matches_the_models(database_url: str) -> None:
    with get_engine().connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), models.metadata
        )
    assert diff == [], f"models and migrations disagree: {diff}"


def test_every_migration_downgrades_and_upgrades_again(database_url: str) -> None:
    if database_url.startswith("sqlite"):
        url = f"sqlite:///{Path(tempfile.mkdtemp()) / 'roundtrip.db'}"
    else:
        # A second database of its own, so that the shared test database stays intact.
        from tests.conftest import _admin_execute, _pg_url

        name = f"pollcheck_roundtrip_{os.getpid()}"
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}"')
        _admin_execute(f'CREATE DATABASE "{name}"')
        url = _pg_url(name)
    try:
        migrate.upgrade(url)
        migrate.downgrade(url, "base")
        engine = create_engine(normalise_url(url))
        with engine.connect() as conn:
            left = set(inspect(conn).get_table_names()) - {"alembic_version"}
        engine.dispose()
        assert left == set(), f"downgrade left tables behind: {left}"
        migrate.upgrade(url)
    finally:
        if not url.startswith("sqlite"):
            _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_answer_kinds_backfilled_by_migration_0006_match_what_intake_stores(
    client: Any, session: Any
) -> None:
    """0006 gave every stored answer a kind from its template; intake gives new answers
    theirs from the question's type. Both must agree, for every kind of question."""
    mission, _ = make_mission(session)
    code = make_station(session, mission.id)
    _, token = make_observer(session, mission.id, [code])
    for phase in ("opening", "voting", "closing"):
        post(client, token, code, phase, {"B6": "A note"})
    stored = {
        (r.checklist_id, r.question_code, r.position): r.kind
        for r in session.execute(select(Answer.checklist_id, Answer.question_code,
                                        Answer.position, Answer.kind))
    }  # fmt: skip
    assert set(stored.values()) == {"closed", "number", "other"}

    session.execute(update(Answer).values(kind="closed"))  # as 0006 found them
    _migration("0006").backfill(session.connection())
    again = {
        (r.checklist_id, r.question_code, r.position): r.kind
        for r in session.execute(select(Answer.checklist_id, Answer.question_code,
                                        Answer.position, Answer.kind))
    }  # fmt: skip
    assert again == stored


def test_critical_marks_backfilled_by_migration_0029_match_what_intake_stores(
    client: Any, session: Any
) -> None:
    """0029 marked the stored checklists with a critical answer; intake marks new ones
    (whichever writer stores them). Both agree, a correction without one included."""
    mission, _ = make_mission(session)
    code = make_station(session, mission.id)
    _, token = make_observer(session, mission.id, [code])
    flagged = post(client, token, code, "voting", {"B1": "no"})
    correct(client, token, flagged, code, "voting", {"B1": "yes"})
    post(client, token, code, "opening")
    post(client, token, code, "closing")
    marks = dict(session.execute(select(Checklist.id, Checklist.critical)).all())
    has_critical = set(session.scalars(select(Answer.checklist_id).where(Answer.critical)))
    assert marks == {cid: cid in has_critical for cid in marks}
    assert sum(marks.values()) == 1 and len(marks) == 4

    session.execute(update(Checklist).values(critical=False))  # as 0029 found them
    _migration("0029").backfill(session.connection())
    assert dict(session.execute(select(Checklist.id, Checklist.critical)).all()) == marks


def test_observer_codes_backfilled_by_migration_0030_match_what_the_fold_writes(
    client: Any, session: Any
) -> None:
    """0030 copied each observer's code into the fold's rows per observer; the fold writes
    it with each row it counts. Both agree."""
    mission, _ = make_mission(session)
    codes = [make_station(session, mission.id, f"S-{i}") for i in range(3)]
    _, token = make_observer(session, mission.id, codes[:2], code="OBS-A")
    make_observer(session, mission.id, codes[1:], code="OBS-B")
    post(client, token, codes[0], "opening")
    session.commit()
    fold.run_once()
    rows = select(FindingObserverPlan.observer_id, FindingObserverPlan.phase,
                  FindingObserverPlan.code)  # fmt: skip
    written = set(session.execute(rows))
    assert {code for _, _, code in written} == {"OBS-A", "OBS-B"}

    session.execute(update(FindingObserverPlan).values(code=""))  # as 0030 found them
    _migration("0030").backfill(session.connection())
    assert set(session.execute(rows)) == written


def test_report_marks_backfilled_by_migration_0031_match_what_the_fold_writes(
    client: Any, session: Any
) -> None:
    """0031 copied each checklist's critical mark into its counting report's row; the fold
    writes it with each report it counts. Both agree: critical or not, failing or not."""
    mission, _ = make_mission(session)
    codes = [make_station(session, mission.id, f"S-{i}") for i in range(4)]
    _, token = make_observer(session, mission.id, codes)
    post_count(client, token, codes[0], {"F2": "yes"})  # critical (voting after closing)
    post_count(client, token, codes[1], {"F2": "yes", "P_V1": 500})  # and failing
    post_count(client, token, codes[2], {"P_V1": 500})  # failing only
    post_count(client, token, codes[3])
    session.commit()
    fold.run_once()
    rows = select(FindingCountReport.checklist_id, FindingCountReport.critical)
    written = dict(session.execute(rows).all())
    marks = dict(session.execute(select(Checklist.id, Checklist.critical)).all())
    assert written == {cid: marks[cid] for cid in written}
    assert len(written) == 4 and sum(written.values()) == 2

    session.execute(update(FindingCountReport).values(critical=False))  # as 0031 found them
    _migration("0031").backfill(session.connection())
    assert dict(session.execute(rows).all()) == written


def _migration(number: str) -> Any:
    """A migration's module, to call its backfill on a running mission's data."""
    path = next(Path("migrations/versions").glob(f"*-{number}_*.py"))
    spec = importlib.util.spec_from_file_location(f"m{number}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _applied_and_visits(session: Any) -> tuple[dict[Any, Any], set[Any]]:
    applied = {
        r.checklist_id: r
        for r in session.execute(select(*FindingApplied.__table__.c))  # type: ignore[attr-defined]
    }
    visits = set(session.execute(select(*FindingVisit.__table__.c)))  # type: ignore[attr-defined]
    return applied, visits


def test_rows_backfilled_by_migration_0014_match_what_the_fold_writes(
    client: Any, session: Any
) -> None:
    """0014 filled the applied rows of a running mission in from their checklists and
    counted the visits; the fold writes both for the checklists it applies. Both agree for
    every phase, a closing count's figures, an incident's answers and a verified report."""
    mission, _ = make_mission(session)
    codes = [make_station(session, mission.id, f"S{i}") for i in range(2)]
    _, token = make_observer(session, mission.id, codes)
    for code in codes:
        for phase in ("opening", "voting", "incident"):
            post(client, token, code, phase)
    counted = post_count(client, token, codes[0])
    post_count(client, token, codes[1], {"P_V1": 401})
    set_review(session, mission.id, counted, "verified")
    fold.run_once()
    session.commit()
    folded = _applied_and_visits(session)
    assert {r.phase for r in folded[0].values()} == {"opening", "voting", "incident", "closing"}
    assert folded[0][uuid.UUID(counted)].review_state == "verified"
    assert folded[0][uuid.UUID(counted)].answers["P_V1"] == 400
    assert any(r.answers and "G1" in r.answers for r in folded[0].values())
    assert len(folded[1]) == 10  # one observer, two stations, four phases and any

    session.execute(delete(FindingVisit))
    session.execute(update(FindingApplied).values(review_state="received", answers=None))
    _migration("0014").backfill(session.connection())
    _migration("0019").backfill(session.connection())  # the visits in any phase
    session.commit()
    assert _applied_and_visits(session) == folded


def test_critical_rows_backfilled_by_migration_0015_match_what_the_fold_writes(
    client: Any, session: Any
) -> None:
    """0015 copied each critical answer's station, phase and time of observation from its
    applied row; the fold writes them for the checklists it applies. Both agree."""
    mission, _ = make_mission(session)
    codes = [make_station(session, mission.id, f"S{i}") for i in range(2)]
    _, token = make_observer(session, mission.id, codes)
    post(client, token, codes[0], "opening", {"B1": "no"})
    post(client, token, codes[1], "voting", {"B1": "no", "D8": "yes"})
    fold.run_once()
    session.commit()
    columns = FindingCritical.__table__.c  # type: ignore[attr-defined]
    folded = set(session.execute(select(*columns)))
    assert {r.phase for r in folded} == {"opening", "voting"} and len(folded) >= 3

    session.execute(
        update(FindingCritical).values(
            station_id=uuid.uuid4(), phase="?", observed_at=datetime(2000, 1, 1, tzinfo=UTC)
        )
    )
    _migration("0015").backfill(session.connection())
    session.commit()
    assert set(session.execute(select(*columns))) == folded


def test_the_planner_is_told_a_checklist_has_about_50_answers(session: Any) -> None:
    """Migration 0021: PostgreSQL's sampled estimate of the distinct checklists among the
    answers fell tenfold short at a million checklists, and the fold then read every
    answer instead of looking a batch's checklists' answers up."""
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("a PostgreSQL statistic")
    assert "n_distinct=-0.02" in _column_setting(session, "answer", "checklist_id", "attoptions")


def test_cached_views_are_compressed_with_lz4(session: Any) -> None:
    """Migration 0032: a cached view's body (hundreds of KB of JSON) is compressed with LZ4,
    about three times as fast to write as pglz, on a server built with it (this one is,
    as PostgreSQL's and Debian's packages are)."""
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("a PostgreSQL storage setting")
    assert _column_setting(session, "finding_cache", "body", "attcompression") == "l"


def _column_setting(session: Any, table: str, column: str, setting: str) -> Any:
    """A column's `setting` as PostgreSQL's catalog holds it (`pg_attribute`)."""
    return session.execute(
        text(
            f"SELECT {setting} FROM pg_attribute"
            " WHERE attrelid = CAST(:table AS regclass) AND attname = :column"
        ),
        {"table": table, "column": column},
    ).scalar_one()
