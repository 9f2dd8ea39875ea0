"""Gzip-compressed request bodies (`Content-Encoding: gzip`), for phones on 2G; and the
response side's choices that the gzip middleware does not make well (`takes_gzip`,
`gzip_stream`).

A batch of checklists is repetitive JSON and shrinks about nine times. The middleware sits
inside BodyLimit, which bounds the compressed bytes, and bounds the inflated bytes itself to
the same limit, so a small "zip bomb" is refused with 413 before it is inflated whole.
Every layer inside it sees the plain body, as if it had been sent plain.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator

from fastapi.responses import JSONResponse
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class GunzipRequest:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = [(k, v) for k, v in scope.get("headers") or []]
        encoding = next((v for k, v in headers if k == b"content-encoding"), b"").strip().lower()
        if encoding in (b"", b"identity"):
            await self.app(scope, receive, send)
            return
        if encoding != b"gzip":
            await refuse(
                send,
                415,
                "UnsupportedMediaType",
                "unsupported_encoding",
                "request bodies may be sent plain or with Content-Encoding: gzip",
            )
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away; nothing to answer
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            body = inflater.decompress(b"".join(chunks), self.max_bytes + 1)
            complete = inflater.eof and not inflater.unconsumed_tail
        except zlib.error:
            body, complete = b"", False
        if len(body) > self.max_bytes:
            await refuse(
                send,
                413,
                "PayloadTooLarge",
                "body_too_large",
                f"the request body is over {self.max_bytes} bytes once inflated",
            )
            return
        if not complete:
            await refuse(
                send, 400, "BadRequest", "bad_gzip", "the body is not complete, valid gzip"
            )
            return
        scope = dict(scope)
        scope["headers"] = [
            (k, v) for k, v in headers if k not in (b"content-encoding", b"content-length")
        ] + [(b"content-length", str(len(body)).encode())]
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def refuse(send: Send, status: int, error: str, code: str, detail: str) -> None:
    """Answer in the one error shape from a body middleware, before any route ran."""
    response = JSONResponse({"error": error, "code": code, "detail": detail}, status_code=status)
    await response({"type": "http"}, _empty, send)


async def _empty() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def takes_gzip(request: Request) -> bool:
    """Does the client accept gzip: `gzip`, else `*`, with a q above 0?"""
    weights: dict[str, float] = {}
    for part in request.headers.get("accept-encoding", "").split(","):
        coding, _, params = part.partition(";")
        q = params.strip().lower().replace(" ", "")
        try:
            weights[coding.strip().lower()] = float(q[2:]) if q.startswith("q=") else 1.0
        except ValueError:
            weights[coding.strip().lower()] = 0.0
    return weights.get("gzip", weights.get("*", 0.0)) > 0


# A large export through the gzip middleware's level 9 cost more CPU than making it: 7.4 s
# for the 71 MB CSV of 100,000 checklists (5.2 MB), against 0.22 s at level 1 (7.8 MB) and
# 3.8 s for the export itself. Level 1 keeps most of the gain for a sliver of the CPU.
STREAM_GZIP_LEVEL = 1


def negotiated(
    request: Request, chunks: Iterable[bytes], headers: dict[str, str]
) -> Iterable[bytes]:
    """A streamed file's body gzipped (`gzip_stream`) when the client takes gzip, with
    `headers` saying so. The gzip middleware leaves these media types alone
    (`main.NOT_GZIPPED`): it would compress at level 9, and ignore a `q=0`."""
    headers["Vary"] = "Accept-Encoding"
    if not takes_gzip(request):
        return chunks
    headers["Content-Encoding"] = "gzip"
    return gzip_stream(chunks)


def gzip_stream(chunks: Iterable[bytes], level: int = STREAM_GZIP_LEVEL) -> Iterator[bytes]:
    """A streamed body gzipped as it goes. Every chunk in gives a chunk out (often empty
    while zlib fills its window), so a producer that checks for a gone client between
    chunks still does."""
    z = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    for chunk in chunks:
        yield z.compress(chunk)
    yield z.flush()
