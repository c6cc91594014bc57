"""The suppression list: addresses no cohort may mail, with the reason and date each was added."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from drip import lifecycle
from drip.errors import InputError, NotFound
from drip.lifecycle import Change, Transition
from drip.models import ENROLLMENT as E
from drip.models import PERSON as P
from drip.models import SUPPRESSION as SU
from drip.people.csv import valid_address

CHUNK = 500


@dataclass(frozen=True)
class Suppressed:
    """One suppressed address."""

    email: str
    reason: str
    source: str
    since: datetime


def suppress(conn: sa.Connection, email: str, *, reason: str, source: str, now: datetime) -> bool:
    """Put an address on the list in the caller's transaction; False if it was there already."""
    email = email.strip().lower()
    if conn.execute(sa.select(SU.c.id).where(SU.c.email == email)).first() is not None:
        return False
    conn.execute(
        SU.insert().values(email=email, reason=reason[:1000], source=source[:20], created_at=now)
    )
    return True


def suppressed_among(conn: sa.Connection, emails: Iterable[str]) -> dict[str, Suppressed]:
    """The suppressed addresses among these, with their entries."""
    wanted = sorted({e.strip().lower() for e in emails})
    found: dict[str, Suppressed] = {}
    for start in range(0, len(wanted), CHUNK):
        rows = conn.execute(
            sa.select(SU.c.email, SU.c.reason, SU.c.source, SU.c.created_at).where(
                SU.c.email.in_(wanted[start : start + CHUNK])
            )
        ).all()
        found.update({r[0]: Suppressed(*r) for r in rows})
    return found


def stop_mail(
    conn: sa.Connection,
    email: str,
    transition: Transition,
    *,
    reason: str,
    now: datetime,
    method: str,
    delivery: tuple[int, int] | None = None,
) -> int:
    """Move every enrollment of this address that the transition applies to; return how many.

    `delivery` (enrollment id, delivery id) names the lesson that brought the news, for the
    event of that one enrollment."""
    ids = conn.execute(
        sa.select(E.c.id)
        .join(P, P.c.id == E.c.person_id)
        .where(P.c.email == email.strip().lower())
        .order_by(E.c.id)
    ).scalars()
    changes = [
        Change(
            eid, reason=reason, delivery_id=delivery[1] if delivery and delivery[0] == eid else None
        )
        for eid in ids
    ]
    return len(lifecycle.apply(conn, transition, changes, now=now, method=method))


def add(engine: Engine, email: str, reason: str, now: datetime, source: str = "manual") -> int:
    """Suppress an address by hand and stop its enrolments (as unsubscribed); return how many."""
    address = valid_address(email)
    with engine.begin() as conn:
        if not suppress(conn, address, reason=reason, source=source, now=now):
            raise InputError([f"'{address}' is already suppressed; see drip suppress list"])
        return stop_mail(
            conn,
            address,
            Transition.unsubscribe,
            reason=f"suppressed: {reason}" if reason else "suppressed",
            now=now,
            method="suppress",
        )


def remove(engine: Engine, email: str) -> None:
    """Take an address off the list; its stopped enrolments stay as they are."""
    address = email.strip().lower()
    with engine.begin() as conn:
        if conn.execute(SU.delete().where(SU.c.email == address)).rowcount == 0:
            raise NotFound(f"'{address}' is not suppressed; see drip suppress list")


def entries(engine: Engine) -> list[Suppressed]:
    """Every suppressed address, newest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(SU.c.email, SU.c.reason, SU.c.source, SU.c.created_at).order_by(
                SU.c.created_at.desc(), SU.c.email
            )
        ).all()
    return [Suppressed(*r) for r in rows]


def import_csv(engine: Engine, path: Path, now: datetime) -> tuple[int, int]:
    """Suppress every address of a CSV (email[,reason]), all or nothing; (added, already there)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError([f"{path}: cannot read it as UTF-8 text: {exc}"]) from None
    rows: list[tuple[str, str]] = []
    problems: list[str] = []
    for number, fields in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not fields or not "".join(fields).strip():
            continue
        if number == 1 and fields[0].strip().lower() == "email":
            continue  # a header
        try:
            address = valid_address(fields[0])
        except InputError as exc:
            problems.append(f"{path}:{number}: {exc.problems[0]}; fix or delete the line")
            continue
        rows.append((address, fields[1].strip() if len(fields) > 1 else "imported"))
    if problems:
        raise InputError(problems)
    added = 0
    with engine.begin() as conn:
        for address, reason in rows:
            if suppress(conn, address, reason=reason, source="import", now=now):
                added += 1
                stop_mail(
                    conn,
                    address,
                    Transition.unsubscribe,
                    reason=f"suppressed: {reason}",
                    now=now,
                    method="suppress",
                )
    return added, len(rows) - added
