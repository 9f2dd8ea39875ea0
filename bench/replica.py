"""Dashboards on a streaming replica: intake and the dashboards' latency with the findings
views computed on a replica (`POLLCHECK_READ_DATABASE_URL`) against on the primary.

    .venv/bin/python -m bench.replica                  # 20,000 checklists, 20 s of load each way
    .venv/bin/python -m bench.replica --checklists 2000 --seconds 5 --stations 200 --observers 60

Makes a PostgreSQL cluster of its own and a streaming replica of it (initdb, then
pg_basebackup, in temporary folders on ports of their own, as tests/test_scale_out.py does),
seeds one mission and preloads `--checklists` checklists. It then runs the same load twice:
first with the dashboards reading the primary, then with them reading the replica. Each
time the API (uvicorn workers beside a `pollcheck fold` process, as `make bench` runs it)
takes new checklists from wrk for `--seconds`. Meanwhile `--dashboards` threads ask for
every findings view in turn (findings, coverage, incidents, critical, counting,
statement), as consoles do while data arrives: cached answers, and fresh computes whenever
a view is due.

Reported: intake a second, the dashboards' latency (p50, p95, all views together and each
view's p95), and the largest `X-Replica-Lag` an answer carried. Everything runs on this one
machine, so the replica takes CPU from the same cores. The figures show what reading a
replica costs and what it moves off the primary, not what a second machine would add. The
last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.run import (
    LUA,
    ROOT,
    World,
    body,
    intake_of,
    log,
    pct,
    preload,
    seed,
    start_server,
    variants,
    wait_caught_up,
    wrk_run,
)

VIEWS = ["findings", "findings/coverage", "findings/incidents", "findings/critical"]
VIEWS += ["findings/counting", "statement"]


class Dashboards:
    """Threads asking for every view in turn until stopped; each answer's time and lag."""

    def __init__(self, port: int, world: World, threads: int) -> None:
        self.base = f"http://127.0.0.1:{port}/missions/{world.mission_id}/"
        self.headers = {"Authorization": f"Bearer {world.viewer_token}"}
        self.times: dict[str, list[float]] = {view: [] for view in VIEWS}
        self.lags: list[float] = []
        self.errors: dict[int, int] = {}
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(k,)) for k in range(threads)]

    def _run(self, k: int) -> None:
        with httpx.Client(timeout=60, headers=self.headers) as client:
            turn = k
            while not self.stop.is_set():
                view = VIEWS[turn % len(VIEWS)]
                turn += 1
                t0 = time.perf_counter()
                try:
                    r = client.get(self.base + view)
                except httpx.HTTPError:
                    self.errors[0] = self.errors.get(0, 0) + 1
                    continue
                ms = (time.perf_counter() - t0) * 1000
                if r.status_code != 200:
                    self.errors[r.status_code] = self.errors.get(r.status_code, 0) + 1
                    continue
                self.times[view].append(ms)
                if "x-replica-lag" in r.headers:
                    self.lags.append(float(r.headers["x-replica-lag"]))

    def __enter__(self) -> Dashboards:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=120)

    def figures(self, prefix: str) -> dict[str, Any]:
        every = [ms for view in VIEWS for ms in self.times[view]]
        out: dict[str, Any] = {
            f"{prefix}_dashboard_requests": len(every),
            f"{prefix}_dashboard_p50_ms": round(pct(every, 0.5), 1) if every else None,
            f"{prefix}_dashboard_p95_ms": round(pct(every, 0.95), 1) if every else None,
            f"{prefix}_dashboard_errors": dict(self.errors),
            f"{prefix}_max_replica_lag_s": max(self.lags) if self.lags else None,
        }
        for view in VIEWS:
            times = self.times[view]
            name = view.rsplit("/", 1)[-1]
            out[f"{prefix}_{name}_p95_ms"] = round(pct(times, 0.95), 1) if times else None
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--checklists", type=int, default=20_000, help="preloaded before the runs")
    ap.add_argument("--seconds", type=int, default=20, help="seconds of load, each way")
    ap.add_argument("--dashboards", type=int, default=4, help="dashboard threads")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--connections", type=int, default=32, help="wrk connections")
    ap.add_argument("--stations", type=int, default=2000)
    ap.add_argument("--observers", type=int, default=600)
    ap.add_argument("--port", type=int, default=8074)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench.replica needs wrk (apt-get install wrk)")

    sys.path.insert(0, str(ROOT))
    # Capacity, not the per-token limits: four busy dashboards on one viewer token ask more
    # than the 600 requests a minute a token may make.
    os.environ["POLLCHECK_RATE_LIMIT_PER_MINUTE"] = "0"
    from tests.servers import throwaway_postgres, throwaway_replica

    rng = random.Random(args.seed)
    result: dict[str, Any] = {
        "checklists": args.checklists,
        "dashboards": args.dashboards,
        "workers": args.workers,
    }
    with throwaway_postgres() as primary:
        url = primary.dsn()
        world = seed(url, args.stations, args.observers, rng)
        sets = variants(rng)
        started = time.monotonic()
        preload(url, world, sets, args.checklists, rng)
        log(f"preloaded {args.checklists} checklists in {time.monotonic() - started:.0f} s")
        work = Path(tempfile.mkdtemp(prefix="pollcheck-replica-bench-"))
        (work / "intake.lua").write_text(LUA)
        now = datetime.now(UTC) - timedelta(minutes=1)
        per_run = args.seconds * 1_500 + 500  # up to 1,500 a second
        files = []
        for run in range(2):
            lines = []
            for k in range(per_run):
                token, item, _, _ = body(rng, world, sets, (run * per_run + k) * 7 + 3, now)
                lines.append(token.encode() + b"\t" + orjson.dumps(item) + b"\n")
            path = work / f"bodies{run}.tsv"
            path.write_bytes(b"".join(lines))
            files.append(path)
        with throwaway_replica(primary) as replica:
            replica_url = replica.dsn()
            for run, (prefix, reads) in enumerate((("primary", None), ("replica", replica_url))):
                if reads:
                    os.environ["POLLCHECK_READ_DATABASE_URL"] = reads
                else:
                    os.environ.pop("POLLCHECK_READ_DATABASE_URL", None)
                server = start_server(url, args.port, args.workers, fold_process=True)
                try:
                    wait_caught_up(f"http://127.0.0.1:{args.port}", world)
                    log(f"dashboards on the {prefix}: {args.seconds} s of intake")
                    with Dashboards(args.port, world, args.dashboards) as dashboards:
                        summary = wrk_run(
                            work / "intake.lua",
                            args.port,
                            files[run],
                            args.connections,
                            args.seconds,
                        )
                    per_s, failed = intake_of(summary)
                    result[f"{prefix}_intake_per_s"] = round(per_s, 1)
                    result[f"{prefix}_intake_failed"] = failed
                    result.update(dashboards.figures(prefix))
                finally:
                    os.killpg(server.pid, signal.SIGTERM)
                    server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    for key, value in result.items():
        print(f"  {key}: {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
