"""One error boundary: database failures, and dates outside a sane range, give a clear message
and an exit status, never a traceback."""

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import cli_env, make_settings, run_drip

MONDAY = "2026-11-30"


@pytest.fixture
def full_disk(tmp_path: Path, _sqlite_template: Path) -> Iterator[Path]:
    """A migrated SQLite file on a real 2 MB filesystem that is then filled to the last byte."""
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip("mounting a small tmpfs needs root (CAP_SYS_ADMIN)")
    try:
        database = mount / "drip.db"
        shutil.copy(_sqlite_template, database)
        yield database
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder: Path) -> None:
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        for size in (65536, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)


def test_a_full_disk_is_a_clear_error_and_exit_1(tmp_path: Path, full_disk: Path) -> None:
    env = cli_env(make_settings(tmp_path, f"sqlite:///{full_disk}"))
    made = run_drip(["cohort", "create", "board", "--course", "sample", "--start", MONDAY], env)
    assert made.returncode == 0, made.stderr
    people = tmp_path / "people.csv"
    people.write_text(
        "email,name\n" + "".join(f"p{i}@example.com,Person {i}\n" for i in range(3000))
    )
    _fill(full_disk.parent)
    result = run_drip(["enroll", "board", str(people)], env)
    assert result.returncode == 1
    assert "disk is full" in result.stderr and "nothing was changed" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    os.remove(full_disk.parent / "filler")
    listed = run_drip(["people", "list", "--format", "csv"], env)
    assert listed.returncode == 0 and listed.stdout.count("\n") == 1  # the header: all or nothing


def test_an_unreachable_postgresql_is_a_clear_error(tmp_path: Path) -> None:
    env = cli_env(make_settings(tmp_path, "postgresql://drip@127.0.0.1:9/drip"))
    for command in (["migrate"], ["people", "list"], ["send-due"]):
        result = run_drip(command, env)
        assert result.returncode == 1, command
        assert "database" in result.stderr and "Traceback" not in result.stderr, command


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59", "2300-01-01T08:00:00Z", "1970-01-01"])
def test_now_outside_the_sane_range_is_refused(tmp_path: Path, settings, moment: str) -> None:  # type: ignore[no-untyped-def]
    env = cli_env(settings)
    result = run_drip(["send-due", "--now", moment], env)
    assert result.returncode == 1  # a bad value (issue 15: 1 for every bad value, 2 for usage)
    assert "outside 2000-2099; check the year" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("option", "value"), [("--start", "9999-01-01"), ("--skip", "2300-12-24")])
def test_cohort_dates_outside_the_range_are_refused(
    tmp_path: Path,
    settings,
    option: str,
    value: str,  # type: ignore[no-untyped-def]
) -> None:
    env = cli_env(settings)
    args = ["cohort", "create", "board", "--course", "sample", "--start", MONDAY]
    result = run_drip([*args, option, value], env)
    assert result.returncode == 1
    assert f"{value} is outside 2000-2099; check the year" in result.stderr
    assert run_drip(["cohort", "list", "--format", "csv"], env).stdout.count("\n") == 1


def test_send_due_to_a_full_outbox_exits_1_and_leaves_no_partial_files(
    tmp_path: Path, db_url: str, full_disk: Path
) -> None:
    outbox = full_disk.parent / "outbox"
    outbox.mkdir()
    env = cli_env(make_settings(tmp_path, db_url, mail_url=f"outbox:{outbox}"))
    made = run_drip(["cohort", "create", "board", "--course", "sample", "--start", MONDAY], env)
    assert made.returncode == 0, made.stderr
    people = tmp_path / "people.csv"
    people.write_text("email,name\n" + "".join(f"p{i}@example.com,P {i}\n" for i in range(5)))
    # Enrolled before the pass's moment, whatever the wall clock says.
    enrolled = run_drip(
        ["enroll", "board", str(people)], {**env, "DRIP_NOW": f"{MONDAY}T08:00:00Z"}
    )
    assert enrolled.returncode == 0, enrolled.stderr
    _fill(full_disk.parent)
    result = run_drip(["send-due", "--now", f"{MONDAY}T09:00:00Z"], env)
    assert result.returncode == 1
    assert "no lesson could be sent: 5 deferred" in result.stderr
    assert list(outbox.iterdir()) == []
