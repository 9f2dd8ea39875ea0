"""Cells for CSV exports that a spreadsheet shows as text and never runs as a formula.

Every CSV the service writes passes each cell through `safe_cell` (or a row through
`safe_row`). A spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` (or their
full-width forms), and one that starts with a tab or carriage return may be trimmed into
one. It also may split a file on `;` or tabs rather than commas (Excel does so by the
locale's list separator), and then a piece of a cell becomes a cell of its own: an
admin's credential label `x;=1+2;` reached the audit export as a formula that way. So the
quote mark goes before every such start: at the start of the cell, and after every comma,
semicolon, tab or line break in it (spaces between are kept), whichever separator the
reader picks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

# Cells that a spreadsheet would run as a formula (OWASP's list, plus full-width forms).
FORMULA_START = "=+-@\uff1d\uff0b\uff0d\uff20"
_LEADING = ("\t", "\r")
_AFTER_SEPARATOR = re.compile(rf"(^|[,;\t\r\n])( *)(?=[{re.escape(FORMULA_START)}])")


def safe_cell(value: Any) -> str:
    """The text of one CSV cell, with `'` before anything a spreadsheet would evaluate."""
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    text = value if isinstance(value, str) else str(value)
    text = _AFTER_SEPARATOR.sub(r"\1\2'", text)
    return "'" + text if text.startswith(_LEADING) else text


def safe_row(values: Iterable[Any]) -> list[str]:
    """`safe_cell` of every value of a row, for `csv.writer(...).writerow`."""
    return [safe_cell(v) for v in values]
