"""SMS checklists through the generic webhook, with replies: messages per second.

    .venv/bin/python -m bench.sms                         # 3,000 messages, 16 at once
    .venv/bin/python -m bench.sms --messages 300 --concurrency 4    # tiny

Against the PostgreSQL at 127.0.0.1:5432, in a database of its own (`pollcheck_bench_sms`,
dropped and created again): seeds a mission with `bench.run`'s seeding, gives every
observer a phone number, sets up the generic gateway, starts the API (one uvicorn worker)
and posts SMS as an Android forwarding app would: each observer sends a voting or a
closing checklist of the default template in the SMS of 160 characters that the card splits
it into. Voting fits in one SMS; closing takes several, the first kept as pending, the last
storing the checklist. Every answer carries the reply that goes back to the observer.
Reports messages per second, latency percentiles and the outcomes; the last line of output
is one JSON object with the figures.
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
from collections import Counter
from typing import Any

import httpx
import psycopg

from bench.run import ROOT, log, pct, recreate_database, seed, start_server

SECRET = "bench-sms-generic-secret"


def phone_of(k: int) -> str:
    return f"+7701{k:07d}"


def set_up(url: str, world: Any) -> None:
    """Every observer a phone number; the mission's SMS settings; the generic gateway."""
    with psycopg.connect(url) as conn:
        for k, (oid, *_rest) in enumerate(world.observers):
            conn.execute("UPDATE observer SET phone = %s WHERE id = %s", (phone_of(k), oid))
        conn.execute(
            "UPDATE mission SET settings = %s::jsonb WHERE id = %s",
            (json.dumps({"sms": {"region": "KZ", "per_minute": 0}}), world.mission_id),
        )
        conn.execute(
            "INSERT INTO sms_gateway (mission_id, gateway, secret, created_at) "
            "VALUES (%s, 'generic', %s, now())",
            (world.mission_id, SECRET),
        )


def messages_for(world: Any, count: int, rng: random.Random) -> list[list[tuple[str, str]]]:
    """Per observer, in order: (sender, text) of their checklists' SMS, about `count` in all."""
    from api.services.sms.codes import SmsCodes
    from api.services.templates import default_definition
    from tests.factories import answers_for

    codes = SmsCodes(default_definition())
    # Voting fits in one SMS; closing, with the protocol's figures, takes several.
    answers = {phase: answers_for(phase) for phase in ("voting", "closing")}
    per_observer: list[list[tuple[str, str]]] = []
    total = 0
    for k, (_oid, _cid, _token, stations) in enumerate(world.observers):
        if total >= count or not stations:
            continue
        _sid, station = rng.choice(stations)
        phase = rng.choice(("voting", "closing"))
        texts = codes.encode_messages(station, phase, answers[phase])
        per_observer.append([(phone_of(k), t) for t in texts])
        total += len(texts)
    return per_observer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--messages", type=int, default=3_000)
    ap.add_argument("--stations", type=int, default=5_000)
    ap.add_argument("--observers", type=int, default=2_000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--port", type=int, default=8313)
    ap.add_argument("--database", default="pollcheck_bench_sms")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    sys.path.insert(0, str(ROOT))
    rng = random.Random(args.seed)
    url = recreate_database(args.database)
    log(f"database {args.database}: {args.stations:,} stations, {args.observers:,} observers")
    world = seed(url, args.stations, args.observers, rng)
    set_up(url, world)
    queues = messages_for(world, args.messages, rng)
    total = sum(len(q) for q in queues)
    server = start_server(url, args.port, 1, fold_process=False)
    endpoint = f"http://127.0.0.1:{args.port}/sms/generic/{world.mission_id}"
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    replies = 0
    lock = threading.Lock()
    next_queue = iter(range(len(queues)))

    def sender() -> None:
        nonlocal replies
        with httpx.Client(headers={"X-Pollcheck-Secret": SECRET}, timeout=60) as client:
            while True:
                with lock:
                    i = next(next_queue, None)
                if i is None:
                    return
                # One observer's SMS arrive in order, as a phone sends them.
                for n, (phone, text) in enumerate(queues[i]):
                    started = time.perf_counter()
                    r = client.post(endpoint, json={"id": f"{i}-{n}", "from": phone, "text": text})
                    took = time.perf_counter() - started
                    body = r.json() if r.status_code == 200 else {}
                    with lock:
                        latencies.append(took)
                        outcomes[body.get("outcome") or f"http {r.status_code}"] += 1
                        replies += bool(body.get("reply"))

    try:
        # The worker's first requests pay for imports and caches.
        warm = httpx.post(
            endpoint,
            json={"id": "warm", "from": "+77000000000", "text": "x"},
            headers={"X-Pollcheck-Secret": SECRET},
            timeout=60,
        )
        warm.raise_for_status()
        started = time.perf_counter()
        threads = [threading.Thread(target=sender) for _ in range(args.concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - started
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    ms = [x * 1000 for x in latencies]
    figures = {
        "messages": total,
        "checklists": len(queues),
        "concurrency": args.concurrency,
        "messages_per_s": round(total / seconds, 1),
        "p50_ms": round(pct(ms, 0.5), 1),
        "p95_ms": round(pct(ms, 0.95), 1),
        "replies": replies,
        "outcomes": dict(outcomes),
    }
    log(
        f"{total:,} SMS ({len(queues):,} checklists) in {seconds:.1f} s: "
        f"{figures['messages_per_s']} messages/s with replies, p50 {figures['p50_ms']} ms, "
        f"p95 {figures['p95_ms']} ms; outcomes {dict(outcomes)}"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
