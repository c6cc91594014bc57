from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from support import cli_env, make_settings, run_drip, utc

from drip.errors import InputError, NotFound
from drip.people.cohorts import create_cohort
from drip.people.csv import read_people_csv
from drip.people.enroll import enroll_csv

NOW = utc(2026, 11, 30, 6, 0)  # a Monday


@pytest.fixture
def cohort(engine: sa.Engine) -> str:
    create_cohort(
        engine,
        name="board",
        course="sample",
        start=date(2026, 11, 30),
        timezone="Europe/London",
        now=NOW,
    )
    return "board"


def write(tmp_path: Path, content: str | bytes, name: str = "people.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def counts(engine: sa.Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return (
            conn.execute(sa.text("select count(*) from person")).scalar_one(),
            conn.execute(sa.text("select count(*) from enrollment")).scalar_one(),
        )


def problems(engine: sa.Engine, path: Path) -> list[str]:
    with pytest.raises(InputError) as info:
        enroll_csv(engine, "board", path, now=NOW)
    assert counts(engine) == (0, 0)  # nothing written
    return info.value.problems


def test_enrols_any_column_order_bom_and_semicolons(
    engine: sa.Engine, cohort: str, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "\ufeffTimezone;Name;Email\nAsia/Kolkata;Dev Raman;Dev@Example.com\n;Ann Lee;ann@example.com\n\n",
    )
    result = enroll_csv(engine, cohort, path, now=NOW)
    assert (result.enrolled, result.new_people, result.already) == (2, 2, 0)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("select email, name, timezone from person order by email")
        ).all()
    assert [tuple(r) for r in rows] == [
        ("ann@example.com", "Ann Lee", None),
        ("dev@example.com", "Dev Raman", "Asia/Kolkata"),
    ]
    again = enroll_csv(engine, cohort, path, now=NOW)
    assert (again.enrolled, again.already) == (0, 2)
    assert counts(engine) == (2, 2)


def test_dry_run_writes_nothing(engine: sa.Engine, cohort: str, tmp_path: Path) -> None:
    path = write(tmp_path, "email,name\na@example.com,A\n")
    result = enroll_csv(engine, cohort, path, now=NOW, dry_run=True)
    assert result.enrolled == 1 and counts(engine) == (0, 0)


def test_every_bad_row_is_listed_with_its_line(
    engine: sa.Engine, cohort: str, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "email,name,timezone\nok@example.com,Ok,\nnot-an-address,Bad,\nz@example.com,Z,Mars/Olympus\nOK@example.com,Dup,\n",
    )
    found = problems(engine, path)
    assert found[0].startswith(f"{path}:3: 'not-an-address' is not a valid e-mail address")
    assert (
        found[1]
        == f"{path}:4: unknown timezone 'Mars/Olympus'; use an IANA name like Europe/London"
    )
    assert found[2] == f"{path}:5: 'ok@example.com' is already on line 2; remove the duplicate"
    assert len(found) == 3


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", ":1: the file is empty"),
        (
            "alice@example.com,Alice\n",
            ":1: no 'email' column in the header 'alice@example.com,Alice'",
        ),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", ":1: this is a binary file, not CSV"),
        (b"email,name\nj\xe9@example.com,J\n", ":2: not UTF-8 (byte 0xe9)"),
        ("email,name\n", ":2: the file has a header but no people"),
        ('email,name\na@example.com,"Eve\nBcc: x"\n', "holds a line break"),
    ],
)
def test_bad_files(
    engine: sa.Engine, cohort: str, tmp_path: Path, content: str | bytes, expected: str
) -> None:
    path = write(tmp_path, content)
    (problem,) = problems(engine, path)
    assert expected in problem and problem.startswith(str(path))


def test_unknown_cohort(engine: sa.Engine, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no cohort 'nope'"):
        enroll_csv(engine, "nope", write(tmp_path, "email\na@example.com\n"), now=NOW)


def test_ten_thousand_rows(engine: sa.Engine, cohort: str, tmp_path: Path) -> None:
    lines = ["email,name,timezone"] + [
        f"p{i}@example.com,Person {i},America/New_York" for i in range(10_000)
    ]
    result = enroll_csv(engine, cohort, write(tmp_path, "\n".join(lines) + "\n"), now=NOW)
    assert result.enrolled == 10_000 and counts(engine) == (10_000, 10_000)
    with engine.connect() as conn:
        due = conn.execute(
            sa.text("select min(next_due_at), max(next_due_at) from enrollment")
        ).one()
    # 07:30 in New York on Monday 30 November is 12:30 UTC.
    assert str(due[0]).startswith("2026-11-30 12:30") and due[0] == due[1]


def test_enroll_command_reports_problems_and_exit_1(
    settings, engine: sa.Engine, cohort: str, tmp_path: Path
) -> None:
    path = write(tmp_path, "email,name\nbad,Bad\n")
    result = run_drip(["enroll", "board", str(path)], cli_env(settings))
    assert result.returncode == 1
    assert f"error: {path}:2: 'bad' is not a valid e-mail address" in result.stderr
    assert "Traceback" not in result.stderr
    ok = write(tmp_path, "email,name\na@example.com,A\nb@example.com,B\n", "ok.csv")
    result = run_drip(["enroll", "board", str(ok)], cli_env(settings))
    assert result.returncode == 0, result.stderr
    assert (
        "enrolled 2 of 2 people in 'board' (2 new, 0 already enrolled and skipped)" in result.stdout
    )


names = (
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=40)
    .map(str.strip)
    .filter(lambda s: "=?" not in s)
)  # an encoded word is refused at the door
locals_ = st.from_regex(r"[a-z][a-z0-9._+-]{0,20}[a-z0-9]", fullmatch=True).filter(
    lambda s: ".." not in s
)


@given(
    people=st.lists(
        st.tuples(locals_, names, st.sampled_from(["", "Asia/Kolkata", "Pacific/Chatham"])),
        min_size=1,
        max_size=30,
        unique_by=lambda p: p[0],
    ),
    delimiter=st.sampled_from([",", ";"]),
    bom=st.booleans(),
)
@hsettings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_any_valid_file_round_trips(
    tmp_path: Path, people: list[tuple[str, str, str]], delimiter: str, bom: bool
) -> None:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter)
    writer.writerow(["name", "timezone", "email"])
    for local, name, zone in people:
        writer.writerow([name, zone, f"{local}@Example.com"])
    path = tmp_path / "round.csv"
    path.write_bytes(("\ufeff" if bom else "").encode() + buffer.getvalue().encode("utf-8"))
    rows = read_people_csv(path)
    assert [(r.email, r.name, r.timezone) for r in rows] == [
        (f"{local}@example.com", name, zone or None) for local, name, zone in people
    ]


# -- validated once, at the door ---------------------------------------------------------------


def test_a_name_holding_an_encoded_word_is_refused_at_enrolment(
    tmp_path: Path,
    settings,
    engine,  # type: ignore[no-untyped-def]
) -> None:
    env = cli_env(settings)
    assert run_drip(["cohort", "create", "board", "--course", "sample",
                     "--start", "2026-11-30"], env).returncode == 0  # fmt: skip
    people = write(
        tmp_path,
        "email,name\nok@example.com,Ok\nevil@example.com,=?utf-8?q?Ann=0D=0ABcc:_x@example.com?=\n",
        "evil.csv",
    )
    result = run_drip(["enroll", "board", str(people)], env)
    assert result.returncode == 1
    assert (
        f"{people}:3: the name '=?utf-8?q?Ann=0D=0ABcc:_x@example.com?=' holds an encoded word"
        in result.stderr
    )
    assert run_drip(["people", "list", "--format", "csv"], env).stdout.count("\n") == 1


def test_an_idn_domain_is_enrolled_and_sent_in_its_ascii_form(
    tmp_path: Path,
    db_url: str,
    smtp,  # type: ignore[no-untyped-def]
) -> None:
    handler, port = smtp
    s = make_settings(tmp_path, db_url, mail_url=f"smtp://127.0.0.1:{port}")
    env = cli_env(s, DRIP_NOW="2026-11-30T08:00:00Z")  # enrolled before the pass's moment
    assert run_drip(["cohort", "create", "board", "--course", "sample",
                     "--start", "2026-11-30", "--timezone", "UTC"], env).returncode == 0  # fmt: skip
    people = write(
        tmp_path, "email,name\nanna@bücher.example,Anna\nüser@example.com,U\n", "idn.csv"
    )
    refused = run_drip(["enroll", "board", str(people)], env)
    assert refused.returncode == 1
    assert "'üser@example.com' needs SMTPUTF8" in refused.stderr
    assert "bücher" not in refused.stderr
    people.write_text("email,name\nanna@bücher.example,Anna\n", encoding="utf-8")
    enrolled = run_drip(["enroll", "board", str(people)], env)
    assert enrolled.returncode == 0, enrolled.stderr
    assert (
        "anna@xn--bcher-kva.example" in run_drip(["people", "list", "--format", "csv"], env).stdout
    )
    sent = run_drip(["send-due", "--now", "2026-11-30T09:00:00Z"], env)
    assert sent.returncode == 0, sent.stderr
    (received,) = handler.messages
    assert received.rcpt_tos == ["anna@xn--bcher-kva.example"]
    assert b"To: Anna <anna@xn--bcher-kva.example>" in received.data


def test_a_csv_error_names_the_first_line_of_its_record(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'email,name\nok@example.com,Ok\nbad@example.com,"Ann\nSmith"\nalso@example.com,Al\n',
        "multi.csv",
    )
    with pytest.raises(InputError) as info:
        read_people_csv(path)
    assert info.value.problems == [
        f"{path}:3: the name 'Ann\\nSmith' holds a line break or control character; remove it"
    ]
