"""Read a people CSV (email,name[,timezone]): every problem as FILE:LINE, nothing half-read."""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from email_validator import EmailNotValidError, validate_email

from drip.errors import InputError
from drip.schedule import parse_timezone

MAX_NAME = 200


@dataclass(frozen=True)
class Row:
    """One valid CSV row."""

    line: int
    email: str
    name: str
    timezone: str | None


def valid_address(value: str) -> str:
    """The address in the form drip stores and sends: lower case, its domain in ASCII (an
    internationalised domain as punycode, which needs no SMTPUTF8); InputError otherwise."""
    problem, address = _address(value.strip())
    if problem:
        raise InputError([problem])
    return address


def _address(value: str) -> tuple[str, str]:
    """(problem, address): the address as stored and sent, or why it cannot be."""
    try:
        checked = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        return f"'{value}' is not a valid e-mail address: {exc}", ""
    # ascii_email is the address with an IDN domain as punycode; None when the local part itself
    # is not ASCII, which only SMTPUTF8 can carry.
    address = (checked.ascii_email or "").lower()
    if not address or not address.isascii():
        return (
            f"'{value}' needs SMTPUTF8 (a non-ASCII name before the @), which drip does not "
            "send; use an ASCII address"
        ), ""
    return "", address


def name_problem(name: str) -> str | None:
    """Why a display name cannot go into a From/To header as it is, or None."""
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in name):
        return f"the name {name!r} holds a line break or control character; remove it"
    if "=?" in name:
        return f"the name {name!r} holds an encoded word ('=?'); write the name as plain text"
    if len(name) > MAX_NAME:
        return f"the name is {len(name)} characters; shorten it to {MAX_NAME}"
    return None


def read_people_csv(path: Path, progress: Callable[[int, int], None] | None = None) -> list[Row]:
    """Parse and validate a people CSV; raise InputError with every FILE:LINE problem."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError([f"{path}: cannot read: {exc.strerror}"]) from None
    if b"\x00" in raw[:4096]:
        raise InputError(
            [f"{path}:1: this is a binary file, not CSV; export the sheet as CSV (UTF-8)"]
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(
            [f"{path}:{line}: not UTF-8 (byte 0x{raw[exc.start]:02x}); save the file as CSV UTF-8"]
        ) from None
    if not text.strip():
        raise InputError(
            [
                f"{path}:1: the file is empty; the first line must be a header like email,name,timezone"
            ]
        )
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except csv.Error as exc:
        raise InputError(
            [f"{path}:1: {exc}; the first line must be a header like email,name"]
        ) from None
    if "email" not in header:
        shown = ",".join(header)[:80]
        raise InputError(
            [
                f"{path}:1: no 'email' column in the header '{shown}'; the first line must name the columns, like email,name,timezone"
            ]
        )
    for column in ("email", "name", "timezone"):
        if header.count(column) > 1:
            raise InputError([f"{path}:1: the column '{column}' appears twice in the header"])
    index: dict[str, int] = {
        name: header.index(name) for name in ("email", "name", "timezone") if name in header
    }
    problems: list[str] = []
    rows: list[Row] = []
    seen: dict[str, int] = {}
    total = text.count("\n")
    records: list[tuple[int, list[str]]] = []
    # Each record is named by its first line: a quoted line break makes it span several.
    start = reader.line_num + 1
    try:
        for record in reader:
            records.append((start, record))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise InputError(
            [
                f"{path}:{start}: {exc}; check the quotes in the record starting on that line, or export the sheet again"
            ]
        ) from None
    for line, record in records:
        if progress is not None and line % 500 == 0:
            progress(line, total)
        if not any(cell.strip() for cell in record):
            continue

        def cell(column: str, record: list[str] = record) -> str:
            i = index.get(column)
            return record[i].strip() if i is not None and i < len(record) else ""

        address, name, zone = cell("email"), cell("name"), cell("timezone")
        if not address:
            problems.append(f"{path}:{line}: the email is empty; fill it in or delete the row")
            continue
        problem, address = _address(address)
        if problem:
            problems.append(f"{path}:{line}: {problem}")
            continue
        bad_name = name_problem(name)
        if bad_name:
            problems.append(f"{path}:{line}: {bad_name}")
            continue
        if zone:
            try:
                zone = parse_timezone(zone)
            except InputError as exc:
                problems.append(f"{path}:{line}: {exc.problems[0]}")
                continue
        if address in seen:
            problems.append(
                f"{path}:{line}: '{address}' is already on line {seen[address]}; remove the duplicate"
            )
            continue
        seen[address] = line
        rows.append(Row(line, address, name, zone or None))
    if problems:
        raise InputError(problems)
    if not rows:
        raise InputError([f"{path}:2: the file has a header but no people"])
    return rows
