"""`pollcheck serve` bounds the size of a request's head, whichever parser uvicorn uses."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.live_server import live_server


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, int]]:
    """`pollcheck serve` on a free localhost port, as deployed (httptools, one worker)."""
    with live_server(via_cli=True, POLLCHECK_FINDINGS_FOLD_INTERVAL_S="0") as url:
        host, port = url.removeprefix("http://").split(":")
        yield host, int(port)


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


def test_the_access_log_hides_the_token_of_an_openrosa_key_path() -> None:
    import logging

    from api.config import Settings
    from api.server import HideKeys, log_config, uvicorn_options

    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("10.0.0.7:5123", "POST", "/key/pc_secret.tag/submission?x=1", "1.1", 201), None,
    )  # fmt: skip
    assert HideKeys().filter(record)
    line = record.getMessage()
    assert "pc_secret" not in line and '"POST /key/…/submission?x=1 HTTP/1.1" 201' in line
    config = uvicorn_options(Settings())["log_config"]
    assert config == log_config() and config["handlers"]["access"]["filters"] == ["hide_keys"]
    assert config["filters"]["hide_keys"]["()"] == "api.server.HideKeys"
