"""National-scale benchmark: intake over HTTP, findings latency and staleness, memory, DB floor.

    make bench     # 20,000 stations, 3,000 observers, 100,000 checklists
    make bench BENCH_ARGS="--checklists 20000 --http-seconds 20"     # a quicker run

What it does, against the PostgreSQL at 127.0.0.1:5432 (a database of its own,
`pollcheck_bench`, dropped and created again; never the test database):

1. migrates, seeds one mission (stations in regions/districts and abroad, observers with
   assignments and tokens) and bulk-loads most checklists (COPY) so that the database holds
   the national-scale volume, then folds them into the findings tallies;
2. starts the API with `uvicorn --workers 2` beside a `pollcheck fold` process, as
   docker-compose.yml deploys them (`--fold-in-api`: the workers fold instead, in background
   threads), and drives checklist intake with `wrk`
   (a C load generator, light enough not to steal the server's CPU) from pre-made bodies,
   each a new checklist of an observer at one of their stations;
3. meanwhile polls `GET /missions/{id}/findings` four times a second (latency of full
   answers) and samples the database's own count of checklists (staleness: how long after
   a checklist was stored the findings first counted it), and the server's memory;
4. computes each findings view afresh on the full mission, with the server stopped, and
   times the review queue's pages under each filter;
5. measures the database's floor for the same inserts with `pgbench` (one checklist, its
   answers and its outbox row per transaction) and prints the ratio.

The last line of output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import atexit
import bisect
import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
WRK_HINT = (
    "wrk is missing. Install it with `apt-get install -y wrk` (Debian/Ubuntu, as root) "
    "or see https://github.com/wg/wrk; the bench needs a load generator light enough not to "
    "steal the server's CPU."
)

LUA = r"""
local lines, idx = {}, 0
created, replayed, other = 0, 0, 0
local counter, threads = 0, {}
function setup(thread)
  thread:set("tid", counter)
  table.insert(threads, thread)
  counter = counter + 1
end
function init(args)
  local n, i = tonumber(args[2]), 0
  rate = tonumber(args[3] or "0")  -- this thread's requests a second, for PACED_LUA
  for line in io.lines(args[1]) do
    if i % n == tid then table.insert(lines, line) end
    i = i + 1
  end
end
function request()
  idx = idx + 1
  if idx > #lines then idx = 1 end
  local line = lines[idx]
  local tab = string.find(line, "\t", 1, true)
  return wrk.format("POST", "/checklists", {
    ["Authorization"] = "Bearer " .. string.sub(line, 1, tab - 1),
    ["Content-Type"] = "application/json"}, string.sub(line, tab + 1))
end
function response(status, headers, body)
  if status == 201 then created = created + 1
  elseif status == 200 then replayed = replayed + 1
  else other = other + 1 end
end
function done(summary, latency, requests)
  local c, r, o = 0, 0, 0
  for _, t in ipairs(threads) do
    c = c + t:get("created"); r = r + t:get("replayed"); o = o + t:get("other")
  end
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "created": %d, "replayed": %d, ' ..
    '"other": %d, "socket_errors": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, ' ..
    '"max_us": %d}\n',
    summary.requests, summary.duration, c, r, o,
    summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
"""


def log(msg: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def yardstick_ms() -> float:
    """Milliseconds of CPU, best of three, for a fixed pure-Python workload (JSON and hashing
    of a checklist-sized document): a rough measure for comparing the CPU of two machines,
    or of one machine from day to day, since the figures below move with it."""
    doc = {f"Q{i}": {"value": "yes", "n": i, "note": "x" * 20} for i in range(40)}
    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()
        for _ in range(10_000):
            hashlib.sha256(orjson.dumps(orjson.loads(orjson.dumps(doc)))).hexdigest()
        best = min(best, time.process_time() - t0)
    return best * 1000


# --- database and seed ------------------------------------------------------------------


def recreate_database(name: str, template: str | None = None) -> str:
    """An empty database `name`, or a copy of `template` (which nobody may be connected to)."""
    copy = f' TEMPLATE "{template}"' if template else ""
    drop_database(name)
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        try:
            conn.execute(f'CREATE DATABASE "{name}"{copy}')  # type: ignore[arg-type]
        except psycopg.errors.ObjectInUse as e:
            raise SystemExit(
                f"cannot copy {template}: another session is connected to it ({e}); "
                "stop it, or run with --in-place"
            ) from None
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def drop_database(name: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


@dataclass
class World:
    mission_id: uuid.UUID
    template_id: uuid.UUID
    viewer_token: str
    observers: list[tuple[uuid.UUID, uuid.UUID, str, list[tuple[uuid.UUID, str]]]] = field(
        default_factory=list
    )  # (observer id, credential id, token, [(station id, station code)])


def _migrated(url: str) -> None:
    """Point this process at `url`, migrated to the current code, signing tokens as the
    servers the bench starts do."""
    os.environ["POLLCHECK_DATABASE_URL"] = url
    os.environ["POLLCHECK_SECRET_KEY"] = SECRET_KEY
    from api import migrate
    from api.config import get_settings
    from api.db import reset_engines

    get_settings.cache_clear()
    reset_engines()
    migrate.upgrade(url)


CREDENTIAL_COLUMNS = (
    "credential (id, mission_id, role, observer_id, label, token_hash, token_prefix, created_at)"
)


def _observer_credential(
    mission_id: uuid.UUID, observer_id: uuid.UUID, k: int, now: datetime
) -> tuple[uuid.UUID, str, tuple[Any, ...]]:
    """A new token for the k-th observer: its credential id, the token, and the row to COPY
    (only the token's hash is stored)."""
    from api.security import new_token, token_digest

    cid, token = uuid.uuid4(), new_token(SECRET_KEY)
    row = (
        cid,
        mission_id,
        "observer",
        observer_id,
        f"phone {k}",
        token_digest(token),
        token[:10],
        now,
    )
    return cid, token, row


def seed(url: str, stations: int, observers: int, rng: random.Random) -> World:
    _migrated(url)
    from api.db import session_scope
    from api.services import credentials, missions
    from api.services import stations as station_service
    from models import Role
    from models.mission import MissionCreate

    with session_scope() as s:
        mission, _ = missions.create(
            s,
            MissionCreate(
                name="Bench national mission",
                country="Kazakhstan",
                election_date=date.today(),
                timezone="Asia/Almaty",
                languages=["en", "ru"],
            ),
        )
        mission_id = mission.id
        viewer = credentials.issue(s, mission_id, Role.viewer, "bench dashboard").token
        abroad = max(1, stations // 100)
        rows = []
        for i in range(stations - abroad):
            region = i % 17
            rows.append(
                (
                    i + 1,
                    {
                        "code": f"{region:02}-{i:05}",
                        "name": f"Polling station {i}",
                        "region": f"Region {region:02}",
                        "district": f"District {region:02}-{(i // 17) % 12:02}",
                        "registered_voters": 800 + (i % 9) * 200,
                    },
                )
            )
        for j in range(abroad):
            rows.append(
                (
                    stations - abroad + j + 1,
                    {
                        "code": f"X-{j:04}",
                        "name": f"Station abroad {j}",
                        "country": f"Country {j % 25:02}",
                        "post": f"Post {j % 60:02}",
                        "registered_voters": 400,
                    },
                )
            )
        report = station_service.upsert_stations(s, mission_id, rows)
        assert not report.problems, report.problems[:3]
    with session_scope() as s:
        station_rows = s.execute(
            _sql("SELECT id, code FROM station WHERE mission_id = :m ORDER BY code"),
            {"m": mission_id},
        ).all()
        template_id = s.execute(
            _sql("SELECT id FROM checklist_template WHERE mission_id = :m"), {"m": mission_id}
        ).scalar_one()
    # Observers in teams of two, each pair covering its own stations.
    world = World(mission_id, template_id, viewer)
    per = max(1, len(station_rows) // max(1, observers // 2))
    obs_rows, asg_rows, cred_rows, team_rows = [], [], [], []
    now = datetime.now(UTC)
    for k in range(observers):
        team = k // 2
        if k % 2 == 0:
            team_rows.append((uuid.uuid4(), mission_id, f"Team {team:04}", now))
        team_id = team_rows[-1][0]
        oid = uuid.uuid4()
        cid, token, credential = _observer_credential(mission_id, oid, k, now)
        mine = station_rows[(team * per) % len(station_rows) :][:per] or station_rows[:per]
        obs_rows.append((oid, mission_id, team_id, f"STO-{k:05}", f"Observer {k}", now))
        cred_rows.append(credential)
        for sid, _ in mine:
            asg_rows.append((oid, sid, mission_id))
        world.observers.append((oid, cid, token, [(sid, code) for sid, code in mine]))
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        _copy(cur, "team (id, mission_id, name, created_at)", team_rows)
        _copy(cur, "observer (id, mission_id, team_id, code, name, created_at)", obs_rows)
        _copy(cur, CREDENTIAL_COLUMNS, cred_rows)
        _copy(cur, "assignment (observer_id, station_id, mission_id)", asg_rows)
    return world


def reuse(url: str) -> World:
    """The mission a run before left in the database, migrated to this code, with new tokens
    for its viewer and observers (only their hashes are stored)."""
    _migrated(url)
    from api.db import session_scope
    from api.services import credentials
    from models import Role

    with session_scope() as s:
        mission_id, template_id = s.execute(
            _sql(
                "SELECT m.id, t.id FROM mission m JOIN checklist_template t ON t.mission_id = m.id"
            )
        ).one()
        viewer = credentials.issue(s, mission_id, Role.viewer, "bench dashboard").token
        stations: dict[uuid.UUID, list[tuple[uuid.UUID, str]]] = {}
        for oid, sid, code in s.execute(
            _sql(
                "SELECT a.observer_id, s.id, s.code FROM assignment a"
                " JOIN station s ON s.id = a.station_id WHERE a.mission_id = :m"
                " ORDER BY a.observer_id, s.code"
            ),
            {"m": mission_id},
        ):
            stations.setdefault(oid, []).append((sid, code))
    world = World(mission_id, template_id, viewer)
    now = datetime.now(UTC)
    cred_rows = []
    for k, (oid, mine) in enumerate(sorted(stations.items())):
        cid, token, credential = _observer_credential(mission_id, oid, k, now)
        cred_rows.append(credential)
        world.observers.append((oid, cid, token, mine))
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        _copy(cur, CREDENTIAL_COLUMNS, cred_rows)
    return world


def stored_checklists(url: str, mission_id: uuid.UUID) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM checklist WHERE mission_id = %s", (mission_id,)
        ).fetchone()
    return int(row[0]) if row else 0


def _sql(text: str) -> Any:
    from sqlalchemy import text as sql_text

    return sql_text(text)


def _copy(cur: Any, target: str, rows: list[tuple[Any, ...]]) -> None:
    with cur.copy(f"COPY {target} FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


# --- checklists -------------------------------------------------------------------------

PHASES = ["opening"] * 2 + ["voting"] * 6 + ["closing"] * 1 + ["incident"] * 1


def variants(rng: random.Random, n: int = 60) -> dict[str, list[tuple[dict[str, Any], Any]]]:
    """A few dozen plausible answer sets per phase, with their typed answer rows."""
    from api.checklist_schema import CompiledTemplate
    from api.services import templates
    from tests.factories import answers_for
    from tests.findings_factories import GOOD_COUNT

    ct = CompiledTemplate(templates.default_definition())
    out: dict[str, list[tuple[dict[str, Any], Any]]] = {}
    for phase in set(PHASES):
        out[phase] = []
        for _ in range(n):
            over: dict[str, Any] = {}
            if phase == "voting":
                over = {
                    "D4": "no" if rng.random() < 0.03 else "yes",
                    "D8": "yes" if rng.random() < 0.02 else "no",
                    "H2": rng.choice(["very_good", "good", "good", "good", "bad"]),
                    "E1": rng.choice(["none"] * 30 + ["observed", "reported"]),
                    "C8": rng.choice(["yes", "no", "na"]),
                    "B4": "yes",
                    "B5": ["party_agents", "domestic_observers"],
                }
            elif phase == "closing":
                yes = rng.randint(200, 500)  # a few counts (5 %) fail a consistency check
                over = {"F11": "yes", **GOOD_COUNT, "P_V1": yes}
                over["P_V2"] = 585 - yes + (1 if rng.random() < 0.05 else 0)
            elif phase == "incident":
                over = {"G1": rng.choice(["vote_buying", "violence", "group_voting", "other"])}
            answers = answers_for(phase, over)
            rows, errors = ct.validate(phase, answers)
            assert not errors, errors
            out[phase].append((answers, rows))
    return out


def body(
    rng: random.Random, world: World, sets: dict[str, Any], k: int, at: datetime
) -> tuple[str, dict[str, Any], Any, tuple[Any, ...]]:
    oid, cid, token, stations = world.observers[k % len(world.observers)]
    sid, code = rng.choice(stations)
    phase = rng.choice(PHASES)
    answers, rows = rng.choice(sets[phase])
    item = {
        "id": str(uuid.uuid4()),
        "station": code,
        "template": "default",
        "template_version": 1,
        "phase": phase,
        "observed_at": at.isoformat(),
        "answers": answers,
    }
    return token, item, rows, (oid, cid, sid, phase)


def preload(url: str, world: World, sets: dict[str, Any], n: int, rng: random.Random) -> None:
    """COPY n checklists with their answers and outbox rows, as if received over the day."""
    start = datetime.now(UTC) - timedelta(hours=10)
    cl_cols = (
        "id, root_id, version, is_latest, mission_id, observer_id, station_id, template_id, "
        "phase, observed_at, observed_utc_offset_min, clock_flagged, critical, received_at, "
        "credential_id, payload, payload_sha256, review_state, quarantined"
    )
    done = 0
    with psycopg.connect(url) as conn:
        while done < n:
            chunk = min(10_000, n - done)
            checklists, answers, changes = [], [], []
            for i in range(chunk):
                at = start + timedelta(seconds=(done + i) * 36_000 / max(n, 1))
                token, item, rows, (oid, cid, sid, phase) = body(rng, world, sets, done + i, at)
                raw = orjson.dumps(item)
                clid = uuid.UUID(item["id"])
                checklists.append(
                    (
                        clid, clid, 1, True, world.mission_id, oid, sid, world.template_id,
                        phase, at, 300, False, any(r.critical for r in rows), at, cid, raw.decode(),
                        hashlib.sha256(orjson.dumps(item, option=orjson.OPT_SORT_KEYS)).hexdigest(),
                        "received", False,
                    )
                )  # fmt: skip
                for r in rows:
                    answers.append(
                        (clid, r.question_code, r.position, r.value, r.number, r.critical, r.kind)
                    )
                changes.append((world.mission_id, clid, at))
            with conn.cursor() as cur:
                _copy(cur, f"checklist ({cl_cols})", checklists)
                _copy(
                    cur,
                    "answer (checklist_id, question_code, position, value, number, critical, kind)",
                    answers,
                )
                _copy(cur, "checklist_change (mission_id, checklist_id, created_at)", changes)
            conn.commit()
            done += chunk
            log(f"  preloaded {done:,} checklists")
        conn.execute("ANALYZE")  # type: ignore[arg-type]
        conn.commit()


# --- the server and the pollers ---------------------------------------------------------


SECRET_KEY = uuid.uuid4().hex  # one per bench run: the seeded tokens are signed with it


def start_server(url: str, port: int, workers: int, fold_process: bool) -> subprocess.Popen[bytes]:
    env = os.environ | {
        "POLLCHECK_DATABASE_URL": url,
        "POLLCHECK_ENVIRONMENT": "bench",
        "POLLCHECK_SECRET_KEY": SECRET_KEY,
        "POLLCHECK_FINDINGS_FOLD_ELSEWHERE": "true" if fold_process else "false",
    }
    cmd = [
        sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1",
        "--port", str(port), "--workers", str(workers), "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    if fold_process:  # the fold in a process of its own, in the server's process group
        cmd = ["sh", "-c", f'{sys.executable} -m api.cli fold & exec "$@"', "sh", *cmd]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
    for _ in range(200):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("the API did not start")


def wait_caught_up(base: str, world: World, limit_s: float = 600.0) -> float:
    """Wait until the findings include every preloaded checklist (the first fold of a
    large preload takes a minute), so that a measurement does not share the machine with
    it; the seconds waited."""
    started = time.monotonic()
    url = f"{base}/missions/{world.mission_id}/findings/version"
    headers = {"Authorization": f"Bearer {world.viewer_token}"}
    while time.monotonic() - started < limit_s:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            if httpx.get(url, headers=headers, timeout=10).json().get("caught_up"):
                return time.monotonic() - started
        time.sleep(1)
    raise SystemExit(f"the findings did not catch up with the preload within {limit_s:.0f} s")


def rss_by_process_mb(root_pid: int) -> dict[int, float]:
    """Resident memory (MB) of the uvicorn supervisor and of each of its workers, by pid."""
    pids = [root_pid]
    try:
        children = Path(f"/proc/{root_pid}/task/{root_pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    rss: dict[int, float] = {}
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss[pid] = int(line.split()[1]) / 1024
        except OSError:
            pass
    return rss


def server_rss_mb(root_pid: int) -> float:
    """Resident memory of the server: the uvicorn supervisor and its workers."""
    return sum(rss_by_process_mb(root_pid).values())


def _ticks(pid: str) -> tuple[str, int, int] | None:
    """(command line, user + system clock ticks, start time) of one process, None once it
    is gone. (PostgreSQL backends rewrite their command line as they work: a pid is told
    apart from a reused one by its start time.)"""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = int(fields[11]) + int(fields[12])
    return cmd or "[kernel]", ticks, int(fields[19])  # kernel threads have no command line


def cpu_snapshot() -> tuple[dict[str, tuple[str, int, int]], list[int]]:
    """Every process's CPU so far, and the machine's (the cpu line of /proc/stat)."""
    procs = {pid: t for pid in os.listdir("/proc") if pid.isdigit() and (t := _ticks(pid))}
    machine = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return procs, machine


def fold_backends(url: str) -> set[str]:
    """Process ids of the PostgreSQL sessions of `pollcheck fold` (its `application_name`)."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'pollcheck fold'"
        ).fetchall()
    return {str(r[0]) for r in rows}


def cpu_split(
    before: tuple[dict[str, tuple[str, int, int]], list[int]],
    after: tuple[dict[str, tuple[str, int, int]], list[int]],
    server_pids: set[str],
    fold_pids: Collection[str] = (),
) -> dict[str, float]:
    """Who used the machine's CPU between two snapshots, as shares of all of it (both
    cores): the API workers, the fold process, PostgreSQL working for the fold (`fold_pids`,
    its sessions) and for the rest, wrk, this script, the kernel's own threads (journal
    commits for the WAL's fsyncs, network), time the hypervisor took (steal), the rest and
    idle. A process that ended in between is missed (the pools keep theirs open)."""
    groups: dict[str, int] = {}
    for pid, (cmd, ticks, started) in after[0].items():
        then = before[0].get(pid)
        spent = ticks - (then[1] if then is not None and then[2] == started else 0)
        if "api.cli fold" in cmd:
            group = "fold"
        elif pid in fold_pids:
            group = "postgres_fold"
        elif pid in server_pids or "uvicorn" in cmd or "multiprocessing" in cmd:
            group = "api"
        elif cmd.startswith("postgres"):
            group = "postgres"
        elif cmd.startswith("wrk"):
            group = "wrk"
        elif pid == str(os.getpid()):
            group = "bench"
        elif cmd == "[kernel]":
            group = "kernel"
        else:
            group = "other"
        groups[group] = groups.get(group, 0) + spent
    total = sum(after[1]) - sum(before[1])
    idle = sum(after[1][3:5]) - sum(before[1][3:5])  # idle and iowait
    groups["steal"] = after[1][7] - before[1][7]
    # "other": everything busy that is not one of the named groups (other processes,
    # interrupts, processes that ended in between).
    named = sum(v for k, v in groups.items() if k != "other")
    groups["other"] = total - idle - named
    groups["idle"] = idle
    return {k: round(v / total, 3) for k, v in sorted(groups.items())} if total else {}


@dataclass
class Samples:
    findings: list[tuple[float, float, int]] = field(default_factory=list)  # (t, ms, counted)
    truth: list[tuple[float, int]] = field(default_factory=list)  # (t, checklists stored)
    rss: list[tuple[float, float]] = field(default_factory=list)  # server, largest worker
    not_modified: list[float] = field(default_factory=list)  # when a 304 came back
    said_lag: list[tuple[float, float]] = field(default_factory=list)  # (t, X-Findings-Lag)
    errors: int = 0
    views: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # (t, ms)


# Added to LUA for the paced run: each of wrk's threads sends at an even pace (its share of
# the rate), whichever of its connections is free, so the server sees a steady arrival
# rate rather than wrk's closed loop. The clock is the monotonic one, through LuaJIT's FFI.
PACED_LUA = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } pollcheck_timespec;
int clock_gettime(int clk, pollcheck_timespec *tp);
]]
local ts = ffi.new("pollcheck_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end
local interval, next_at = nil, nil
function delay()
  local now = now_ms()
  if interval == nil then interval = 1000 / rate end
  -- Behind by up to a second: catch up (the rate is an average). Behind by more (the
  -- server stalled): start afresh rather than send a burst.
  if next_at == nil or next_at < now - 1000 then next_at = now end
  local wait = next_at - now
  next_at = next_at + interval
  if wait < 0 then return 0 end
  return math.floor(wait)
end
"""


def wrk_run(
    script: Path, port: int, bodies: Path, connections: int, seconds: float, rate: float = 0
) -> dict[str, Any]:
    """Run wrk (2 threads) with `script` over `bodies`, `rate` requests a second in all if
    the script paces them; its summary as a dict."""
    run = subprocess.run(
        [
            "wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s",
            "--timeout", "10s", "-s", str(script),
            f"http://127.0.0.1:{port}", "--", str(bodies), "2", str(rate / 2),
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    line = next((x for x in run.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        print(run.stdout, run.stderr, file=sys.stderr)
        raise SystemExit("wrk gave no summary")
    return dict(json.loads(line[len("WRKJSON ") :]))


def intake_of(w: dict[str, Any]) -> tuple[float, int]:
    """From a wrk summary: new checklists a second, and requests that failed."""
    return w["created"] / (w["duration_us"] / 1e6), w["other"] + w["socket_errors"]


def findings_during(samples: Samples, start: float, end: float) -> list[float]:
    """Milliseconds of the findings reads made between `start` and `end`."""
    return [ms for t, ms, _ in samples.findings if start <= t <= end]


def poll(
    stop: threading.Event, samples: Samples, port: int, world: World, url: str, pid: int
) -> list[threading.Thread]:
    headers = {"Authorization": f"Bearer {world.viewer_token}"}
    path = f"http://127.0.0.1:{port}/missions/{world.mission_id}/findings"

    def note_lag(r: httpx.Response) -> None:
        try:
            said = float(r.headers["x-findings-lag"])
        except (KeyError, ValueError):  # a server without it, or a header not a number
            return
        samples.said_lag.append((time.time(), said))

    def findings() -> None:
        with httpx.Client(timeout=30) as client:
            etag = None
            while not stop.is_set():
                t0 = time.time()
                try:
                    r = client.get(path, headers=headers)
                    ms = (time.time() - t0) * 1000
                    note_lag(r)
                    if r.status_code == 200:
                        samples.findings.append((t0, ms, r.json()["totals"]["observations"]))
                        etag = r.headers.get("etag")
                    else:
                        samples.errors += 1
                    if etag:  # a dashboard revalidating: counted, not timed
                        again = client.get(path, headers=headers | {"If-None-Match": etag})
                        note_lag(again)
                        if again.status_code == 304:
                            samples.not_modified.append(t0)
                except httpx.HTTPError:
                    samples.errors += 1
                stop.wait(max(0.0, 0.25 - (time.time() - t0)))

    def truth() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            # Counted once; then every new checklist of the bench takes one id of the change
            # outbox's sequence, which costs nothing to read. (A count of the checklists
            # received since the start, ten times a second, read thousands of rows without a
            # visibility map and took 15 ms of the server's database each time.) An id is
            # taken just before its checklist commits, so the staleness is counted from a
            # few milliseconds early, never late.
            row = conn.execute(
                "SELECT count(*), (SELECT last_value FROM checklist_change_id_seq)"
                " FROM checklist WHERE mission_id = %s AND is_latest",
                (world.mission_id,),
            ).fetchone()
            assert row is not None
            base, first = int(row[0]), int(row[1])
            while not stop.is_set():
                n = conn.execute("SELECT last_value FROM checklist_change_id_seq").fetchone()
                samples.truth.append((time.time(), base + (int(n[0]) - first if n else 0)))
                rss = rss_by_process_mb(pid)
                workers = [mb for p, mb in rss.items() if p != pid]
                samples.rss.append((sum(rss.values()), max(workers, default=0.0)))
                stop.wait(0.1)

    def views() -> None:
        """Consoles watching every view: each view computed afresh in a thread of its own
        (consoles watch different views independently), as often as the API would compute
        it again while the data keeps changing, i.e. after `findings_cache_s` or
        `findings_cache_cost_factor` times as long as it took. Until the twelfth session of
        2026-12-07 one thread computed them in turn, so that a run of 30 s under saturated
        intake timed each view once or twice and its p95 was one sample. While
        the checklists keep arriving, the data has always changed by then. Each section is
        computed and stored in the shared cache as the API does after a data change (its
        reuse time set to nothing, so that it is computed, not served). The statement is
        timed twice: from nothing (`views.compute`, every section again), and as the API
        serves it when it is due (`statement_served`: assembled from the sections as the
        consoles watching them are served, i.e. cached within their reuse time)."""
        from sqlalchemy import delete

        from api import memory
        from api.config import get_settings
        from api.db import session_scope
        from api.services.findings import views
        from api.services.findings.scope import Filters

        # The server's fold keeps the findings current: this process never folds on a read.
        settings = get_settings().model_copy(update={"findings_fold_elsewhere": True})
        due = settings.model_copy(update={"findings_cache_s": 0.0})
        # The sections this loop stored are all within their reuse time when it asks.
        watched = settings.model_copy(update={"findings_cache_s": 60.0})
        mid = world.mission_id
        statement_rows = views.FCACHE.c.body.startswith(
            f'{{"mission_id":"{mid}","view":"statement"'
        )
        memory.settle()  # as an API worker has, at its start

        def watch(name: str) -> None:
            timed = samples.views.setdefault(name, [])
            while not stop.is_set():
                with session_scope(read=True) as s:
                    if name == "statement_served":  # due: its own cached row gone
                        s.execute(delete(views.FCACHE).where(statement_rows))
                    t0 = time.time()
                    if name == "statement":
                        views.compute(s, mid, name, Filters())
                    elif name == "statement_served":
                        views.get_view(s, watched, mid, "statement", Filters(), None)
                    else:
                        views.get_view(s, due, mid, name, Filters(), None)
                    took = time.time() - t0
                timed.append((t0, took * 1000))
                reuse = settings.findings_cache_cost_factor * took
                if stop.wait(min(max(settings.findings_cache_s, reuse), 60.0)):
                    return

        consoles = [
            threading.Thread(target=watch, args=(name,))
            for name in [*views.VIEWS, "statement_served"]
        ]
        for console in consoles:
            console.start()
        for console in consoles:
            console.join()

    threads = [threading.Thread(target=t) for t in (findings, truth, views)]
    for t in threads:
        t.start()
    return threads


def views_during(samples: Samples, start: float, end: float) -> dict[str, dict[str, Any]]:
    """Per view, p50 and p95 of its fresh computes that began between `start` and `end`."""
    out = {}
    for name, timed in samples.views.items():
        ms = [m for t, m in list(timed) if start <= t <= end]
        if ms:
            out[name] = {
                "n": len(ms),
                "p50": round(pct(ms, 0.5), 1),
                "p95": round(pct(ms, 0.95), 1),
            }
    return out


def catch_up(samples: Samples, after: float, timeout: float = 120.0) -> float:
    """Wait for the first findings read made at `after` or later that counts every
    checklist the database held when it was made (or `timeout` seconds); return when it
    was made. A checklist whose transaction took an outbox id and then rolled back is never
    counted: a run with intake errors may wait the whole timeout (it says so)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        truth = list(samples.truth)
        for t, _, counted in [r for r in samples.findings if r[0] >= after]:
            held = [n for tt, n in truth if tt <= t]
            if held and counted >= held[-1]:
                return t
        time.sleep(0.25)
    log(f"the findings did not catch up within {timeout:.0f} s")
    return time.time()


def view_costs(mission_id: uuid.UUID) -> dict[str, float]:
    """Milliseconds to compute each findings view afresh (best of two), on the full mission
    and with the server stopped: what the first dashboard to ask waits when the data moved
    on, and what `findings_cache_cost_factor` weighs."""
    from sqlalchemy import delete

    from api import memory
    from api.db import session_scope
    from api.services.findings import views
    from api.services.findings.scope import Filters

    memory.settle()  # the collector as an API worker has it
    out = {}
    for name in views.VIEWS:
        best = float("inf")
        for _ in range(2):
            with session_scope(read=True) as s:
                t0 = time.perf_counter()
                views.compute(s, mission_id, name, Filters())
                best = min(best, time.perf_counter() - t0)
        out[name] = round(best * 1000, 1)
    # What the API serves: the statement assembled from its sections as cached for the
    # same data (each asked first, as a console does), not recomputing them.
    from api.config import get_settings

    settings = get_settings().model_copy(update={"findings_cache_s": 0.0})
    with session_scope(read=True) as s:
        # Not the statement an earlier run cached for the same data: assembled afresh.
        s.execute(
            delete(views.FCACHE).where(
                views.FCACHE.c.body.startswith(f'{{"mission_id":"{mission_id}","view":"statement"')
            )
        )
        for name in views.SECTIONS:
            views.get_view(s, settings, mission_id, name, Filters(), None)
        t0 = time.perf_counter()
        views.get_view(s, settings, mission_id, "statement", Filters(), None)
        out["statement_from_cached_sections"] = round((time.perf_counter() - t0) * 1000, 1)
    return out


# The review queue's pages as the console asks for them: its first page, the next one, and
# under each filter an analyst picks (a station by part of its code, as typed).
QUEUE_PAGES: dict[str, dict[str, str]] = {
    "open": {},
    "open_next_page": {},
    "any_state": {"state": "any"},
    "critical": {"reason": "critical"},
    "counting": {"reason": "counting"},
    "clock": {"reason": "clock"},
    "unreviewed": {"reason": "unreviewed"},
    "verified": {"state": "verified"},
    "phase_closing": {"phase": "closing"},
    "station": {"station": "01-000"},
}


def queue_costs(mission_id: uuid.UUID) -> dict[str, float]:
    """Milliseconds for a page of 100 of the review queue (best of three), its capped count
    included: a page is read from each reason's own index, not the whole mission."""
    from api.db import session_scope
    from api.deps import Principal
    from api.services import queue
    from models.credential import Role
    from models.review import QueueReason, QueueState

    analyst = Principal(uuid.uuid4(), mission_id, Role.analyst, None)
    out = {}
    for name, params in QUEUE_PAGES.items():
        kwargs: dict[str, Any] = {
            "reason": QueueReason(params["reason"]) if "reason" in params else None,
            "phase": params.get("phase"),
            "state": QueueState(params.get("state", "open")),
            "station": params.get("station"),
        }
        if name == "open_next_page":
            with session_scope(read=True) as s:
                kwargs["cursor"] = queue.review_queue(s, analyst, **kwargs).next_cursor
        best = float("inf")
        for _ in range(3):
            with session_scope(read=True) as s:
                t0 = time.perf_counter()
                queue.review_queue(s, analyst, **kwargs)
                best = min(best, time.perf_counter() - t0)
        out[name] = round(best * 1000, 1)
    return out


def settings_set() -> dict[str, str]:
    """The Pollcheck settings given to the run's server in the environment (such as
    `POLLCHECK_INTAKE_LAG_TARGET_S`), but for those the bench sets itself: a run's figures
    say what it was measured with."""
    own = ("POLLCHECK_DATABASE_URL", "POLLCHECK_SECRET_KEY")
    return {
        k: v for k, v in sorted(os.environ.items()) if k.startswith("POLLCHECK_") and k not in own
    }


def said_lag(samples: Samples, start: float, end: float) -> float | None:
    """The largest `X-Findings-Lag` the findings' answers gave between `start` and `end`
    (None: none said one): the server's own account, beside `staleness`."""
    said = [lag for t, lag in list(samples.said_lag) if start <= t <= end]
    return round(max(said), 2) if said else None


def staleness(samples: Samples, start: float, end: float) -> float:
    """The longest time a stored checklist waited before the findings counted it, over the
    findings read between `start` and `end`."""
    truth = list(samples.truth)  # one snapshot: the poller may still be adding to it
    times = [t for t, _ in truth]
    counts = [n for _, n in truth]
    worst = 0.0
    for t, _, counted in samples.findings:
        if not start <= t <= end:
            continue
        # The first sample at which the database held more checklists than were counted.
        i = bisect.bisect_left(counts, counted + 1)
        if i < len(counts) and times[i] < t:
            worst = max(worst, t - times[i])
    return worst


# --- pgbench ----------------------------------------------------------------------------

PGBENCH = """
WITH u AS (SELECT gen_random_uuid() AS id),
c AS (
  INSERT INTO checklist (id, root_id, version, is_latest, mission_id, observer_id, station_id,
    template_id, phase, observed_at, observed_utc_offset_min, clock_flagged, received_at,
    credential_id, payload, payload_sha256, review_state, quarantined)
  SELECT u.id, u.id, 1, true, '{mission}', '{observer}', '{station}', '{template}', 'voting',
    now(), 300, false, now(), '{credential}', repeat('x', 1500), md5(u.id::text), 'received',
    false FROM u RETURNING id),
a AS (
  INSERT INTO answer (checklist_id, question_code, position, value, number, critical, kind)
  SELECT c.id, 'Q' || g, 0, 'yes', NULL, false, 'closed' FROM c, generate_series(1, {answers}) g)
INSERT INTO checklist_change (mission_id, checklist_id, created_at)
SELECT '{mission}', c.id, now() FROM c;
"""


def forget_floor_rows(
    url: str, mission_id: uuid.UUID, station_id: uuid.UUID, since: datetime
) -> None:
    """Delete what this pgbench run inserted (its checklists carry an md5 where intake
    stores a SHA-256, and arrived `since`), before any fold sees it: left in, a later run
    with --reuse-database, or bench.fold_batch, found some 40,000 checklists at that one
    station and folded every batch touching it against all of them. (An earlier run's
    were folded since: they stay, counted like any other.)"""
    ours = (
        "SELECT id FROM checklist WHERE mission_id = %(m)s AND station_id = %(s)s"
        " AND received_at >= %(since)s AND payload_sha256 = md5(id::text)"
    )
    params = {"m": mission_id, "s": station_id, "since": since}
    with psycopg.connect(url) as conn:
        # Without the foreign keys' checks: each deleted checklist would have looked for
        # outbox rows referring to it, a scan of the outbox each at a million checklists.
        # Nothing else refers to pgbench's checklists.
        conn.execute("SET LOCAL session_replication_role = replica")
        for table in ("checklist_change", "answer"):
            conn.execute(
                f"DELETE FROM {table} WHERE checklist_id IN ({ours})",  # type: ignore[arg-type]
                params,
            )
        gone = conn.execute(
            f"DELETE FROM checklist WHERE id IN ({ours})",  # type: ignore[arg-type]
            params,
        ).rowcount
    log(f"pgbench: its {gone:,} checklists deleted again")


def pgbench_floor(url: str, world: World, answers: int, clients: int, seconds: int) -> float:
    oid, cid, _, stations = world.observers[0]
    sql = PGBENCH.format(
        mission=world.mission_id,
        observer=oid,
        station=stations[0][0],
        template=world.template_id,
        credential=cid,
        answers=answers,
    )
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(" ".join(sql.split()) + "\n")  # pgbench reads one command per line
        script = f.name
    with psycopg.connect(url) as conn:
        since = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
        # No more clients than the server has connections left: a run with `--connections
        # 256` had pgbench refused ("too many clients") and no floor. (The API itself never
        # has more than its pools' connections busy in the database, whatever wrk opens.)
        room = conn.execute(
            "SELECT current_setting('max_connections')::int"
            " - current_setting('superuser_reserved_connections')::int"
            " - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')"
        ).fetchone()[0]  # type: ignore[index]
    clients = max(1, min(clients, room - 1))
    cmd = ["pgbench", "-n", "-c", str(clients), "-j", "2", "-T", str(seconds), "-f", script]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=False)
    os.unlink(script)
    forget_floor_rows(url, world.mission_id, stations[0][0], since)
    for line in out.stdout.splitlines():
        if line.startswith("tps = "):
            return float(line.split()[2])
    log(f"pgbench failed: {out.stderr.strip()[:500]}")
    return float("nan")


# --- main -------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--stations", type=int, default=20_000)
    ap.add_argument("--observers", type=int, default=3_000)
    ap.add_argument("--checklists", type=int, default=100_000, help="in the database at the end")
    ap.add_argument("--http-seconds", type=int, default=60, help="how long wrk posts checklists")
    ap.add_argument("--http-rate", type=int, default=1_000, help="bodies made per second of wrk")
    ap.add_argument("--connections", type=int, default=32, help="concurrent wrk clients")
    ap.add_argument(
        "--paced-rate",
        type=int,
        default=500,
        help="then post this many checklists a second, evenly (the intake target; 0: skip)",
    )
    ap.add_argument("--paced-seconds", type=int, default=30, help="how long the paced run lasts")
    ap.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    ap.add_argument("--port", type=int, default=8311)
    ap.add_argument("--database", default="pollcheck_bench")
    ap.add_argument("--pgbench-seconds", type=int, default=20)
    ap.add_argument(
        "--reuse-database",
        action="store_true",
        help="keep the mission an earlier run left in --database (migrated, with new tokens) "
        "rather than seed one: a run at a million checklists without loading them again. "
        "The run works on a copy (--database with `_run` added, dropped at its end), so "
        "that every run starts from the same mission",
    )
    ap.add_argument(
        "--in-place",
        action="store_true",
        help="with --reuse-database: run on --database itself, which keeps what the run "
        "posts (the mission grows by some 20,000 checklists a run)",
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--profile", help="record the server with py-spy into this file (raw stacks)")
    ap.add_argument(
        "--fold-in-api",
        action="store_true",
        help="fold in the API workers' background threads instead of a `pollcheck fold` "
        "process of its own (the deployment of docker-compose.yml)",
    )
    ap.add_argument(
        "--views-only",
        action="store_true",
        help="seed and fold --checklists, time each view computed afresh, and stop (no "
        "server, no wrk): how the views grow with the mission, e.g. at 1,000,000",
    )
    args = ap.parse_args()

    if shutil.which("wrk") is None and not args.views_only:
        print(WRK_HINT, file=sys.stderr)
        raise SystemExit(2)
    if shutil.which("pgbench") is None and not args.views_only:
        print("pgbench is missing: apt-get install -y postgresql-client", file=sys.stderr)
        raise SystemExit(2)
    sys.path.insert(0, str(ROOT))
    rng = random.Random(args.seed)
    yardstick = yardstick_ms()
    log(f"CPU yardstick: {yardstick:.0f} ms")
    sets = variants(rng)
    http_bodies = args.http_seconds * args.http_rate
    # Intake over HTTP adds to a database already at national scale: most checklists are
    # loaded first, so that findings are timed against about `--checklists` of them.
    n_pre = max(0, args.checklists - min(http_bodies, args.checklists // 10))
    if args.views_only:
        n_pre = args.checklists
    if args.reuse_database:
        url = f"postgresql://postgres@127.0.0.1:5432/{args.database}"
        if not (args.in_place or args.views_only):
            # Runs that reused the database itself each left their checklists in it, so
            # that runs meant to be compared (code before and after, alternated) measured
            # missions 20,000 checklists apart (one day's runs: 107,000 to 295,000).
            t0 = time.time()
            copy = f"{args.database}_run"
            url = recreate_database(copy, template=args.database)
            atexit.register(drop_database, copy)
            log(f"database {copy}: a copy of {args.database} in {time.time() - t0:.1f} s")
        world = reuse(url)
        n_pre = 0
        log(f"database {args.database}: reusing mission {world.mission_id}")
    else:
        url = recreate_database(args.database)
        log(f"database {args.database}: {args.stations:,} stations, {args.observers:,} observers")
        world = seed(url, args.stations, args.observers, rng)
    t0 = time.time()
    preload(url, world, sets, n_pre, rng)
    preload_s = time.time() - t0
    log(f"preloaded {n_pre:,} checklists in {preload_s:.0f} s; folding them")
    from api.services.findings import fold

    t0 = time.time()
    folded = 0  # with --reuse-database: whatever an earlier run left unfolded
    while (result := fold.run_once()).changes:
        folded += result.checklists
        fold.vacuum_tallies()  # as the fold process does while the tallies change
    initial_fold_s = time.time() - t0
    log(f"initial fold of {folded:,} checklists: {initial_fold_s:.1f} s")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")  # as autovacuum would once the fold filled its tables
    if args.views_only:
        views_ms = view_costs(world.mission_id)
        log(f"views computed afresh (ms): {views_ms}")
        queue_ms = queue_costs(world.mission_id)
        log(f"review queue pages (ms): {queue_ms}")
        print(
            json.dumps(
                {
                    "checklists": stored_checklists(url, world.mission_id),
                    "preload_s": round(preload_s, 1),
                    "initial_fold_s": round(initial_fold_s, 1),
                    "initial_fold_per_s": round(folded / initial_fold_s, 1) if folded else None,
                    "views_ms": views_ms,
                    "queue_ms": queue_ms,
                    "cpus": os.cpu_count(),
                    "cpu_yardstick_ms": round(yardstick),
                }
            )
        )
        return

    work = Path(tempfile.mkdtemp(prefix="pollcheck-bench-"))
    bodies = work / "bodies.tsv"
    now = datetime.now(UTC) - timedelta(minutes=1)
    paced_bodies = work / "paced.tsv"
    paced_n = int(args.paced_rate * args.paced_seconds * 1.2)
    for path, ks in ((bodies, range(http_bodies)), (paced_bodies, range(paced_n))):
        with path.open("wb") as f:
            for k in ks:
                token, item, _, _ = body(rng, world, sets, k * 7 + 3, now)
                f.write(token.encode() + b"\t" + orjson.dumps(item) + b"\n")
    (work / "intake.lua").write_text(LUA)
    (work / "paced.lua").write_text(LUA + PACED_LUA)

    server = start_server(url, args.port, args.workers, fold_process=not args.fold_in_api)
    log(f"API up on :{args.port} with {args.workers} workers; wrk for {args.http_seconds} s")
    samples = Samples()
    stop = threading.Event()
    pollers = poll(stop, samples, args.port, world, url, server.pid)
    spy = None
    if args.profile:
        spy = subprocess.Popen(
            # --gil: only samples that hold the GIL, i.e. where the server spends its CPU.
            ["py-spy", "record", "-r", "50", "--gil", "-f", "raw", "-o", args.profile,
             "--subprocesses", "--pid", str(server.pid), "-d", str(args.http_seconds)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    # The CPU split is read while wrk still runs: a process that has ended is gone from /proc.
    cpu: list[Any] = []
    folders: set[str] = set()

    def last_cpu_snapshot() -> None:
        folders.update(fold_backends(url))  # the fold's pooled sessions live on
        cpu.append(cpu_snapshot())

    timer = threading.Timer(args.http_seconds - 0.5, last_cpu_snapshot)
    cpu.append(cpu_snapshot())
    timer.start()
    paced: dict[str, Any] | None = None
    try:
        start = time.time()
        w = wrk_run(work / "intake.lua", args.port, bodies, args.connections, args.http_seconds)
        end = time.time()
        timer.join()
        # Staleness is measured until the findings count every checklist stored, so that a
        # fold still behind when wrk stops is measured to the end.
        caught_up = catch_up(samples, after=end)
        if spy is not None:
            spy.wait(timeout=60)
        if args.paced_rate > 0:
            log(f"paced intake: {args.paced_rate} checklists a second for {args.paced_seconds} s")
            p_start = time.time()
            p = wrk_run(
                work / "paced.lua", args.port, paced_bodies, args.connections,
                args.paced_seconds, args.paced_rate,
            )  # fmt: skip
            p_end = time.time()
            p_caught_up = catch_up(samples, after=p_end)
            p_during = findings_during(samples, p_start, p_end)
            p_intake, p_errors = intake_of(p)
            paced = {
                "paced_rate": args.paced_rate,
                "paced_intake_per_s": round(p_intake, 1),
                "paced_intake_p95_ms": round(p["p95_us"] / 1000, 1),
                "paced_intake_errors": p_errors,
                "paced_findings_p50_ms": round(pct(p_during, 0.5), 1),
                "paced_findings_p95_ms": round(pct(p_during, 0.95), 1),
                "paced_max_staleness_s": round(staleness(samples, p_start, p_caught_up), 2),
                "paced_max_said_lag_s": said_lag(samples, p_start, p_caught_up),
                "paced_views_ms": views_during(samples, p_start, p_end),
            }
    finally:
        stop.set()
        for t in pollers:
            t.join()
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    total = stored_checklists(url, world.mission_id)
    with psycopg.connect(url) as conn:
        answers = conn.execute(
            "SELECT count(*) FROM answer a JOIN checklist c ON c.id = a.checklist_id "
            "WHERE c.mission_id = %s",
            (world.mission_id,),
        ).fetchone()
        # The tallies are rewritten by every fold: without autovacuum they grow all day.
        vacuum = conn.execute(
            "SELECT current_setting('autovacuum'),"
            " pg_total_relation_size('finding_tally') / 1048576.0"
        ).fetchone()
    per_checklist = (int(answers[0]) if answers else 0) / max(1, total)
    costs = view_costs(world.mission_id)
    log(f"views computed afresh (ms): {costs}")
    queue_ms = queue_costs(world.mission_id)
    log(f"review queue pages (ms): {queue_ms}")
    log(f"pgbench: one checklist of {round(per_checklist)} answers per transaction")
    floor = pgbench_floor(url, world, round(per_checklist), args.connections, args.pgbench_seconds)

    intake, errors = intake_of(w)
    during = findings_during(samples, start, end)
    result = {
        "checklists": total,
        "answers_per_checklist": round(per_checklist, 1),
        "http_checklists": w["created"],
        "intake_per_s": round(intake, 1),
        "intake_p50_ms": round(w["p50_us"] / 1000, 1),
        "intake_p95_ms": round(w["p95_us"] / 1000, 1),
        "intake_p99_ms": round(w["p99_us"] / 1000, 1),
        "intake_errors": errors,
        "findings_requests": len(during),
        "findings_p50_ms": round(pct(during, 0.5), 1),
        "findings_p95_ms": round(pct(during, 0.95), 1),
        "findings_max_ms": round(max(during), 1) if during else None,
        "findings_304": sum(start <= t <= end for t in samples.not_modified),
        "findings_errors": samples.errors,
        "findings_max_staleness_s": round(staleness(samples, start, caught_up), 2),
        "findings_max_said_lag_s": said_lag(samples, start, caught_up),
        "peak_rss_mb": round(max(total for total, _ in samples.rss), 1) if samples.rss else None,
        "peak_worker_rss_mb": round(max(w for _, w in samples.rss), 1) if samples.rss else None,
        "db_floor_per_s": round(floor, 1),
        "intake_vs_floor": round(intake / floor, 3) if floor == floor and floor else None,
        "initial_fold_s": round(initial_fold_s, 1),
        "workers": args.workers,
        "fold_process": not args.fold_in_api,
        "connections": args.connections,
        "settings": settings_set(),
        "cpus": os.cpu_count(),
        "cpu_yardstick_ms": round(yardstick),
        "db_autovacuum": vacuum[0] if vacuum else None,
        "finding_tally_mb": round(float(vacuum[1]), 1) if vacuum else None,
        "cpu_during_intake": cpu_split(cpu[0], cpu[-1], {str(server.pid)}, folders),
        "views_ms": costs,
        "queue_ms": queue_ms,
        "views_during_intake_ms": views_during(samples, start, end),
        **(paced or {}),
    }
    log("figures:")
    for k, v in result.items():
        print(f"  {k:28} {v}")
    if during:
        log(f"findings latency mean {statistics.fmean(during):.1f} ms over {len(during)} polls")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
