"""Exports at national scale: rows per second and the server's memory while it streams.

    .venv/bin/python -m bench.exports                      # 100,000 checklists
    .venv/bin/python -m bench.exports --checklists 500 --stations 200 --observers 50  # tiny

Against the PostgreSQL at 127.0.0.1:5432, in a database of its own (`pollcheck_bench_exports`,
dropped and created again): seeds a mission with `bench.run`'s seeding and bulk load, starts
the API (one uvicorn worker, so that one process holds the whole export; the findings are
folded before, so that no background fold runs beside it), and downloads the
checklists export as an analyst would: as CSV plain (`csv`), as CSV gzipped (`csv_gzip`, what
a browser or Excel asks for) and as XLSX. For each it reports the rows per
second (checklists over the whole download), the time to the first byte, the size, and the
server's peak resident memory above its level just before the request (sampled every 20 ms
from /proc). Targets (issue 17): CSV at least 20,000 rows/s; memory growth at most 50 MB.

The last line of output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import threading
import time
from typing import Any

import httpx

from bench.run import (
    ROOT,
    log,
    preload,
    recreate_database,
    seed,
    server_rss_mb,
    start_server,
    variants,
)


def analyst_token(mission_id: Any) -> str:
    from api.db import session_scope
    from api.services import credentials
    from models import Role

    with session_scope() as s:
        return credentials.issue(s, mission_id, Role.analyst, "bench exports").token


def download(
    port: int, pid: int, mission_id: Any, token: str, fmt: str, encoding: str = "identity"
) -> dict[str, Any]:
    """One export, with the server's memory sampled while it runs; `encoding`: what the
    client accepts (`gzip`, as browsers and Excel ask; the bytes counted are those sent)."""
    base = server_rss_mb(pid)
    peak = base
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, server_rss_mb(pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    url = f"http://127.0.0.1:{port}/missions/{mission_id}/exports/checklists"
    started = time.perf_counter()
    first = None
    size = 0
    with httpx.stream(
        "GET", url, params={"format": fmt}, headers={"Authorization": f"Bearer {token}",
        "Accept-Encoding": encoding}, timeout=600,
    ) as r:  # fmt: skip
        r.raise_for_status()
        for chunk in r.iter_raw():
            if first is None and chunk:
                first = time.perf_counter() - started
            size += len(chunk)
    took = time.perf_counter() - started
    stop.set()
    sampler.join()
    return {
        "seconds": round(took, 2),
        "first_byte_s": round(first or took, 3),
        "bytes": size,
        "memory_growth_mb": round(peak - base, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--checklists", type=int, default=100_000)
    ap.add_argument("--stations", type=int, default=20_000)
    ap.add_argument("--observers", type=int, default=3_000)
    ap.add_argument("--port", type=int, default=8312)
    ap.add_argument("--database", default="pollcheck_bench_exports")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    sys.path.insert(0, str(ROOT))
    rng = random.Random(args.seed)
    url = recreate_database(args.database)
    log(f"database {args.database}: {args.stations:,} stations, {args.observers:,} observers")
    world = seed(url, args.stations, args.observers, rng)
    preload(url, world, variants(rng), args.checklists, rng)
    token = analyst_token(world.mission_id)
    os.environ["POLLCHECK_DATABASE_URL"] = url
    from api.services.findings import fold

    while fold.run_once().changes:  # folded first: the server's folder then has nothing to do
        pass
    server = start_server(url, args.port, 1, fold_process=False)
    figures: dict[str, Any] = {"checklists": args.checklists}
    try:
        # A first, small export: the worker's first request pays for imports and caches.
        warm = f"http://127.0.0.1:{args.port}/missions/{world.mission_id}/exports/checklists"
        httpx.get(warm, params={"phase": "incident"}, timeout=120,
                  headers={"Authorization": f"Bearer {token}"}).raise_for_status()  # fmt: skip
        for name, fmt, encoding in (
            ("csv", "csv", "identity"),
            ("csv_gzip", "csv", "gzip"),
            ("xlsx", "xlsx", "gzip"),
        ):
            got = download(args.port, server.pid, world.mission_id, token, fmt, encoding)
            got["rows_per_s"] = round(args.checklists / got["seconds"]) if got["seconds"] else 0
            figures[name] = got
            log(
                f"{name}: {got['rows_per_s']:,} rows/s ({got['seconds']} s, first byte after "
                f"{got['first_byte_s']} s, {got['bytes'] / 1e6:.1f} MB), server memory "
                f"+{got['memory_growth_mb']} MB"
            )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    csv_ok = figures["csv"]["rows_per_s"] >= 20_000 and figures["csv"]["memory_growth_mb"] <= 50
    log(f"targets (CSV >= 20,000 rows/s, growth <= 50 MB): {'met' if csv_ok else 'NOT met'}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
