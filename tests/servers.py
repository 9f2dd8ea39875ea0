"""Real servers for fault tests: a throwaway PostgreSQL cluster of the test's own (never the
shared one) and the API as a uvicorn subprocess, plus a small load generator."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not candidates:
        raise RuntimeError(f"PostgreSQL's {name} is not installed")
    return candidates[-1]


def _unprivileged_user() -> str | None:
    """PostgreSQL refuses to run as root: as root, run it as `postgres` (made if missing)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/bin/false", "postgres"],
            check=True,
        )
    return "postgres"


@dataclass
class ThrowawayPostgres:
    """A PostgreSQL cluster in a temporary folder, on a port of its own."""

    folder: Path
    port: int
    user: str | None

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"

    def dsn(self, dbname: str = "postgres") -> str:
        """The same address as libpq (psycopg, the bench's tools) takes it."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *cmd: str) -> None:
        full = ["runuser", "-u", self.user, "--", *cmd] if self.user else list(cmd)
        subprocess.run(full, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._run(
            _pg_bin("pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.folder / "log"),
            "-o",
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1",
            "-w",
            "start",
        )

    def stop(self, mode: str = "immediate") -> None:
        """`immediate` is a crash as far as clients can tell: no goodbye, WAL replay at start."""
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")


def _folder_for(prefix: str, user: str | None) -> Path:
    """A new temporary folder that `user` (PostgreSQL's, when run as root) owns."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    _give(folder, user)
    return folder


def _give(folder: Path, user: str | None) -> None:
    """Make `folder` and the files in it `user`'s (when run as root), readable by all."""
    folder.chmod(0o755)
    if user:
        info = pwd.getpwnam(user)
        for path in (folder, *folder.iterdir()):
            os.chown(path, info.pw_uid, info.pw_gid)


@contextlib.contextmanager
def _running(pg: ThrowawayPostgres) -> Iterator[ThrowawayPostgres]:
    """Start a made cluster; stop it and remove its folder afterwards."""
    try:
        pg.start()
        yield pg
    finally:
        with contextlib.suppress(Exception):
            pg.stop()
        shutil.rmtree(pg.folder, ignore_errors=True)


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    user = _unprivileged_user()
    pg = ThrowawayPostgres(_folder_for("pollcheck-pg-", user), free_port(), user)
    pg._run(_pg_bin("initdb"), "-D", str(pg.data), "-A", "trust", "-U", "postgres", "--no-sync")
    with _running(pg):
        yield pg


@contextlib.contextmanager
def throwaway_replica(primary: ThrowawayPostgres) -> Iterator[ThrowawayPostgres]:
    """A streaming replica of `primary` (`pg_basebackup -R`, so it follows the primary's
    WAL as it comes), on a port of its own, with `hot_standby_feedback` as the README
    advises for dashboards' replicas."""
    folder = _folder_for("pollcheck-replica-", primary.user)
    replica = ThrowawayPostgres(folder, free_port(), primary.user)
    replica._run(
        _pg_bin("pg_basebackup"),
        *("-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres"),
        *("-D", str(replica.data), "-R", "-X", "stream", "--no-sync", "--checkpoint=fast"),
    )
    with (replica.data / "postgresql.auto.conf").open("a") as conf:
        conf.write("hot_standby_feedback = on\n")
    with _running(replica):
        yield replica


def _pgbouncer() -> str:
    return shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def pgbouncer_installed() -> bool:
    return Path(_pgbouncer()).exists()


@contextlib.contextmanager
def throwaway_pgbouncer(pg: ThrowawayPostgres, pool_size: int = 4) -> Iterator[int]:
    """PgBouncer in transaction mode in front of `pg`, on a port of its own (yielded): at
    most `pool_size` server connections per database, for many more clients.
    (`ignore_startup_parameters = options` only lets a Pollcheck without
    `POLLCHECK_DB_PGBOUNCER` connect at all, to show what then fails.)"""
    folder = Path(tempfile.mkdtemp(prefix="pollcheck-pgbouncer-"))
    port = free_port()
    (folder / "users.txt").write_text('"postgres" ""\n')
    (folder / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host=127.0.0.1 port={pg.port}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir = {folder}\n"
        f"auth_type = trust\nauth_file = {folder / 'users.txt'}\nadmin_users = postgres\n"
        f"pool_mode = transaction\ndefault_pool_size = {pool_size}\nmax_client_conn = 1000\n"
        "ignore_startup_parameters = options\n"
        f"logfile = {folder / 'pgbouncer.log'}\n"
    )
    _give(folder, pg.user)
    command = [_pgbouncer(), str(folder / "pgbouncer.ini")]
    process = subprocess.Popen(
        ["runuser", "-u", pg.user, "--", *command] if pg.user else command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):  # up to ~10 s to listen; not a timing assertion
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if process.poll() is not None:
                raise RuntimeError("PgBouncer exited at start: " + _tail(folder / "pgbouncer.log"))
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        if process.poll() is None:
            process.kill()
        shutil.rmtree(folder, ignore_errors=True)


def _tail(path: Path) -> str:
    with contextlib.suppress(OSError):
        return path.read_text()[-2000:]
    return ""


@dataclass
class ApiServer:
    process: subprocess.Popen[bytes]
    base_url: str

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def workers(self) -> list[int]:
        """The worker processes' ids (the supervisor's children), when run with workers."""
        found: list[int] = []
        for task in Path(f"/proc/{self.process.pid}/task").glob("*/children"):
            for pid in task.read_text().split():
                with contextlib.suppress(OSError):  # multiprocessing's resource tracker is not one
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                    if b"resource_tracker" not in cmdline:
                        found.append(int(pid))
        return found

    def stop(self) -> None:
        """The supervisor and its workers, gracefully; SIGKILL if they linger."""
        workers = self.workers()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def start_api(database_url: str, workers: int = 1, **env: str) -> ApiServer:
    """The API on a free loopback port; with `workers` above 1, uvicorn's supervisor and
    that many worker processes (`ApiServer.workers`)."""
    port = free_port()
    environ = os.environ | {
        "POLLCHECK_DATABASE_URL": database_url,
        "POLLCHECK_ENVIRONMENT": "test",
        "POLLCHECK_RATE_LIMIT_PER_MINUTE": "1000000",
        "POLLCHECK_EVENTS_STREAM_MAX_S": "3600",
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1"]
        + ["--port", str(port), "--log-level", "warning"]
        + (["--workers", str(workers)] if workers > 1 else []),
        cwd=ROOT,
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = ApiServer(process, f"http://127.0.0.1:{port}")
    for _ in range(300):  # up to ~30 s for the process to answer; not a timing assertion
        if process.poll() is not None:
            raise RuntimeError("the API server exited at start")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.base_url}/healthz", timeout=1).status_code == 200:
                return server
        time.sleep(0.1)
    server.kill()
    raise RuntimeError("the API server did not start")


@dataclass
class Outcome:
    checklist_id: str
    status: int | None  # None: no answer (connection refused or cut)
    retry_after: str | None = None


@dataclass
class Load:
    """Threads posting new checklists until stopped; every outcome is kept."""

    base_url: str
    token: str
    make_body: Any
    threads: int = 4
    outcomes: list[Outcome] = field(default_factory=list)
    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Load:
        for _ in range(self.threads):
            t = threading.Thread(target=self._run, daemon=True)
            t.start()
            self._workers.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._workers:
            t.join(timeout=60)

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.base_url, timeout=30, headers=headers) as client:
            while not self._stop.is_set():
                body = self.make_body()
                with self._lock:
                    self.bodies[body["id"]] = body
                try:
                    r = client.post("/checklists", json=body)
                    outcome = Outcome(body["id"], r.status_code, r.headers.get("retry-after"))
                except httpx.HTTPError:
                    outcome = Outcome(body["id"], None)
                    time.sleep(0.05)
                with self._lock:
                    self.outcomes.append(outcome)

    def count(self, predicate: Any) -> int:
        with self._lock:
            return sum(1 for o in self.outcomes if predicate(o))

    def wait_for(self, predicate: Any, at_least: int, limit_s: float = 60) -> None:
        """Wait until `at_least` outcomes match; a bound to never hang, not a speed check."""
        deadline = time.monotonic() + limit_s
        while self.count(predicate) < at_least:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"only {self.count(predicate)} of {at_least} expected outcomes; "
                    f"statuses so far: {sorted({o.status or 0 for o in self.outcomes})}"
                )
            time.sleep(0.05)

    def acknowledged(self) -> set[str]:
        return {o.checklist_id for o in self.outcomes if o.status in (200, 201)}


def stored_checklists(engine: Any) -> dict[str, int]:
    """Each stored checklist's id with its number of answer rows."""
    from sqlalchemy import text

    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT c.id, COUNT(a.checklist_id) FROM checklist c "
                "LEFT JOIN answer a ON a.checklist_id = c.id GROUP BY c.id"
            )
        ).all()
    return {str(uuid.UUID(str(r[0]))): int(r[1]) for r in rows}


def answer_rows(body: dict[str, Any]) -> int:
    """How many answer rows a checklist body makes."""
    return sum(len(v) if isinstance(v, list) else 1 for v in body["answers"].values())
