"""CSV a spreadsheet opens right: formula cells neutralised, yes/no, percentages, ISO times,
attributes as columns, and the BOM for Excel."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from drip.reports.export import csv_text, json_rows


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ('=HYPERLINK("http://evil.example")', '\'=HYPERLINK("http://evil.example")'),
        ("+33 1 23", "'+33 1 23"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("Zoë Müller", "Zoë Müller"),
        (-3, "-3"),  # a number stays a number
    ],
)
def test_formula_cells_are_neutralised(value: object, written: str) -> None:
    text = csv_text([{"name": value}], ["name"])
    assert list(csv.reader(io.StringIO(text, newline="")))[1] == [written]


def test_values_as_a_spreadsheet_reads_them() -> None:
    rows = [
        {
            "email": "ann@example.com",
            "behind": True,
            "open_rate_human": 0.33070866141732286,
            "at": datetime(2026, 12, 7, 7, 30, tzinfo=UTC),
            "attributes": {"Department": "=1+1", "Employee ID": "E1"},
        }
    ]
    text = csv_text(rows, ["email", "behind", "open_rate_human", "at", "attributes"], excel=True)
    assert text.startswith("\ufeff") and "\r\n" in text
    read = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"), newline="")))
    assert read == [
        {
            "email": "ann@example.com",
            "behind": "yes",
            "open_rate_human": "33.1%",
            "at": "2026-12-07T07:30:00+00:00",
            "Department": "'=1+1",
            "Employee ID": "E1",
        }
    ]


def test_json_keeps_objects_as_objects() -> None:
    assert json_rows([{"detail": '{"option": 1}', "reply": "250 ok {x}"}]) == [
        {"detail": {"option": 1}, "reply": "250 ok {x}"}
    ]
