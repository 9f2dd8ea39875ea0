"""Tables to bytes, a chunk at a time: CSV, XLSX and GeoJSON.

CSV streams: UTF-8 with a byte order mark (so Excel reads Cyrillic and other scripts
right), the title line first, every field quoted (so a `;` or tab inside a cell never
starts a new cell in a semicolon or tab reading), every text cell through `safe_cell`.

XLSX goes through a temporary file: an XLSX is a zip whose parts are only complete when the
last row is in, and XlsxWriter, the writer used, assembles the zip when the workbook is
closed. In `constant_memory` mode it writes each row to a temporary file as it comes, so
memory stays flat; the file is then sent in chunks and deleted. While the rows are written
the generator yields empty chunks, so a client that has gone away stops the work.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime, time
from typing import Any

import orjson
import xlsxwriter

from api.kit.spreadsheet import safe_cell
from api.services.exports.common import BOOL, DATETIME, FLAG, FLOAT, INT, TEXT, TIME, Export, Table

CHUNK = 256 * 1024  # each chunk is a trip through the thread pool and the middlewares
BOM = "\ufeff"
CSV_DATETIME = "%Y-%m-%d %H:%M:%S"
YIELD_EVERY = 2000  # rows between the XLSX writer's empty chunks


def csv_value(value: Any) -> Any:
    """A cell as the CSV shows it: text made safe, 1/0 for yes/no, dates and times in a
    form every spreadsheet reads, numbers as they are."""
    if value.__class__ is str:
        return safe_cell(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return 1 if value else 0
    if isinstance(value, datetime):
        return value.isoformat(" ", "seconds")[:19]  # as CSV_DATETIME, at half the cost
    if isinstance(value, time):
        return value.strftime("%H:%M")
    return value


def _csv_text(value: Any) -> Any:
    return safe_cell(value) if value.__class__ is str else csv_value(value)


def _csv_flag(value: Any) -> Any:
    return 1 if value is True else 0 if value is False else csv_value(value)


def _csv_number(value: Any) -> Any:
    return value if value.__class__ is int or value.__class__ is float else csv_value(value)


def _csv_datetime(value: Any) -> Any:
    if value.__class__ is datetime:
        return value.isoformat(" ", "seconds")[:19]
    return csv_value(value)


# What each column type needs before csv.writer (a row has a hundred cells or more: the
# cheapest path per column, picked once). 0/1 flags go as they are.
_CSV_CONVERT = {
    TEXT: _csv_text,
    BOOL: _csv_flag,
    INT: _csv_number,
    FLOAT: _csv_number,
    DATETIME: _csv_datetime,
    TIME: csv_value,
}


def csv_chunks(
    export: Export, table: Table | None = None, progress: Callable[[int], None] | None = None
) -> Iterator[bytes]:
    """The export's main table (or `table`) as CSV: the title line, the header, the rows."""
    table = table or export.tables[0]
    buf = io.StringIO()
    w = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    buf.write(BOM)
    w.writerow([safe_cell(export.title)])
    w.writerow([c.name for c in table.columns])
    # Only the cells that may need it are converted (`Column.plain`); None is an empty cell.
    convert = [
        (i, _CSV_CONVERT.get(c.type, csv_value))
        for i, c in enumerate(table.columns)
        if not c.plain and c.type != FLAG
    ]
    n = 0
    for row in table.rows:
        cells = list(row)
        for i, to_csv in convert:
            v = cells[i]
            if v is not None:
                cells[i] = to_csv(v)
        w.writerow(cells)
        n += 1
        if buf.tell() >= CHUNK:
            if progress:
                progress(n)
                n = 0
            yield buf.getvalue().encode()
            buf.seek(0)
            buf.truncate()
    if progress and n:
        progress(n)
    yield buf.getvalue().encode()


def xlsx_chunks(
    export: Export, progress: Callable[[int], None] | None = None, tmpdir: str | None = None
) -> Iterator[bytes]:
    """Every table of the export as a sheet of one workbook (see the module docstring)."""
    fd, path = tempfile.mkstemp(suffix=".xlsx", prefix="pollcheck-export-", dir=tmpdir)
    os.close(fd)
    try:
        book = xlsxwriter.Workbook(
            path,
            {
                "constant_memory": True,
                "tmpdir": tmpdir or tempfile.gettempdir(),
                "strings_to_numbers": False,
                "strings_to_formulas": False,
                "strings_to_urls": False,
                "use_zip64": True,
            },
        )
        bold = book.add_format({"bold": True})
        formats = {
            DATETIME: book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"}),
            TIME: book.add_format({"num_format": "hh:mm"}),
        }
        for index, table in enumerate(export.tables):
            sheet = book.add_worksheet(table.name[:31])
            sheet.write_string(0, 0, safe_cell(export.title))
            for col, column in enumerate(table.columns):
                sheet.write_string(1, col, column.name, bold)
            sheet.freeze_panes(2, 0)
            fmts = [formats.get(c.type) for c in table.columns]
            r = 2
            for row in table.rows:
                for col, value in enumerate(row):
                    _xlsx_cell(sheet, r, col, value, fmts[col])
                r += 1
                if r % YIELD_EVERY == 0:
                    if progress and index == 0:
                        progress(YIELD_EVERY)
                    yield b""
            if progress and index == 0:
                progress((r - 2) % YIELD_EVERY)
        book.close()
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk
    finally:
        os.unlink(path)


def _xlsx_cell(sheet: Any, r: int, c: int, value: Any, fmt: Any) -> None:
    if value is None:
        return
    if isinstance(value, str):
        sheet.write_string(r, c, safe_cell(value))
    elif isinstance(value, bool):
        sheet.write_number(r, c, 1 if value else 0)
    elif isinstance(value, int | float):
        sheet.write_number(r, c, value)
    elif isinstance(value, datetime):
        sheet.write_datetime(r, c, value.replace(tzinfo=None), fmt)
    elif isinstance(value, time):
        sheet.write_number(r, c, (value.hour * 60 + value.minute) / 1440, fmt)
    else:
        sheet.write_string(r, c, safe_cell(str(value)))


def geojson_chunks(
    export: Export, progress: Callable[[int], None] | None = None
) -> Iterator[bytes]:
    """A FeatureCollection (RFC 7946) of the main table's rows, which must have
    `longitude` and `latitude` columns; every other column is a property. The title and
    the filters are a foreign member, `pollcheck`, as RFC 7946 allows."""
    table = export.tables[0]
    names = [c.name for c in table.columns]
    lon, lat = names.index("longitude"), names.index("latitude")
    head = {"title": export.title, "data_version": export.data_version} | {
        k: v for k, v in export.meta.items() if isinstance(v, str | int | dict)
    }
    yield b'{"type":"FeatureCollection","pollcheck":' + orjson.dumps(head) + b',"features":['
    buf = bytearray()
    first, n = True, 0
    for row in table.rows:
        x, y = row[lon], row[lat]
        props = {
            name: _json_value(v) for i, (name, v) in enumerate(zip(names, row, strict=True))
            if i not in (lon, lat)
        }  # fmt: skip
        feature = {
            "type": "Feature",
            "geometry": (
                {"type": "Point", "coordinates": [x, y]}
                if x is not None and y is not None
                else None
            ),
            "properties": props,
        }
        if not first:
            buf += b","
        first = False
        buf += orjson.dumps(feature)
        n += 1
        if len(buf) >= CHUNK:
            if progress:
                progress(n)
                n = 0
            yield bytes(buf)
            buf.clear()
    if progress and n:
        progress(n)
    yield bytes(buf) + b"]}"


def _json_value(value: Any) -> Any:
    """Property values: text made safe too (a GeoJSON's table is opened in spreadsheets)."""
    if isinstance(value, str):
        return safe_cell(value)
    if isinstance(value, datetime | time):
        return value.isoformat()
    return value
