"""What one fold of a batch costs on a loaded mission, statement by statement.

    .venv/bin/python -m bench.fold_batch --database pollcheck_1m        # 1,000 checklists, 2 rounds
    .venv/bin/python -m bench.fold_batch --database pollcheck_bench --checklists 500 --rounds 3

Uses a mission an earlier `bench.run` left in `--database` (say `--views-only --checklists
1000000`), on an otherwise idle machine. Each round picks `--checklists` counting
checklists at random, quarantines them (with their outbox rows, as a review does) and
folds, then lifts the quarantine and folds again: a batch leaving the findings and the same
batch coming back, each against stations with their whole history. The checklists and the
findings are as before once a round ends (the outbox keeps two rows for each checklist of
a round, and the data version moves on); a run killed midway is set right by the next.
It reports each fold's time and its costliest statements, and on the last line, as JSON,
the time of every fold and the best per round. Unlike `bench.run` the figure does not
depend on wrk, on the API or on how the fold shares the machine with intake: it is the
fold's own cost, to compare before and after a change to it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from typing import Any

import psycopg

from bench.run import ROOT, log

PICK = (
    "CREATE TABLE bench_fold_batch AS SELECT id, mission_id FROM checklist"
    " WHERE is_latest AND NOT quarantined AND review_state <> 'rejected' AND hold IS NULL"
    " ORDER BY random() LIMIT %s"
)
OUTBOX = (
    "INSERT INTO checklist_change (mission_id, checklist_id, created_at, kind)"
    " SELECT mission_id, id, now(), 'review' FROM bench_fold_batch"
)


def restore(url: str) -> None:
    """Lift the quarantine of the checklists a round picked, if a run (this one, or one
    killed before it could) left any, and forget the pick."""
    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('bench_fold_batch')").fetchone() == (None,):
            return
    quarantine(url, False)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE bench_fold_batch")


def quarantine(url: str, on: bool) -> None:
    with psycopg.connect(url, autocommit=False) as conn:
        conn.execute(
            "UPDATE checklist SET quarantined = %s WHERE id IN (SELECT id FROM bench_fold_batch)",
            (on,),
        )
        conn.execute(OUTBOX)


def timed_fold() -> tuple[float, int, list[tuple[float, str]]]:
    """Fold everything pending (a transaction per `fold.FOLD_LIMIT` changes): seconds,
    checklists in or out, the statements' milliseconds (summed by their first words)."""
    from sqlalchemy import event

    from api.db import get_engine, session_scope
    from api.services.findings import fold

    spent: dict[str, float] = defaultdict(float)
    started: list[float] = []

    def before(*_: Any) -> None:
        started.append(time.perf_counter())

    def after(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        spent[" ".join(statement.split())[:90]] += (time.perf_counter() - started.pop()) * 1000

    engine = get_engine()
    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        t0 = time.perf_counter()
        checklists, more = 0, True
        while more:
            with session_scope() as session:
                result = fold.fold(session)
            checklists, more = checklists + result.checklists, result.more
        took = time.perf_counter() - t0
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
    costliest = sorted(((ms, s) for s, ms in spent.items()), reverse=True)
    return took, checklists, costliest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--database", required=True, help="a database bench.run left a mission in")
    ap.add_argument("--checklists", type=int, default=1000, help="checklists in each batch")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--top", type=int, default=5, help="statements shown for each fold")
    args = ap.parse_args()
    url = f"postgresql://postgres@127.0.0.1:5432/{args.database}"
    os.environ["POLLCHECK_DATABASE_URL"] = url
    sys.path.insert(0, str(ROOT))
    restore(url)
    pending = timed_fold()  # whatever an earlier run left: not part of the figures
    log(f"folded {pending[1]:,} pending checklists first ({pending[0]:.1f} s)")
    folds: dict[str, list[float]] = {"leave": [], "come_back": []}
    try:
        for k in range(args.rounds):
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("DROP TABLE IF EXISTS bench_fold_batch")
                conn.execute(PICK, (args.checklists,))
            for kind, on in (("leave", True), ("come_back", False)):
                quarantine(url, on)
                took, n, costliest = timed_fold()
                folds[kind].append(round(took * 1000, 1))
                log(f"round {k + 1}, {kind}: {n:,} checklists folded in {took * 1000:.0f} ms")
                for ms, statement in costliest[: args.top]:
                    log(f"  {ms:8.1f} ms  {statement}")
    finally:
        restore(url)
        timed_fold()
    print(
        json.dumps(
            {
                "database": args.database,
                "batch": args.checklists,
                "fold_ms": folds,
                "best_ms": {kind: min(ms) for kind, ms in folds.items() if ms},
            }
        )
    )


if __name__ == "__main__":
    main()
