"""Can a dashboard or an attacker slow down the observers? An observer's intake p95, alone,
while one viewer token hammers fresh statements, and while unknown tokens flood.

    .venv/bin/python -m bench.hardening                       # the figures for bench/README.md
    .venv/bin/python -m bench.hardening --stations 200 --observers 40 --checklists 1000 \\
        --seconds 3 --viewer-connections 8 --flood-connections 8        # a quick proof run

Against the PostgreSQL at 127.0.0.1:5432, in a database of its own (`pollcheck_hardening`,
dropped and created again): seeds a mission (bench.run's seed and preload, so that a fresh
statement costs what it does on the day), starts the API as deployed (`uvicorn --workers 2`
beside a `pollcheck fold` process), then measures, for `--seconds` each:

1. alone: observers post new checklists, one at a time from `--observer-threads` threads
   at a phone's pace (`--observer-gap-ms` between posts), and the latency of each is kept;
2. viewer: the same, while one viewer token asks for the draft statement with a new
   `observed_from` on every request (a cache miss each, before the minute windows) on
   `--viewer-connections` connections at once, from a process of its own;
3. flood: the same, while a process of its own sends requests with unknown tokens as fast
   as `--flood-connections` connections go, all from one address.

The target (issue 16) is an observer's p95 at most 100 ms in both. It prints each phase's
p50 and p95, what the hammering clients were answered, and a last line of JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bench.run import (
    ROOT,
    body,
    pct,
    preload,
    recreate_database,
    seed,
    start_server,
    variants,
    wait_caught_up,
)

TARGET_P95_MS = 100.0


def observers_post(
    base: str, bodies: list[tuple[str, dict[str, Any]]], seconds: float, threads: int, gap_s: float
) -> tuple[list[float], collections.Counter[int]]:
    """Latencies (ms) of the observers' posts over `seconds`, and their statuses."""
    latencies: list[float] = []
    statuses: collections.Counter[int] = collections.Counter()
    lock = threading.Lock()
    it = iter(bodies)
    stop = time.monotonic() + seconds

    def run() -> None:
        with httpx.Client(base_url=base, timeout=60) as client:
            while time.monotonic() < stop:
                with lock:
                    token, item = next(it)
                started = time.perf_counter()
                r = client.post(
                    "/checklists", json=item, headers={"Authorization": f"Bearer {token}"}
                )
                took = (time.perf_counter() - started) * 1000
                with lock:
                    latencies.append(took)
                    statuses[r.status_code] += 1
                time.sleep(gap_s)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return latencies, statuses


async def _hammer(
    base: str, connections: int, seconds: float, make: Any
) -> collections.Counter[int]:
    """`connections` clients sending `make()` requests back to back for `seconds`."""
    statuses: collections.Counter[int] = collections.Counter()
    stop = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:

        async def one() -> None:
            while time.monotonic() < stop:
                url, headers = make()
                try:
                    r = await client.get(url, headers=headers)
                    statuses[r.status_code] += 1
                except httpx.HTTPError:
                    statuses[0] += 1

        await asyncio.gather(*(one() for _ in range(connections)))
    return statuses


def hammer_main(args: argparse.Namespace) -> None:
    """The child process: a viewer asking for fresh statements, or unknown tokens."""
    rng = random.Random()
    since = datetime.now(UTC) - timedelta(hours=10)

    def viewer() -> tuple[str, dict[str, str]]:
        start = since + timedelta(seconds=rng.randrange(10 * 3600))
        query = f"format=json&observed_from={start.isoformat().replace('+00:00', 'Z')}"
        return f"/missions/{args.mission}/statement?{query}", {
            "Authorization": f"Bearer {args.token}"
        }

    def flood() -> tuple[str, dict[str, str]]:
        return "/me", {"Authorization": f"Bearer pc_unknown{rng.getrandbits(64):x}"}

    make = viewer if args.hammer == "viewer" else flood
    statuses = asyncio.run(_hammer(args.base, args.connections, args.seconds, make))
    print(json.dumps({str(k): v for k, v in statuses.items()}))


def start_hammer(
    kind: str, base: str, connections: int, seconds: float, mission: str = "", token: str = ""
) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "bench.hardening", "--hammer", kind, "--base", base]
    cmd += ["--connections", str(connections), "--seconds", str(seconds)]
    cmd += ["--mission", mission, "--token", token]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--stations", type=int, default=20_000)
    ap.add_argument("--observers", type=int, default=3_000)
    ap.add_argument("--checklists", type=int, default=100_000, help="preloaded before")
    ap.add_argument("--seconds", type=float, default=30, help="per phase")
    ap.add_argument("--observer-threads", type=int, default=4)
    ap.add_argument("--observer-gap-ms", type=float, default=50)
    ap.add_argument("--viewer-connections", type=int, default=48)
    ap.add_argument("--flood-connections", type=int, default=48)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--database", default="pollcheck_hardening")
    ap.add_argument("--seed", type=int, default=1)
    # The hammering child process:
    ap.add_argument("--hammer", choices=["viewer", "flood"], help=argparse.SUPPRESS)
    ap.add_argument("--base", help=argparse.SUPPRESS)
    ap.add_argument("--connections", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--mission", help=argparse.SUPPRESS)
    ap.add_argument("--token", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.hammer:
        hammer_main(args)
        return

    sys.path.insert(0, str(ROOT))
    rng = random.Random(args.seed)
    url = recreate_database(args.database)
    print(f"seeding {args.stations:,} stations, {args.observers:,} observers, ", end="")
    print(f"{args.checklists:,} checklists")
    world = seed(url, args.stations, args.observers, rng)
    sets = variants(rng)
    preload(url, world, sets, args.checklists, rng)
    now = datetime.now(UTC) - timedelta(minutes=1)
    # Enough bodies for every phase at any pace; each observer sends few (their allowance).
    per_phase = int(args.seconds * args.observer_threads * 1000 / max(1.0, args.observer_gap_ms))
    bodies = [body(rng, world, sets, k, now)[:2] for k in range(3 * per_phase + 100)]

    port = 8000 + rng.randrange(1000, 9000)
    base = f"http://127.0.0.1:{port}"
    server = start_server(url, port, args.workers, fold_process=True)
    mission, viewer = str(world.mission_id), world.viewer_token
    out: dict[str, Any] = {}
    try:
        waited = wait_caught_up(base, world)
        print(f"findings caught up with the preload after {waited:.0f} s; measuring")
        used = 0
        for phase in ("alone", "viewer", "flood"):
            hammer = None
            if phase == "viewer":
                hammer = start_hammer(
                    "viewer", base, args.viewer_connections, args.seconds + 2, mission, viewer
                )
            elif phase == "flood":
                hammer = start_hammer("flood", base, args.flood_connections, args.seconds + 2)
            if hammer is not None:
                time.sleep(1.5)  # let it get going
            mine = bodies[used:]
            latencies, statuses = observers_post(
                base, mine, args.seconds, args.observer_threads, args.observer_gap_ms / 1000
            )
            used += sum(statuses.values())
            answered: dict[str, int] = {}
            if hammer is not None:
                stdout, _ = hammer.communicate(timeout=args.seconds + 120)
                answered = json.loads(stdout.strip().splitlines()[-1])
            p50, p95 = pct(latencies, 0.5), pct(latencies, 0.95)
            out[phase] = {
                "observer_posts": len(latencies),
                "observer_p50_ms": round(p50, 1),
                "observer_p95_ms": round(p95, 1),
                "observer_statuses": {str(k): v for k, v in statuses.items()},
                "hammer_statuses": answered,
                "hammer_rps": round(sum(answered.values()) / (args.seconds + 2), 1),
            }
            print(
                f"{phase:>6}: observer p50 {p50:.1f} ms, p95 {p95:.1f} ms over "
                f"{len(latencies)} posts {dict(statuses)}; hammer answered {answered}"
            )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
    out["target_p95_ms"] = TARGET_P95_MS
    out["met"] = all(out[p]["observer_p95_ms"] <= TARGET_P95_MS for p in ("viewer", "flood"))
    print(json.dumps({"hardening": out}))


if __name__ == "__main__":
    main()
