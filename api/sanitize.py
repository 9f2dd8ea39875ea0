"""Hostile input, handled in one place: every request body is read, bounded, normalised to
Unicode NFC and stripped of control characters before any route sees it; YAML is loaded
with a bound on alias expansion. (CSV cells are made safe on the way out by
`api.kit.spreadsheet`.)
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from typing import Any
from urllib.parse import unquote

import orjson
import yaml
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import Invalid

# Generous for any honest client (the default template is ~6 levels deep, ~200 questions),
# small enough that validation of a hostile body stays cheap.
MAX_DEPTH = 32
MAX_ITEMS = 10_000  # entries of one array or keys of one object
MAX_STRING = 20_000  # characters of one string (the longest text answer is 10,000)
MAX_NODES = 200_000  # values in one document, counting YAML aliases as often as they expand
MAX_NUMBER = 2**63  # magnitude of a number: BIGINT, and what every JSON library reads alike

# C0 and C1 control characters and DEL; tab, line feed and carriage return are text.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_URL_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_TEXT_TYPES = ("text/", "application/yaml", "application/x-yaml")


class TooComplex(ValueError):
    """A document over the limits: answered with 422, nothing parsed further."""

    def __init__(self, path: list[str | int], code: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.code = code
        self.message = message

    def invalid(self) -> Invalid:
        return Invalid(
            f"the request body is too large or too deep to accept: {self.message}",
            code=self.code,
            errors=[{"path": ["body", *self.path], "code": self.code, "message": self.message}],
        )


def clean_text(text: str) -> str:
    """NFC, without control characters (tab and line breaks stay)."""
    if not text.isascii() and not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    return _CONTROL.sub("", text)


def nul_place(text: str) -> tuple[int, int] | None:
    """Line and column (from 1) of the first NUL in a text, or None. A NUL is no character of
    any CSV or YAML: it means a binary or broken file, and PostgreSQL cannot store it."""
    at = text.find("\x00")
    if at < 0:
        return None
    line_start = text.rfind("\n", 0, at) + 1
    return text.count("\n", 0, at) + 1, at - line_start + 1


def refuse_nul(text: str, where: str) -> None:
    """Raise Invalid naming the line and column of a NUL in uploaded text (`where`: the
    first part of the error's path, e.g. `csv`)."""
    place = nul_place(text)
    if place is None:
        return
    line, column = place
    raise Invalid(
        f"line {line}, column {column}: a NUL character; is this a text file?",
        code="nul_character",
        errors=[
            {
                "path": [where, line, column],
                "code": "nul_character",
                "message": f"a NUL character at line {line}, column {column}",
            }
        ],
    )


class _Walk:
    def __init__(self) -> None:
        self.nodes = 0
        self.changed = False

    def clean(self, value: Any, path: list[str | int]) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise TooComplex(path, "too_many_values", f"more than {MAX_NODES} values in all")
        if isinstance(value, str):
            if len(value) > MAX_STRING:
                raise TooComplex(path, "string_too_long", f"a string over {MAX_STRING} characters")
            cleaned = clean_text(value)
            if cleaned != value:
                self.changed = True
            return cleaned
        if isinstance(value, dict | list):
            if len(path) >= MAX_DEPTH:
                raise TooComplex(path, "too_deep", f"nested deeper than {MAX_DEPTH} levels")
            if len(value) > MAX_ITEMS:
                raise TooComplex(path, "too_many_items", f"more than {MAX_ITEMS} entries")
            if isinstance(value, list):
                return [self.clean(v, [*path, i]) for i, v in enumerate(value)]
            out = {}
            for k, v in value.items():
                key = self.clean(k, path) if isinstance(k, str) else k
                out[key] = self.clean(v, [*path, str(key)])
            if len(out) != len(value):  # two keys that differ only in their normal form
                raise TooComplex(
                    path, "duplicate_key", "two keys are the same text once normalised"
                )
            return out
        if isinstance(value, int | float) and abs(value) >= MAX_NUMBER:
            # Past 64 bits parsers disagree (orjson reads a float, Python's json an int) and
            # PostgreSQL's JSONB hands 1e29 back as an integer that orjson cannot write: one
            # such number in a mission's settings broke every findings read (500).
            raise TooComplex(path, "number_too_large", f"a number of {MAX_NUMBER} or more")
        return value


def _plain(value: dict[str, Any] | list[Any], depth: int = 0) -> bool:
    """A parsed container within the nesting and number limits. For a body that passed
    `_plain_text` no string can be too long or changed by cleaning (so no two keys become
    one), and no document holds too many values or entries: these two limits are left."""
    items: Any = value.values() if type(value) is dict else value
    if depth >= MAX_DEPTH:
        return False
    for v in items:
        kind = type(v)
        if kind is str or v is None or kind is bool:
            continue
        if kind is dict or kind is list:
            if not _plain(v, depth + 1):
                return False
        elif abs(v) >= MAX_NUMBER:  # int or float: all that JSON has left
            return False
    return True


def _plain_text(body: bytes) -> bool:
    """A JSON body too short for a string over MAX_STRING or an array of MAX_ITEMS (each
    entry takes two bytes at least), in ASCII (so in NFC), without an escape (which could
    spell a control character) or DEL (the one control character JSON lets through raw)."""
    return len(body) <= MAX_STRING and body.isascii() and b"\\" not in body and b"\x7f" not in body


def clean_document(value: Any) -> tuple[Any, bool]:
    """Bound and normalise a parsed JSON/YAML document; returns it and whether it changed."""
    walk = _Walk()
    return walk.clean(value, []), walk.changed


class _BoundedLoader(yaml.SafeLoader):
    """Safe YAML that counts what aliases expand to, so a 'billion laughs' is refused, and
    that names the place of a scalar it cannot read as what it looks like: an integer of
    5,000 digits (past Python's limit on converting them) or a date like 2026-13-45 raised
    a bare ValueError, a 500."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"cannot read {str(node.value)[:40]!r}: {str(exc).split(';')[0]}",
                node.start_mark,
            ) from exc


def load_yaml(text: str) -> Any:
    """Parse YAML (a superset of JSON) within the limits; raises yaml.YAMLError or TooComplex."""
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, {}, 0)
        data = loader.construct_document(node)
    except RecursionError as exc:
        raise TooComplex([], "too_deep", f"nested deeper than {MAX_DEPTH} levels") from exc
    finally:
        loader.dispose()
    return clean_document(data)[0]


def _expanded_size(node: yaml.Node, memo: dict[int, int], depth: int) -> int:
    if depth > MAX_DEPTH:
        raise TooComplex([], "too_deep", f"nested deeper than {MAX_DEPTH} levels")
    key = id(node)
    if key in memo:
        return memo[key]
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(n, memo, depth + 1) for n in node.value)
    elif isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            size += _expanded_size(k, memo, depth + 1) + _expanded_size(v, memo, depth + 1)
    if size > MAX_NODES:
        raise TooComplex([], "too_many_values", f"more than {MAX_NODES} values once expanded")
    memo[key] = size
    return size


_FIELDNAMES: Any = vars(csv.DictReader)["fieldnames"]  # the property CsvReader wraps


class CsvReader(csv.DictReader):
    """csv.DictReader over uploaded text: any line break inside or between fields is read,
    and a syntax error (a stray quote, a field over the csv module's limit) is a 422 that
    names the line, not a 500."""

    def __init__(self, text: str) -> None:
        refuse_nul(text, "csv")
        super().__init__(io.StringIO(text.lstrip("\ufeff"), newline=""))

    @property
    def fieldnames(self) -> Any:
        try:
            return _FIELDNAMES.fget(self)
        except csv.Error as exc:
            raise _csv_invalid(self.line_num, exc) from exc

    @fieldnames.setter
    def fieldnames(self, value: Any) -> None:
        _FIELDNAMES.fset(self, value)

    def __next__(self) -> dict[Any, Any]:
        try:
            return super().__next__()
        except csv.Error as exc:
            raise _csv_invalid(self.line_num, exc) from exc


def _csv_invalid(line: int, exc: csv.Error) -> Invalid:
    return Invalid(
        f"line {line}: the CSV cannot be read: {exc}",
        code="csv_syntax",
        errors=[{"path": ["csv", line], "code": "csv_syntax", "message": str(exc)}],
    )


def _error(exc: Invalid) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status_code)


class SanitizeBody:
    """Read each JSON or text body whole (BodyLimit, outside, bounds it), check and clean it.

    JSON bodies are parsed once here with the same parser as the routes; a body that does
    not parse is refused here, so no route ever sees JSON its parser would read otherwise.
    A clean body is passed on byte for byte; only a body that changed is re-serialised.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = _url_problem(scope)
        if refused is not None:
            await _error(refused)(scope, receive, send)
            return
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        ctype = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
        if not _is_json(ctype) and not ctype.startswith(_TEXT_TYPES):
            # Files (photos) stream through untouched: a resumable upload keeps what arrived.
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay(b"", message, receive), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            cleaned = _clean_body(body, ctype)
        except Invalid as exc:
            await _error(exc)(scope, receive, send)
            return
        if cleaned is not None:
            body = cleaned
            scope = dict(scope)
            scope["headers"] = [
                (k, v) for k, v in scope.get("headers") or [] if k != b"content-length"
            ] + [(b"content-length", str(len(body)).encode())]
        await self.app(scope, _replay(body, None, receive), send)


def _url_problem(scope: Scope) -> Invalid | None:
    """No identifier or filter has a control character in it; PostgreSQL cannot even compare
    a text with a NUL byte in it, so one in a path or query would end as a database error."""
    query = unquote(scope.get("query_string", b"").decode("latin-1"), errors="replace")
    for part, text in (("path", scope.get("path", "")), ("query", query)):
        if _URL_CONTROL.search(text):
            return Invalid(
                f"the {part} contains a control character",
                code="control_character",
                errors=[{"path": [part], "code": "control_character", "message": "not allowed"}],
            )
    return None


def _clean_body(body: bytes, ctype: str) -> bytes | None:
    """The cleaned body, or None when it is fine as it is; raises Invalid."""
    if not body:
        return None
    if _is_json(ctype):
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise Invalid(
                f"malformed JSON at line {exc.lineno}, column {exc.colno} "
                f"(character {exc.pos}): {exc.msg}",
                code="malformed_json",
                errors=[{"path": ["body"], "code": "malformed_json", "message": exc.msg}],
            ) from exc
        if isinstance(data, dict | list) and _plain_text(body) and _plain(data):
            return None  # the common case, a tenth of the cost of the walk below
        try:
            data, changed = clean_document(data)
        except TooComplex as exc:
            raise exc.invalid() from exc
        return orjson.dumps(data) if changed else None
    if ctype.startswith(_TEXT_TYPES):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Invalid(
                f"the body is not UTF-8 text (byte {exc.start})",
                code="invalid_encoding",
                errors=[{"path": ["body"], "code": "invalid_encoding", "message": str(exc)}],
            ) from exc
        refuse_nul(text, "body")  # other control characters are dropped; a NUL is no text
        cleaned = clean_text(text)
        return cleaned.encode() if cleaned != text else None
    return None


def _is_json(ctype: str) -> bool:
    return ctype == "application/json" or ctype.endswith("+json")


def _replay(body: bytes, pending: Message | None, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            if pending is not None:
                return pending
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
