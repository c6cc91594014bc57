"""Read a people file as HR exports it: CSV (comma, semicolon or tab; UTF-8 or UTF-16) or .xlsx,
header aliases and --map, Windows zone names, every other column kept as an attribute.

Every problem is reported as FILE:LINE (the first line of the record), and nothing is half-read."""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from drip.addresses import check_address
from drip.addresses import valid_address as valid_address  # re-exported for older callers
from drip.errors import InputError
from drip.people.zones import read_zone

MAX_NAME = 200
MAX_ATTRIBUTE = 500
FIELDS = ("email", "name", "first_name", "last_name", "timezone")
IGNORE = "ignore"

# Header spellings seen in HR exports, compared without case, spaces or punctuation.
ALIASES: dict[str, str] = {
    **dict.fromkeys(
        ["email", "emailaddress", "mail", "workemail", "workemailaddress", "businessemail",
         "primaryemail", "emailwork", "corporateemail", "officeemail"], "email"),
    **dict.fromkeys(["name", "fullname", "displayname", "employeename", "personname"], "name"),
    **dict.fromkeys(["firstname", "givenname", "forename", "first"], "first_name"),
    **dict.fromkeys(["lastname", "surname", "familyname", "last"], "last_name"),
    **dict.fromkeys(["timezone", "tz", "timezonename", "zone", "ianatimezone"], "timezone"),
}  # fmt: skip


@dataclass(frozen=True)
class Row:
    """One valid person of the file."""

    line: int
    email: str
    name: str
    timezone: str | None
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass
class PeopleFile:
    """What a file holds: its people, the columns kept as attributes, and what to warn about."""

    rows: list[Row]
    kept: list[str] = field(default_factory=list)  # columns kept as person attributes
    ignored: list[str] = field(default_factory=list)  # columns left out (--map COLUMN=ignore)
    warnings: list[str] = field(default_factory=list)


def name_problem(name: str) -> str | None:
    """Why a display name cannot go into a From/To header as it is, or None."""
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in name):
        return f"the name {name!r} holds a line break or control character; remove it"
    if "=?" in name:
        return f"the name {name!r} holds an encoded word ('=?'); write the name as plain text"
    if len(name) > MAX_NAME:
        return f"the name is {len(name)} characters; shorten it to {MAX_NAME}"
    return None


def header_key(heading: str) -> str:
    """A heading as aliases and --map compare it: lower case, letters and digits only."""
    return re.sub(r"[\W_]+", "", heading.casefold())


def parse_map(pairs: Iterable[str]) -> dict[str, str]:
    """--map COLUMN=FIELD pairs as {header key: field}; InputError for a bad one."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        column, sep, target = pair.partition("=")
        target = target.strip().lower().replace("-", "_")
        if not sep or not column.strip() or target not in (*FIELDS, IGNORE):
            raise InputError(
                [
                    f"--map '{pair}' is not COLUMN=FIELD with FIELD one of {', '.join(FIELDS)} or {IGNORE}; "
                    'like --map "Courriel=email"'
                ]
            )
        mapping[header_key(column)] = target
    return mapping


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return (
            value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat()
        )
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # an employee number Excel stored as 1234.0
    return str(value)


def _xlsx_records(path: Path) -> list[tuple[int, list[str]]]:
    from openpyxl import load_workbook

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged file
        raise InputError(
            [f"{path}:1: cannot read this .xlsx ({exc}); save it again from Excel, or as CSV UTF-8"]
        ) from None
    try:
        sheet = book.worksheets[0]
        return [
            (number, [_cell_text(v).strip() for v in values])
            for number, values in enumerate(sheet.iter_rows(values_only=True), 1)
        ]
    finally:
        book.close()


def _decode(path: Path, raw: bytes) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):  # Excel's "Unicode Text"
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError:
            raise InputError(
                [f"{path}:1: the file starts like UTF-16 but is not; save it as CSV UTF-8"]
            ) from None
    if len(raw) >= 4 and raw[1] == 0 and raw[3] == 0 and raw[0] and raw[2]:  # UTF-16 without BOM
        try:
            return raw.decode("utf-16-le")
        except UnicodeDecodeError:
            pass
    if b"\x00" in raw[:4096]:
        raise InputError(
            [
                f"{path}:1: this is a binary file, not CSV; export the sheet as CSV UTF-8, "
                "Unicode Text, or .xlsx"
            ]
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(
            [f"{path}:{line}: not UTF-8 (byte 0x{raw[exc.start]:02x}); save the file as CSV UTF-8"]
        ) from None


def _text_records(path: Path, text: str) -> list[tuple[int, list[str]]]:
    first_line = text.split("\n", 1)[0]
    delimiter = max(("\t", ";", ","), key=first_line.count) if first_line.strip() else ","
    if first_line.count(delimiter) == 0:
        delimiter = ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    records: list[tuple[int, list[str]]] = []
    start = 1
    try:
        for record in reader:
            records.append((start, record))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise InputError(
            [f"{path}:{start}: {exc}; check the quotes on that line, or export the sheet again"]
        ) from None
    return records


def _records(path: Path) -> list[tuple[int, list[str]]]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError([f"{path}: cannot read: {exc.strerror}"]) from None
    if path.suffix.lower() in (".xlsx", ".xlsm") or raw.startswith(b"PK\x03\x04"):
        return _xlsx_records(path)
    text = _decode(path, raw)
    if not text.strip():
        raise InputError(
            [
                f"{path}:1: the file is empty; the first line must be a header like email,name,timezone"
            ]
        )
    return _text_records(path, text)


def _columns(
    path: Path, header: list[str], mapping: Mapping[str, str]
) -> tuple[dict[str, int], dict[int, str], list[str]]:
    """Which column holds each field, which are kept as attributes, and which are ignored."""
    keys = [header_key(h) for h in header]
    unknown = [k for k in mapping if k not in keys]
    if unknown:
        raise InputError(
            [
                f"{path}:1: --map names a column the header does not have; the columns are: {', '.join(header)}"
            ]
        )
    index: dict[str, int] = {}
    kept: dict[int, str] = {}
    ignored: list[str] = []
    for i, (heading, key) in enumerate(zip(header, keys, strict=True)):
        target = mapping.get(key) or ALIASES.get(key)
        if target == IGNORE or (not heading and target is None):
            if heading:
                ignored.append(heading)
            continue
        if target is None:
            kept[i] = heading
            continue
        if target in index:
            raise InputError(
                [
                    f"{path}:1: the columns '{header[index[target]]}' and '{heading}' both give the {target}; "
                    f'keep one, or say which with --map "{heading}=ignore"'
                ]
            )
        index[target] = i
    if "email" not in index:
        raise InputError(
            [
                f"{path}:1: no 'email' column in the header '{','.join(header)}'; the first line must name "
                'the columns, like email,name,timezone; for another name use --map "COLUMN=email"'
            ]
        )
    if len(set(kept.values())) < len(kept):
        twice = next(h for h in kept.values() if list(kept.values()).count(h) > 1)
        raise InputError([f"{path}:1: the column '{twice}' appears twice in the header"])
    return index, kept, ignored


def read_people(
    path: Path,
    *,
    mapping: Mapping[str, str] | None = None,
    special_use: Collection[str] = (),
    progress: Callable[[int, int], None] | None = None,
) -> PeopleFile:
    """Parse and validate a people file; raise InputError with every FILE:LINE problem."""
    records = _records(path)
    while records and not any(c.strip() for c in records[0][1]):
        records.pop(0)
    if not records:
        raise InputError(
            [
                f"{path}:1: the file is empty; the first line must be a header like email,name,timezone"
            ]
        )
    _, header_cells = records[0]
    header = [h.strip() for h in header_cells]
    index, kept, ignored = _columns(path, header, mapping or {})
    problems: list[str] = []
    warnings: list[str] = []
    rows: list[Row] = []
    seen: dict[str, int] = {}
    total = len(records)
    for number, (line, record) in enumerate(records[1:], 1):
        if progress is not None and number % 500 == 0:
            progress(number, total)
        if not any(cell.strip() for cell in record):
            continue

        def cell(column: str, record: list[str] = record) -> str:
            i = index.get(column)
            return record[i].strip() if i is not None and i < len(record) else ""

        address, name, zone = cell("email"), cell("name"), cell("timezone")
        if not name and (cell("first_name") or cell("last_name")):
            name = f"{cell('first_name')} {cell('last_name')}".strip()
        if not address:
            problems.append(f"{path}:{line}: the email is empty; fill it in or delete the row")
            continue
        try:
            address = check_address(address, special_use)
        except ValueError as exc:
            problems.append(f"{path}:{line}: {exc}")
            continue
        problem = name_problem(name)
        if problem:
            problems.append(f"{path}:{line}: {problem}")
            continue
        if zone:
            try:
                zone, note = read_zone(zone)
            except InputError as exc:
                problems.append(f"{path}:{line}: {exc.problems[0]}")
                continue
            if note:
                warnings.append(f"{path}:{line}: {address}: {note}")
        if address in seen:
            problems.append(
                f"{path}:{line}: '{address}' is already on line {seen[address]}; remove the duplicate"
            )
            continue
        attributes = {
            heading: record[i].strip()[:MAX_ATTRIBUTE]
            for i, heading in kept.items()
            if i < len(record) and record[i].strip()
        }
        seen[address] = line
        rows.append(Row(line, address, name, zone or None, attributes))
    if problems:
        raise InputError(problems)
    if not rows:
        raise InputError([f"{path}:2: the file has a header but no people"])
    return PeopleFile(rows, list(kept.values()), ignored, warnings)


def read_people_csv(path: Path, progress: Callable[[int, int], None] | None = None) -> list[Row]:
    """The people of a file with the default header aliases."""
    return read_people(path, progress=progress).rows
