"""The API's own CPU for one checklist post, in process, without a network or a server.

    .venv/bin/python -m bench.cpu_per_post                # 1,000 posts, best of 3 rounds
    .venv/bin/python -m bench.cpu_per_post --posts 3000 --rounds 5
    .venv/bin/python -m bench.cpu_per_post --observers 3000  # each token about once

Seeds a small mission in a database of its own on the PostgreSQL at 127.0.0.1:5432
(`pollcheck_cpu`, dropped and created again), then posts new checklists through the ASGI
app with httpx, one at a time, and reads `time.process_time()` around each round: the CPU
of this process and its worker threads (routing, validation, SQLAlchemy and the driver),
not PostgreSQL's. The figure moves with the code, not with the load, which makes it the one
to compare before and after a change to the intake path; about 0.25 ms of it is httpx's
test client. It also prints the wall time per post (the database's part included, its
round trips too: the posts go one at a time) and the CPU yardstick of `make bench`, to
compare machines. With 120 observers (the default) a token posts many times a minute, as
in `make bench`; with as many observers as posts each token posts about once, as on
election day, when an observer's requests come minutes apart.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson

from bench.run import ROOT, body, recreate_database, seed, variants, yardstick_ms


async def rounds(
    app: Any, bodies: list[tuple[str, bytes]], n: int, k: int
) -> list[tuple[float, float]]:
    """CPU and wall ms per post for each of k rounds of n posts (after a warm-up of 50)."""
    transport = httpx.ASGITransport(app=app)
    out: list[tuple[float, float]] = []
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        it = iter(bodies)

        async def post() -> None:
            token, raw = next(it)
            r = await client.post(
                "/checklists",
                content=raw,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            if r.status_code != 201:
                raise SystemExit(f"intake answered {r.status_code}: {r.text[:300]}")

        for _ in range(50):
            await post()
        for _ in range(k):
            c0, w0 = time.process_time(), time.perf_counter()
            for _ in range(n):
                await post()
            cpu, wall = time.process_time() - c0, time.perf_counter() - w0
            out.append((cpu * 1000 / n, wall * 1000 / n))
            print(f"  {n:,} posts: {cpu * 1000 / n:.2f} ms CPU, {wall * 1000 / n:.2f} ms wall each")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--posts", type=int, default=1_000, help="posts per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--observers", type=int, default=120, help="tokens the posts are spread over")
    ap.add_argument("--database", default="pollcheck_cpu")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    sys.path.insert(0, str(ROOT))
    rng = random.Random(args.seed)
    url = recreate_database(args.database)
    world = seed(url, 400, args.observers, rng)
    sets = variants(rng)
    now = datetime.now(UTC) - timedelta(minutes=1)
    need = 50 + args.posts * args.rounds
    bodies = []
    for k in range(need):
        token, item, _, _ = body(rng, world, sets, k, now)
        bodies.append((token, orjson.dumps(item)))

    os.environ |= {
        "POLLCHECK_ENVIRONMENT": "bench",
        "POLLCHECK_SECRET_KEY": uuid.uuid4().hex,
        "POLLCHECK_FINDINGS_FOLD_ELSEWHERE": "true",  # no fold in this process
    }
    from api.config import get_settings
    from api.db import reset_engines
    from api.main import create_app

    get_settings.cache_clear()
    reset_engines()
    app = create_app()
    print(f"CPU yardstick: {yardstick_ms():.0f} ms (bench.run.yardstick_ms)")
    per_post = asyncio.run(rounds(app, bodies, args.posts, args.rounds))
    best = {
        "cpu_per_post_ms": round(min(cpu for cpu, _ in per_post), 3),
        "wall_per_post_ms": round(min(wall for _, wall in per_post), 3),
    }
    print(orjson.dumps(best).decode())


if __name__ == "__main__":
    main()
