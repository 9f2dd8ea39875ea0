"""OpenRosa intake beside JSON intake: submissions a second as ODK Collect sends them.

    .venv/bin/python -m bench.openrosa                 # 20 s per run, 32 and 8 connections
    .venv/bin/python -m bench.openrosa --seconds 5 --stations 200 --observers 60   # a quick one

Against the PostgreSQL at 127.0.0.1:5432, in a database of its own (`pollcheck_openrosa`,
dropped and created again): seeds `bench.run`'s mission (fewer stations and observers), starts
the API as `make bench` does (2 uvicorn workers and a `pollcheck fold` process), and has `wrk`
(`apt-get install -y wrk`) post new checklists for `--seconds` each way, from pre-made
bodies:

- `json_per_s`: `POST /checklists`, the web app's single checklist, 32 connections;
- `openrosa_per_s`: `POST /key/{token}/submission`, multipart with the served form's instance
  filled as Collect fills it (no photos), 32 connections; and `openrosa_per_s_8` at 8.

Both go through the same Lua script (each request read from a file of bodies), so the two
figures differ only by the channel. New checklists are counted in the database (a resend of
a body wrk cycled back to would be a 201 too). For reference, ODK Central's backend on this
kind of machine took 132 submissions a second at 8 concurrent clients and 95 at 32.

The last line of output is one JSON object with the figures.
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
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg

from bench.run import (
    ROOT,
    body,
    log,
    recreate_database,
    seed,
    start_server,
    variants,
    wait_caught_up,
    wrk_run,
)

# Requests from a file of records `<path>\n<content type>\n<authorization>\n<length>\n<body>`
# (a body may hold newlines: multipart does), split between wrk's threads.
LUA = r"""
local reqs, idx = {}, 0
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end
function init(args)
  local n, i = tonumber(args[2]), 0
  local f = assert(io.open(args[1], "rb"))
  while true do
    local path = f:read("*l")
    if not path then break end
    local ctype, authz = f:read("*l"), f:read("*l")
    local body = f:read(tonumber(f:read("*l")))
    if i % n == tid then
      local headers = {["Content-Type"] = ctype, ["X-OpenRosa-Version"] = "1.0"}
      if authz ~= "" then headers["Authorization"] = authz end
      table.insert(reqs, wrk.format("POST", path, headers, body))
    end
    i = i + 1
  end
  f:close()
end
function request()
  idx = idx + 1
  if idx > #reqs then idx = 1 end
  return reqs[idx]
end
function done(summary, latency, requests)
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p95_us": %d}\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout, latency:percentile(50), latency:percentile(95)))
end
"""


def record(path: str, ctype: str, authz: str, data: bytes) -> bytes:
    return f"{path}\n{ctype}\n{authz}\n{len(data)}\n".encode() + data


def stored(url: str) -> int:
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        row = conn.execute("SELECT count(*) FROM checklist").fetchone()
        return int(row[0]) if row else 0


def openrosa_bodies(port: int, items: list[tuple[str, dict[str, Any]]], out: Path) -> None:
    """Each checklist as the observer's own served form filled (one form per observer)."""
    from tests.openrosa_factories import fill, multipart

    forms: dict[str, bytes] = {}
    with out.open("wb") as f, httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        for token, item in items:
            if token not in forms:
                r = client.get(f"/key/{token}/forms/default-v1", timeout=30)
                r.raise_for_status()
                forms[token] = r.content
            _, xml = fill(
                forms[token], item["answers"], station=item["station"], phase=item["phase"],
                instance=f"uuid:{item['id']}",
            )  # fmt: skip
            ctype, data = multipart(xml)
            f.write(record(f"/key/{token}/submission", ctype, "", data))


def measure(
    name: str, url: str, script: Path, port: int, bodies: Path, connections: int, seconds: int
) -> dict[str, Any]:
    before = stored(url)
    w = wrk_run(script, port, bodies, connections, seconds)
    time.sleep(1)  # the last answers' commits
    new = stored(url) - before
    out = {
        "per_s": round(new / (w["duration_us"] / 1e6), 1),
        "p50_ms": round(w["p50_us"] / 1000, 1),
        "p95_ms": round(w["p95_us"] / 1000, 1),
        "errors": w["non_2xx"] + w["socket_errors"],
    }
    log(
        f"{name}, {connections} connections: {out['per_s']} new checklists/s, "
        f"p50 {out['p50_ms']} / p95 {out['p95_ms']} ms, {out['errors']} errors"
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=int, default=20, help="seconds of each run")
    ap.add_argument("--stations", type=int, default=2000)
    ap.add_argument("--observers", type=int, default=600)
    ap.add_argument("--database", default="pollcheck_openrosa")
    ap.add_argument("--port", type=int, default=8073)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench.openrosa needs wrk: apt-get install -y wrk")

    sys.path.insert(0, str(ROOT))
    rng = random.Random(args.seed)
    url = recreate_database(args.database)
    world = seed(url, args.stations, args.observers, rng)
    sets = variants(rng)
    now = datetime.now(UTC) - timedelta(minutes=1)
    per_run = args.seconds * 1_200  # more than a run takes, so wrk never resends a body
    items = []
    for k in range(3 * per_run):
        token, item, _, _ = body(rng, world, sets, k * 7 + 3, now)
        items.append((token, item))
    work = Path(tempfile.mkdtemp(prefix="pollcheck-openrosa-"))
    script = work / "post.lua"
    script.write_text(LUA)
    json_bodies = work / "json.bin"
    with json_bodies.open("wb") as f:
        for token, item in items[:per_run]:
            f.write(
                record("/checklists", "application/json", f"Bearer {token}", orjson.dumps(item))
            )

    server = start_server(url, args.port, 2, fold_process=True)
    figures: dict[str, Any] = {"workers": 2, "seconds": args.seconds}
    try:
        wait_caught_up(f"http://127.0.0.1:{args.port}", world)
        log("building the OpenRosa bodies from each observer's served form")
        rosa = [work / "openrosa32.bin", work / "openrosa8.bin"]
        openrosa_bodies(args.port, items[per_run : 2 * per_run], rosa[0])
        openrosa_bodies(args.port, items[2 * per_run :], rosa[1])
        figures["json"] = measure("JSON", url, script, args.port, json_bodies, 32, args.seconds)
        figures["openrosa"] = measure("OpenRosa", url, script, args.port, rosa[0], 32, args.seconds)
        figures["openrosa_8"] = measure(
            "OpenRosa", url, script, args.port, rosa[1], 8, args.seconds
        )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    figures["openrosa_vs_json"] = round(
        figures["openrosa"]["per_s"] / max(figures["json"]["per_s"], 0.1), 2
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
