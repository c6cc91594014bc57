"""A cohort report as plain rows and documents for the exporters: its sections, JSON, CSV, and a breakdown by attribute."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import datetime
from typing import Any

from drip.errors import DripError
from drip.reports.export import csv_text
from drip.reports.model import (
    CohortReport,
    PersonRow,
)


def as_dict(row: Any) -> dict[str, Any]:
    """A report row as a plain dict with times in ISO 8601 (shallow: `dataclasses.asdict`
    deep-copies every value, which was most of a 100,000-person CSV export)."""
    values = ((f.name, getattr(row, f.name)) for f in fields(row))
    return {
        k: v.isoformat() if isinstance(v, datetime) else dict(v) if isinstance(v, dict) else v
        for k, v in values
    }


SECTIONS = ("summary", "lessons", "people", "activity", "progress")


def section_rows(report: CohortReport, section: str) -> list[dict[str, Any]]:
    """One section of a report as plain rows (for tables and CSV)."""
    if section == "summary":
        return [as_dict(report.summary)]
    if section == "lessons":
        return [as_dict(row) for row in report.lessons]
    if section == "people":
        return [as_dict(row) for row in report.people]
    if section == "activity":
        return [as_dict(row) for row in report.activity]
    if section == "progress":
        return [{"lessons_sent": n, "people": k} for n, k in report.progress]
    raise ValueError(f"unknown section {section!r}")


def report_json(report: CohortReport) -> str:
    """The whole report as a JSON document."""
    document: dict[str, Any] = {
        "cohort": report.summary.cohort,
        "generated_at": report.generated_at.isoformat(),
        "mode": "human" if report.human_only else "all",
        "notes": report.notes,
    }
    document.update({section: section_rows(report, section) for section in SECTIONS})
    document["summary"] = document["summary"][0]
    return json.dumps(document, indent=2, ensure_ascii=False)


def rows_csv(
    rows: list[dict[str, Any]], columns: list[str] | None = None, *, excel: bool = False
) -> str:
    """Rows as CSV text with a header line, formula cells neutralised (see reports.export)."""
    return csv_text(rows, columns, excel=excel)


def attribute_key(people: list[PersonRow], name: str) -> str | None:
    """The attribute key the people use for `name`, matched without regard to case."""
    wanted = name.strip().casefold()
    for person in people:
        for key in person.attributes:
            if key.casefold() == wanted:
                return key
    return None


def breakdown(report: CohortReport, name: str) -> list[dict[str, Any]]:
    """The cohort's figures per value of one attribute (like Department), largest group first."""
    key = attribute_key(report.people, name)
    if key is None:
        known = sorted({k for p in report.people for k in p.attributes})
        raise DripError(
            f"no person in '{report.summary.cohort}' has the attribute '{name}'; "
            f"attributes: {', '.join(known) or 'none (enrol from a file with more columns)'}"
        )
    groups: dict[str, list[PersonRow]] = {}
    for person in report.people:
        groups.setdefault(person.attributes.get(key) or "(none)", []).append(person)
    total = report.summary.course_lessons
    rows = []
    for value, people in sorted(groups.items(), key=lambda g: (-len(g[1]), g[0])):
        sent = sum(p.lessons_sent for p in people)
        opened = sum(p.opened for p in people)
        statuses = [p.status for p in people]
        rows.append(
            {
                name: value,
                "people": len(people),
                "active": statuses.count("active"),
                "completed": statuses.count("completed"),
                "unsubscribed": statuses.count("unsubscribed"),
                "lessons_sent": sent,
                "opened": opened,
                "open_rate_human" if report.human_only else "open_rate_all": opened / sent
                if sent
                else 0.0,
                "confirmed": sum(p.confirmed for p in people),
                "average_progress": sent / (len(people) * total) if total else 0.0,
                "behind": sum(p.behind for p in people),
            }
        )
    return rows
