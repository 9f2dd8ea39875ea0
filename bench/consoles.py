"""What open consoles cost: live event streams held, server memory, and intake with them.

    .venv/bin/python -m bench.consoles                       # 200 consoles, 20 s of intake each way
    .venv/bin/python -m bench.consoles --consoles 10 --seconds 3 --stations 40 --observers 12

Seeds a small mission in a PostgreSQL database of its own (`pollcheck_consoles`, dropped and
made again), starts the API as `make bench` does (uvicorn workers beside a `pollcheck fold`
process), then:

1. intake alone: wrk posts new checklists for `--seconds` (checklists a second);
2. opens `--consoles` event streams (`GET /missions/{id}/events`) from this process, over
   plain sockets that only count what arrives, and reads the server's memory and how many
   streams each worker holds (its established sockets on the port);
3. intake again with every console open: checklists a second, events each console got,
   and how late the checklist events came (one console parses them: its clock minus the
   checklist's `received_at`, the same machine's clock);
4. what a NOTIFY inside every committing transaction would cost (the design `api.notify`
   avoids): commits a second of 8 concurrent writers to a scratch table, with and without
   a trigger that notifies.

Without wrk (`apt-get install wrk`) the intake comes from threads of this process, which
take CPU from the server: the figures are then only a smoke test. The last line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg

from bench.run import (
    LUA,
    ROOT,
    body,
    intake_of,
    log,
    pct,
    recreate_database,
    seed,
    server_rss_mb,
    start_server,
    variants,
    wait_caught_up,
    wrk_run,
)


class Consoles:
    """`n` event streams held open in a thread of their own, on raw sockets."""

    def __init__(self, port: int, mission_id: uuid.UUID, token: str, n: int) -> None:
        self.port, self.n = port, n
        self.request = (
            f"GET /missions/{mission_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
        ).encode()
        self.checklists = [0] * n
        self.opened = 0
        self.lags_ms: list[float] = []
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            self.loop.run_until_complete(self._run())

    def start(self) -> None:
        self.thread.start()
        if not self.ready.wait(120):
            raise SystemExit(f"only {self.opened} of {self.n} consoles connected")

    async def _one(self, k: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            await self._read(k, reader, writer)
        finally:
            writer.close()

    async def _read(self, k: int, reader: asyncio.StreamReader, writer: Any) -> None:
        writer.write(self.request)
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            raise SystemExit(f"console {k}: {head.decode(errors='replace')[:200]}")
        self.opened += 1
        if self.opened == self.n:
            self.ready.set()
        rest = b""
        while chunk := await reader.read(65536):
            self.checklists[k] += chunk.count(b"event: checklist\n")
            if k == 0:  # one console reads its events: how late they come
                rest += chunk
                *lines, rest = rest.split(b"\n")
                now = datetime.now(UTC)
                for line in lines:
                    if line.startswith(b"data: {") and b'"received_at"' in line:
                        at = datetime.fromisoformat(orjson.loads(line[6:])["received_at"])
                        self.lags_ms.append((now - at).total_seconds() * 1000)

    async def _run(self) -> None:
        await asyncio.gather(*(self._one(k) for k in range(self.n)), return_exceptions=True)

    def close(self) -> None:
        def cancel() -> None:
            for task in asyncio.all_tasks(self.loop):
                task.cancel()

        self.loop.call_soon_threadsafe(cancel)
        self.thread.join(timeout=30)


def streams_per_worker(root_pid: int, port: int) -> dict[str, int]:
    """Established sockets on `port` held by each process of the server (its workers)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            if int(parts[1].rsplit(":", 1)[1], 16) == port and parts[3] == "01":
                inodes.add(parts[9])
    children = Path(f"/proc/{root_pid}/task/{root_pid}/children").read_text().split()
    out = {}
    for pid in [str(root_pid), *children]:
        held = 0
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    held += 1
        except OSError:
            continue
        if held:
            out[pid] = held
    return out


def python_intake(port: int, bodies: list[tuple[str, bytes]], seconds: float) -> float:
    """Checklists a second posted by 8 threads of this process (when wrk is missing)."""
    created = [0]
    lock = threading.Lock()
    it = iter(bodies)
    stop = time.monotonic() + seconds

    def run() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            while time.monotonic() < stop:
                with lock:
                    token, raw = next(it)
                kind = {"Content-Type": "application/json"}
                headers = {"Authorization": f"Bearer {token}"} | kind
                r = client.post("/checklists", content=raw, headers=headers)
                if r.status_code == 201:
                    with lock:
                        created[0] += 1

    threads = [threading.Thread(target=run) for _ in range(8)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return created[0] / (time.monotonic() - t0)


def notify_cost(url: str, writers: int = 8, commits: int = 300) -> tuple[float, float]:
    """Commits a second of `writers` concurrent one-row transactions, without and with a
    trigger that NOTIFYs in each (while a listener drains the notifications)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_notify")
        conn.execute("CREATE TABLE bench_notify (id bigserial PRIMARY KEY, v uuid)")
        conn.execute(
            "CREATE OR REPLACE FUNCTION bench_notify() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN PERFORM pg_notify('bench_notify', ''); RETURN NULL; END $$"
        )
    listener = psycopg.connect(url, autocommit=True)
    listener.execute("LISTEN bench_notify")
    draining = threading.Event()

    def drain() -> None:
        while not draining.is_set():
            for _ in listener.notifies(timeout=0.2):
                pass

    drainer = threading.Thread(target=drain, daemon=True)
    drainer.start()

    def rate() -> float:
        def write() -> None:
            with psycopg.connect(url) as conn:
                for _ in range(commits):
                    conn.execute("INSERT INTO bench_notify (v) VALUES (gen_random_uuid())")
                    conn.commit()

        threads = [threading.Thread(target=write) for _ in range(writers)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return writers * commits / (time.perf_counter() - t0)

    plain = rate()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TRIGGER bench_notify AFTER INSERT ON bench_notify "
            "FOR EACH ROW EXECUTE FUNCTION bench_notify()"
        )
    notifying = rate()
    draining.set()
    drainer.join()
    listener.close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE bench_notify")
        conn.execute("DROP FUNCTION bench_notify()")
    return plain, notifying


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--consoles", type=int, default=200)
    ap.add_argument("--seconds", type=int, default=20, help="intake seconds, each way")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--connections", type=int, default=32, help="wrk connections")
    ap.add_argument("--stations", type=int, default=2000)
    ap.add_argument("--observers", type=int, default=600)
    ap.add_argument("--database", default="pollcheck_consoles")
    ap.add_argument("--port", type=int, default=8071)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    sys.path.insert(0, str(ROOT))
    rng = random.Random(args.seed)
    url = recreate_database(args.database)
    world = seed(url, args.stations, args.observers, rng)
    sets = variants(rng)
    now = datetime.now(UTC) - timedelta(minutes=1)
    need = 2 * (args.seconds * 1_500 + 500)  # two runs at up to 1,500 a second
    bodies = []
    for k in range(need):
        token, item, _, _ = body(rng, world, sets, k * 7 + 3, now)
        bodies.append((token, orjson.dumps(item)))
    wrk = shutil.which("wrk") is not None
    work = Path(tempfile.mkdtemp(prefix="pollcheck-consoles-"))
    halves = (bodies[: need // 2], bodies[need // 2 :])
    files = []
    for i, half in enumerate(halves):
        path = work / f"bodies{i}.tsv"
        path.write_bytes(b"".join(t.encode() + b"\t" + raw + b"\n" for t, raw in half))
        files.append(path)
    (work / "intake.lua").write_text(LUA)

    def intake(i: int) -> float:
        if wrk:
            script, port = work / "intake.lua", args.port
            summary = wrk_run(script, port, files[i], args.connections, args.seconds)
            return intake_of(summary)[0]
        return python_intake(args.port, halves[i], args.seconds)

    server = start_server(url, args.port, args.workers, fold_process=True)
    result: dict[str, Any] = {"consoles": args.consoles, "workers": args.workers, "wrk": wrk}
    try:
        waited = wait_caught_up(f"http://127.0.0.1:{args.port}", world)
        log(f"API up on :{args.port}, findings caught up after {waited:.0f} s; intake alone")
        result["rss_mb_idle"] = round(server_rss_mb(server.pid), 1)
        result["intake_alone_per_s"] = round(intake(0), 1)
        log(f"intake alone: {result['intake_alone_per_s']} checklists/s; opening consoles")
        consoles = Consoles(args.port, world.mission_id, world.viewer_token, args.consoles)
        consoles.start()
        time.sleep(2)
        result["streams_per_worker"] = streams_per_worker(server.pid, args.port)
        result["rss_mb_consoles"] = round(server_rss_mb(server.pid), 1)
        result["rss_kb_per_console"] = round(
            (result["rss_mb_consoles"] - result["rss_mb_idle"]) * 1024 / args.consoles, 1
        )
        log(f"{args.consoles} consoles open: {result['streams_per_worker']}; intake again")
        before = sum(consoles.checklists)
        result["intake_with_consoles_per_s"] = round(intake(1), 1)
        time.sleep(3)  # the last events on their way
        got = sum(consoles.checklists) - before
        result["checklist_events_per_console"] = round(got / args.consoles, 1)
        lags = consoles.lags_ms
        result["event_lag_ms_p50"] = round(pct(lags, 0.5), 1) if lags else None
        result["event_lag_ms_p95"] = round(pct(lags, 0.95), 1) if lags else None
        result["rss_mb_after"] = round(server_rss_mb(server.pid), 1)
        consoles.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    log("NOTIFY in every transaction: 8 writers")
    plain, notifying = notify_cost(url)
    result["commits_per_s_plain"] = round(plain)
    result["commits_per_s_notify_each"] = round(notifying)
    for key, value in result.items():
        print(f"  {key}: {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
