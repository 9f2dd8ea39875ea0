"""`pollcheck serve` bounds the size of a request's head, whichever parser uvicorn uses."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.live_server import ROOT
from tests.servers import free_port


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, int]]:
    """`pollcheck serve` on a free localhost port, as deployed (httptools, one worker)."""
    port = free_port()
    env = os.environ | {"POLLCHECK_FINDINGS_FOLD_INTERVAL_S": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "pollcheck serve exited"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "pollcheck serve did not answer in 60 s"
            time.sleep(0.2)
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _raw_get(host: str, port: int, header_bytes: int) -> bytes:
    """A GET /healthz with one header of this many bytes; the server's answer, raw."""
    head = (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: "
        + b"a" * header_bytes
        + b"\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection((host, port), timeout=10) as sock:
        try:
            for at in range(0, len(head), 65536):
                sock.sendall(head[at : at + 65536])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the head was all sent
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    return answer


def test_a_1_mb_request_header_is_refused_with_431(served: tuple[str, int]) -> None:
    answer = _raw_get(*served, 1_000_000)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b'"code":"headers_too_large"' in answer


def test_ordinary_headers_are_served_and_the_server_goes_on(served: tuple[str, int]) -> None:
    _raw_get(*served, 1_000_000)
    answer = _raw_get(*served, 8_000)
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
