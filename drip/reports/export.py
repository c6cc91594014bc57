"""Rows as a spreadsheet opens them right: CSV with formula cells neutralised, yes/no, ISO dates,
rates as percentages with one decimal, person attributes as their own columns, CRLF line ends,
and an optional UTF-8 BOM (--excel) so Excel reads accents; JSON keeps objects as objects.

Formula escaping: a text cell that starts with =, +, -, @, a tab or a carriage return is what
spreadsheets run as a formula (CSV injection); it is written with a leading apostrophe, which
Excel, LibreOffice and Google Sheets show as text. Numbers stay numbers (-3 is not escaped)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
BOM = "\ufeff"
# Fields that hold a rate (a share of 1) and are written as a percentage.
RATES = frozenset(
    {"open_rate_human", "open_rate_all", "average_progress", "open_rate", "progress_rate"}
)
ATTRIBUTES = "attributes"


def neutralise(text: str) -> str:
    """A text cell a spreadsheet will not run as a formula."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def cell(key: str, value: Any) -> str | int | float:
    """One value as a CSV cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key in RATES and isinstance(value, int | float):
        return f"{value * 100:.1f}%"
    if isinstance(value, int | float):
        return value
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return neutralise(json.dumps(value, ensure_ascii=False, sort_keys=True))
    return neutralise(str(value))


def attribute_names(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every attribute key in the rows, in first-seen order."""
    names: dict[str, None] = {}
    for row in rows:
        for key in row.get(ATTRIBUTES) or {}:
            names.setdefault(key, None)
    return list(names)


def csv_text(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, *, excel: bool = False
) -> str:
    """Rows as CSV with a header line; an `attributes` column becomes one column per key."""
    fields = list(columns or (list(rows[0]) if rows else []))
    extra = attribute_names(rows) if ATTRIBUTES in fields else []
    if ATTRIBUTES in fields:
        fields.remove(ATTRIBUTES)
    extra = [name for name in extra if name not in fields]
    buffer = io.StringIO()
    # CRLF line ends (RFC 4180) also make the writer quote a cell holding a bare CR or LF.
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([neutralise(f) for f in [*fields, *extra]])
    for row in rows:
        attributes = row.get(ATTRIBUTES) or {}
        writer.writerow(
            [cell(k, row.get(k)) for k in fields] + [cell(k, attributes.get(k)) for k in extra]
        )
    return (BOM if excel else "") + buffer.getvalue()


def json_value(value: Any) -> Any:
    """A value for JSON: times in ISO, a JSON object held in a string parsed back to an object."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def json_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows with every value ready for json.dumps."""
    return [{k: json_value(v) for k, v in row.items()} for row in rows]


def table_text(key: str, value: Any) -> str:
    """A value as a terminal table shows it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key in RATES and isinstance(value, int | float):
        return f"{value * 100:.1f}%"
    if isinstance(value, Mapping):
        return "; ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)
