"""A training manager's week, driven through the CLI in-process: HR exports in (aliases, extra
columns, UTF-16, .xlsx), people moved, corrected and removed mid-course, the calendar checked
against what the dispatcher then sends day by day, and the report read back as Excel would."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook
from support import LESSONS, cli_env, make_settings, run_drip, utc

COURSE = "leading-change"
LESSON_COUNT = 20
COHORT, LATE = "Leaders Q1", "Leaders Q1 (late)"
MONDAY = utc(2026, 12, 7)

HR_CSV = (
    "Employee ID,Full Name,Email Address,Department,Manager,Location,Time Zone,Start\n"
    "E100,Ann Lee,Ann.Lee@Example.com,Finance,Pat Doe,London,GMT Standard Time,2026-01-05\n"
    "E101,Bob Stone,bob@example.com,Développement,Pat Doe,New York,Eastern Standard Time,2026-02-01\n"
    'E102,Zoë Müller,zoe@example.com,"=HYPERLINK(""http://evil.example"",""x"")",Pat Doe,Paris,,2026-03-01\n'
)
HR_UTF16 = (
    "Work Email\tFirst Name\tLast Name\tTime Zone\tDepartment\n"
    "carl@example.com\tCarl\tBerg\tEurope/Paris\tFinance\n"
    "dana@example.com\tDana\tCruz\tUTC\tDéveloppement\n"
)


def make_course(root: Path) -> Path:
    """A 20-lesson course built from the sample's first lesson."""
    folder = root / COURSE
    folder.mkdir(parents=True)
    (folder / "course.yml").write_text('title: "Leading change"\n', encoding="utf-8")
    sample = (LESSONS / "sample" / "01-what-a-drip-course-is.md").read_text(encoding="utf-8")
    for n in range(1, LESSON_COUNT + 1):
        text = sample.replace('title: "What a drip course is"', f'title: "Step {n}"')
        (folder / f"{n:02d}-step-{n}.md").write_text(text, encoding="utf-8")
    return root


def lesson(index: int) -> str:
    return f"step-{index + 1}"


def hr_xlsx(path: Path) -> Path:
    book = Workbook()
    sheet = book.active
    sheet.append(["E-mail", "Display Name", "TZ", "Department", "Employee ID"])
    sheet.append(["eve@example.com", "Eve Adams", "W. Europe Standard Time", "+Sales", 104])
    sheet.append(["finn@example.com", "Finn Obi", "America/New_York", "Finance", 105])
    book.save(path)
    return path


@pytest.fixture
def drip(tmp_path: Path, db_url: str) -> Any:
    lessons = make_course(tmp_path / "lessons")
    env = cli_env(make_settings(tmp_path, db_url, lessons_dir=str(lessons)))

    def call(*args: str, now: datetime | None = None, ok: bool = True) -> Any:
        prefix = ["--now", now.isoformat()] if now else []
        result = run_drip([*prefix, *args], env)
        if ok:
            assert result.returncode == 0, result.stderr + result.stdout
        return result

    return call


def calendar(drip: Any, cohort: str, day: datetime) -> set[tuple[str, str, str]]:
    rows = json.loads(
        drip("cohort", "calendar", cohort, "--days", "1", "--format", "json", now=day).stdout
    )
    return {(r["utc"], r["email"], r["lesson"]) for r in rows}


def send_day(
    drip: Any, planned: set[tuple[str, str, str]], day: datetime
) -> set[tuple[str, str, str]]:
    """Run a pass at every planned moment of the day, and one at its end; what went out."""
    sent = set()
    for moment in sorted({datetime.fromisoformat(at) for at, _, _ in planned}):
        rows = json.loads(drip("send-due", "--format", "json", now=moment).stdout)
        sent |= {
            (moment.isoformat(), r["email"], r["lesson"]) for r in rows if r["outcome"] == "sent"
        }
    late = json.loads(
        drip("send-due", "--format", "json", now=day + timedelta(hours=23, minutes=59)).stdout
    )
    assert late == []  # nothing the calendar did not show
    return sent


def test_a_managers_week(drip: Any, tmp_path: Path) -> None:
    for name, send_time in ((COHORT, "07:30"), (LATE, "09:00")):
        drip("cohort", "create", name, "--course", COURSE, "--start", "2026-12-07",
             "--timezone", "Europe/London", "--send-time", send_time, now=MONDAY - timedelta(days=3))  # fmt: skip
    hr = tmp_path / "hr.csv"
    hr.write_text(HR_CSV, encoding="utf-8")
    unicode_text = tmp_path / "hr-unicode.txt"
    unicode_text.write_bytes(HR_UTF16.encode("utf-16"))  # Excel's "Unicode Text": BOM, tabs
    workbook = hr_xlsx(tmp_path / "hr.xlsx")

    friday = MONDAY - timedelta(days=3)
    dry = drip("enroll", COHORT, str(hr), "--dry-run", now=friday)
    assert "would enrol 3 of 3 people in 'Leaders Q1' (3 new" in dry.stdout
    assert (
        "kept as attributes of each person (in every export): Employee ID, Department, Manager, Location, Start"
        in dry.stdout
    )
    assert (
        "1 people have no timezone and get the cohort's 07:30 in Europe/London (zoe@example.com)"
        in dry.stderr
    )
    assert (
        json.loads(drip("people", "list", "--format", "json").stdout) == []
    )  # a dry run writes nothing

    for path in (hr, unicode_text, workbook):
        drip("enroll", COHORT, str(path), now=friday)
    people = {p["email"]: p for p in json.loads(drip("people", "list", "--format", "json").stdout)}
    assert sorted(people) == [
        "ann.lee@example.com", "bob@example.com", "carl@example.com", "dana@example.com",
        "eve@example.com", "finn@example.com", "zoe@example.com",
    ]  # fmt: skip
    assert people["bob@example.com"]["attributes"] == {
        "Employee ID": "E101", "Department": "Développement", "Manager": "Pat Doe",
        "Location": "New York", "Start": "2026-02-01",
    }  # fmt: skip
    assert people["carl@example.com"]["name"] == "Carl Berg"
    assert people["eve@example.com"]["attributes"] == {"Department": "+Sales", "Employee ID": "104"}
    shown = drip("people", "show", "bob@example.com").stdout
    assert "timezone America/New_York" in shown and "Department: Développement" in shown
    assert "timezone Europe/Berlin" in drip("people", "show", "eve@example.com").stdout

    show = drip("cohort", "show", COHORT, now=friday).stdout
    assert "start 2026-12-07, expected end 2027-01-01" in show  # 20 weekdays

    received: dict[str, list[str]] = {}
    for n in range(5):
        day = MONDAY + timedelta(days=n)
        if n == 2:  # Wednesday morning, before anyone's lesson: the changes of the week
            drip("people", "move", "carl@example.com", "--to", LATE, now=day)
            drip("people", "set", "dana@example.com", "--email", "dana.cruz@example.com", now=day)
            drip("people", "remove", "finn@example.com", now=day)
        planned = calendar(drip, COHORT, day) | calendar(drip, LATE, day)
        sent = send_day(drip, planned, day)
        assert sent == planned, f"day {n}"
        for _, email, slug in sorted(sent):
            received.setdefault(email, []).append(slug)

    first_five = [lesson(i) for i in range(5)]
    assert received["ann.lee@example.com"] == first_five
    assert (
        received["carl@example.com"] == first_five
    )  # moved: same sequence, the late cohort's 09:00
    assert received["dana@example.com"] == first_five[:2]
    assert received["dana.cruz@example.com"] == first_five[2:]  # history and next lesson intact
    assert received["finn@example.com"] == first_five[:2]  # removed on Wednesday
    carl = drip("cohort", "calendar", LATE, "--person", "carl@example.com", "--days", "3",
                "--format", "json", now=MONDAY + timedelta(days=7)).stdout  # fmt: skip
    assert [(r["local_time"], r["timezone"], r["utc"][11:16], r["lesson"], r["number"])
            for r in json.loads(carl)] == [
        ("Mon 09:00", "Europe/Paris", "08:00", lesson(5), "6 of 20"),
        ("Tue 09:00", "Europe/Paris", "08:00", lesson(6), "7 of 20"),
        ("Wed 09:00", "Europe/Paris", "08:00", lesson(7), "8 of 20"),
    ]  # fmt: skip

    timeline = json.loads(
        drip("report", "--person", "dana.cruz@example.com", "--format", "json").stdout
    )
    assert [e["kind"] for e in timeline].count("sent") == 5
    assert "e-mail changed from dana@example.com to dana.cruz@example.com" in [
        e["reason"] for e in timeline
    ]
    finn = json.loads(drip("people", "show", "finn@example.com", "--format", "json").stdout)
    assert finn[0]["status"] == "removed" and finn[0]["lessons_sent"] == 2

    export = tmp_path / "by-department.csv"
    drip(
        "report",
        COHORT,
        "--by",
        "Department",
        "--format",
        "csv",
        "--excel",
        "--output",
        str(export),
        now=MONDAY + timedelta(days=5),
    )
    raw = export.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs to read UTF-8
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    by = {r["Department"]: r for r in rows}
    assert set(by) == {
        "Finance",
        "Développement",
        '\'=HYPERLINK("http://evil.example","x")',
        "'+Sales",
    }
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert by["Finance"]["people"] == "2" and by["Finance"]["open_rate_human"] == "0.0%"

    people_csv = tmp_path / "people.csv"
    drip("report", COHORT, "--format", "csv", "--excel", "--output", str(people_csv))
    rows = list(
        csv.DictReader(io.StringIO(people_csv.read_bytes().decode("utf-8-sig"), newline=""))
    )
    zoe = next(r for r in rows if r["email"] == "zoe@example.com")
    assert zoe["name"] == "Zoë Müller" and zoe["Employee ID"] == "E102"
    assert zoe["Department"].startswith("'=HYPERLINK") and zoe["behind"] in ("yes", "no")
