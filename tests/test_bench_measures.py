"""The bench's arithmetic: how far behind the findings were, and when they caught up.

(`make bench` measures speed; these only check that it measures the right thing.)
"""

from __future__ import annotations

import time

import pytest

from bench import run


def _samples(findings: list[tuple[float, int]], truth: list[tuple[float, int]]) -> run.Samples:
    samples = run.Samples()
    samples.findings = [(t, 10.0, counted) for t, counted in findings]
    samples.truth = list(truth)
    return samples


def test_staleness_is_the_longest_wait_of_a_stored_checklist_within_the_window() -> None:
    # The database held 100 at t=0, 150 at t=1, 200 at t=2. Findings counted 100 until
    # t=3.5 (so the 101st checklist, stored at t=1, waited 2.5 s), then all 200 at t=4.
    truth = [(0.0, 100), (1.0, 150), (2.0, 200), (3.0, 200), (4.0, 200)]
    findings = [(0.5, 100), (2.5, 100), (3.5, 100), (4.0, 200)]
    samples = _samples(findings, truth)
    assert run.staleness(samples, 0.0, 10.0) == pytest.approx(2.5)
    assert run.staleness(samples, 0.0, 3.0) == pytest.approx(1.5)  # reads up to t=3 only
    assert run.staleness(samples, 3.8, 10.0) == 0.0  # caught up: nothing waiting


def test_the_server_s_own_lag_is_the_largest_it_said_within_the_window() -> None:
    samples = run.Samples()
    assert run.said_lag(samples, 0.0, 10.0) is None  # a server that says none
    samples.said_lag = [(0.5, 0.2), (2.0, 3.456), (3.0, 1.0), (9.0, 7.0)]
    assert run.said_lag(samples, 0.0, 5.0) == 3.46
    assert run.said_lag(samples, 2.5, 10.0) == 7.0


def test_a_run_names_the_settings_it_was_given_but_not_the_bench_s_own(monkeypatch) -> None:
    monkeypatch.setenv("POLLCHECK_INTAKE_LAG_TARGET_S", "1")
    monkeypatch.setenv("POLLCHECK_SECRET_KEY", "x" * 40)
    monkeypatch.setenv("POLLCHECK_DATABASE_URL", "postgresql://elsewhere/db")
    given = run.settings_set()
    assert given["POLLCHECK_INTAKE_LAG_TARGET_S"] == "1"
    assert "POLLCHECK_SECRET_KEY" not in given and "POLLCHECK_DATABASE_URL" not in given


def test_catch_up_is_the_first_read_after_the_run_that_counts_everything_stored() -> None:
    truth = [(0.0, 100), (1.0, 150), (2.0, 150), (3.0, 180), (4.0, 180)]
    # Current at t=0.5 (during the run), behind at 2.5 and 3.5, current again at 4.5.
    reads = [(0.5, 100), (2.5, 120), (3.5, 150), (4.5, 180)]
    assert run.catch_up(_samples(reads, truth), after=2.0, timeout=1) == 4.5
    assert run.catch_up(_samples(reads, truth), after=0.0, timeout=1) == 0.5
    behind = _samples(reads[:3], truth)
    before = time.time()
    assert run.catch_up(behind, after=2.0, timeout=0.3) >= before + 0.3  # gave up waiting


@pytest.mark.postgres_only
def test_a_reused_mission_is_run_on_a_copy_that_leaves_the_original_as_it_was() -> None:
    """`--reuse-database` runs on a copy of the database (`recreate_database` with a
    template), so that what a run posts does not grow the mission the next run starts from;
    a copy of a database someone is connected to is refused with what to do."""
    import os
    import uuid

    import psycopg

    if "@127.0.0.1:5432/" not in os.environ.get("POLLCHECK_TEST_PG_URL", ""):
        pytest.skip("the bench uses the PostgreSQL at 127.0.0.1:5432, not the tests' own")
    name = f"pollcheck_copytest_{uuid.uuid4().hex[:8]}"
    url = run.recreate_database(name)
    copy = f"{name}_run"
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE posted (n int)")
            conn.execute("INSERT INTO posted VALUES (1)")
            with pytest.raises(SystemExit, match="--in-place"):
                run.recreate_database(copy, template=name)  # this very session holds it
        copied = run.recreate_database(copy, template=name)
        with psycopg.connect(copied, autocommit=True) as conn:
            conn.execute("INSERT INTO posted VALUES (2)")
            assert conn.execute("SELECT count(*) FROM posted").fetchone() == (2,)
        run.drop_database(copy)
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM posted").fetchone() == (1,)
    finally:
        run.drop_database(copy)
        run.drop_database(name)
