"""How `pollcheck serve` runs uvicorn: with a bound on the size of a request's head.

A request line and headers of 1 MB were accepted. uvicorn's h11 parser has a bound
(`h11_max_incomplete_event_size`) but the faster httptools parser, which uvicorn prefers
when it is installed, has none. `BoundedHttpToolsProtocol` counts the bytes of each
request's head as they arrive and, past the same bound, answers 431 and closes the
connection, before the head is ever read whole. Both parsers get the bound from
`POLLCHECK_MAX_HEADER_BYTES`.

The access log hides the token of an OpenRosa key path (`HideKeys`).
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

import orjson
from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from api.config import Settings


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with h11's bound on an incomplete request head."""

    _head_done = False  # the current request's headers are all in
    _head_bytes = 0  # bytes received since the current request's head began

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_done = False
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._head_done = True
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        if not self._head_done:
            self._head_bytes += len(data)
        super().data_received(data)
        limit = self.config.h11_max_incomplete_event_size
        if (
            not self._head_done
            and limit is not None
            and self._head_bytes > limit
            and not self.transport.is_closing()
        ):
            self._refuse_head(limit)

    def _refuse_head(self, limit: int) -> None:
        body = orjson.dumps(
            {
                "error": "RequestHeaderFieldsTooLarge",
                "code": "headers_too_large",
                "detail": f"the request line and headers are over {limit} bytes",
            }
        )
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + body
        )
        self.transport.close()


class HideKeys(logging.Filter):
    """Access log lines show `/key/…/` for an OpenRosa key path: the token in the path is
    an observer's credential, and logs are read by more people than tokens should be."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], _KEY_PATH.sub("/key/…/", args[2]), *args[3:])
        return True


_KEY_PATH = re.compile(r"/key/[^/?#]+/")


def log_config() -> dict[str, Any]:
    """uvicorn's logging, with the access log's key paths hidden (in every worker: uvicorn
    passes this configuration to each process it starts)."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["hide_keys"] = {"()": "api.server.HideKeys"}
    config["handlers"]["access"]["filters"] = ["hide_keys"]
    return config


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments of `uvicorn.run` that bound a request's head and keep
    tokens out of the access log."""
    return {
        "http": "api.server:BoundedHttpToolsProtocol",
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "log_config": log_config(),
    }
