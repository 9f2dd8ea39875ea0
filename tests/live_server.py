"""A real uvicorn server on a free localhost port, against the test database (for the
browser test and the resend storm, which need real sockets and real processes)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def live_server(workers: int = 1, via_cli: bool = False, **env: str) -> Iterator[str]:
    """Start `uvicorn api.main:app` (or, `via_cli`, `pollcheck serve` as deployed) with the
    test settings; yield its base URL."""
    port = free_port()
    # Real servers run as deployed: they keep event streams open (conftest ends them early
    # for in-process clients) and fold the findings in the background (in-process clients
    # fold on read), so a console hears the new findings version without asking for it.
    environ = (
        os.environ
        | {
            "POLLCHECK_RATE_LIMIT_PER_MINUTE": "0",
            "POLLCHECK_EVENTS_STREAM_MAX_S": "3600",
            "POLLCHECK_ENVIRONMENT": "development",
        }
        | env
    )
    where = ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    if via_cli:
        argv = [sys.executable, "-m", "api.cli", "serve", *where]
    else:
        argv = [sys.executable, "-m", "uvicorn", "api.main:app", *where, "--log-level", "warning"]
    proc = subprocess.Popen(argv, cwd=ROOT, env=environ)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the test server exited with {proc.returncode}")
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the test server did not answer within 60 s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
