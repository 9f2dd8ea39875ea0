"""Cells that a spreadsheet shows as text and never runs as a formula.

A cell that starts with `=`, `+`, `-` or `@` (or a tab or carriage return, which some
spreadsheets skip before looking) is read as a formula by Excel, LibreOffice and Google
Sheets: `=HYPERLINK(...)` in an observer's comment would be a live link in the core team's
spreadsheet. As OWASP advises, such a cell gets a leading `'`, which spreadsheets read as
"this is text".

A file is not always read with the separator it was written with: Excel in a
semicolon-locale reads a comma file with `;`, and a paste splits on tabs. Then quoting no
longer lines up and a cell may split where it holds a `;`, `,`, tab or line break: the
part after it starts a cell of its own. So a formula start right after a separator (spaces
and quotes between do not matter) gets a `'` too: `x;=1+1` becomes `x;'=1+1`. Writers of
delimited text also quote every field (`csv.QUOTE_ALL`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

# The characters a formula starts with, and their full-width forms (which Excel folds).
FORMULA_START = "=+-@\uff1d\uff0b\uff0d\uff20"
_TRIGGERS = re.escape(FORMULA_START)
_SEPARATORS = ",;\t\r\n\uff0c\uff1b"
_RISKY_FIRST = frozenset(FORMULA_START + _SEPARATORS + ' "\u00a0\u3000')
_ANY_SEPARATOR = re.compile(f"[{_SEPARATORS}]")
_AT_START = re.compile(f'^[\\s"]*[{_TRIGGERS}{_SEPARATORS}]')
_AFTER_SEPARATOR = re.compile(f'([{_SEPARATORS}][\\s"]*)(?=[{_TRIGGERS}])')


def safe_cell(value: Any) -> str:
    """The text of a cell, with a `'` wherever a spreadsheet could start a formula (None is
    an empty cell, a date or time its ISO form)."""
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    value = value if isinstance(value, str) else str(value)
    if not value:
        return value
    if value[0] not in _RISKY_FIRST and _ANY_SEPARATOR.search(value) is None:
        return value  # the common case, one scan in C: no cell could start with a formula
    value = _AFTER_SEPARATOR.sub(r"\1'", value)
    if _AT_START.match(value):
        return "'" + value
    return value


def safe_row(values: Iterable[Any]) -> list[str]:
    """`safe_cell` of every value of a row, for `csv.writer(...).writerow`."""
    return [safe_cell(v) for v in values]
