"""`drip inbound poll`: the same bounces and replies delivered to a real IMAP server (Dovecot)."""

from __future__ import annotations

import imaplib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from support import SmtpHandler, cli_env, free_port, run_drip
from support_inbound import (
    AFTER_THE_FOUR,
    BOUNCE_DOMAIN,
    db_rows,
    returned_mail,
    send_first_lessons,
    statuses,
)

DOVECOT = shutil.which("dovecot") or next(
    (p for p in ("/usr/sbin/dovecot",) if os.path.exists(p)), None
)
PEOPLE = ["gone@corp.example", "angry@corp.example", "away@corp.example", "curious@corp.example"]
CONFIG = """\
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
mail_location = maildir:{d}/mail/%u
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
userdb {{
  driver = static
  args = uid=65534 gid=65534 home={d}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


@pytest.fixture
def dovecot() -> Iterator[int]:
    """A Dovecot IMAP server on 127.0.0.1 with one mailbox (drip / imap-test-pass); the port."""
    if DOVECOT is None:
        pytest.skip("dovecot is not installed (apt-get install dovecot-imapd)")
    if os.geteuid() != 0:
        pytest.skip("Dovecot's test setup stores mail as user nobody, which needs root")
    # Outside pytest's tmp_path: Dovecot's login and mail processes run as other users.
    folder = Path(tempfile.mkdtemp(prefix="drip-dovecot-"))
    folder.chmod(0o755)
    for sub in ("run", "state", "mail"):
        (folder / sub).mkdir()
    shutil.chown(folder / "mail", "nobody", "nogroup")
    (folder / "passwd").write_text("drip:{PLAIN}imap-test-pass\n")
    port = free_port()
    (folder / "dovecot.conf").write_text(CONFIG.format(d=folder, port=port))
    # The daemon keeps whatever output it was given: a file, never a pipe that run() waits on.
    with (folder / "start.log").open("w") as log:
        started = subprocess.run(
            [DOVECOT, "-c", str(folder / "dovecot.conf")], stdout=log, stderr=log, timeout=30
        )
    if started.returncode != 0:
        reason = (folder / "start.log").read_text().strip()
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"dovecot did not start: {reason}")
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                imaplib.IMAP4("127.0.0.1", port, timeout=2).logout()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError((folder / "dovecot.log").read_text()) from None
                time.sleep(0.1)
        yield port
    finally:
        pid = int((folder / "run" / "master.pid").read_text().strip())
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        shutil.rmtree(folder, ignore_errors=True)


def deliver_to_mailbox(port: int, envelope_to: str, data: bytes) -> None:
    """Store a message as a mail server's delivery agent would, with its Delivered-To line."""
    client = imaplib.IMAP4("127.0.0.1", port)
    client.login("drip", "imap-test-pass")
    typ, _ = client.append("INBOX", None, None, f"Delivered-To: {envelope_to}\r\n".encode() + data)
    assert typ == "OK"
    client.logout()


def flagged_done(port: int) -> list[bool]:
    client = imaplib.IMAP4("127.0.0.1", port)
    client.login("drip", "imap-test-pass")
    client.select("INBOX")
    _, data = client.uid("FETCH", "1:*", "(FLAGS)")
    client.logout()
    return [b"$DripDone" in line for line in data if isinstance(line, bytes)]


def test_poll_twice_processes_each_message_once(
    tmp_path: Path, db_url: str, smtp: tuple[SmtpHandler, int], dovecot: int
) -> None:
    handler, smtp_port = smtp
    imap_url = f"imap://drip:imap-test-pass@127.0.0.1:{dovecot}/INBOX"
    settings, sent = send_first_lessons(tmp_path, db_url, smtp_port, PEOPLE, imap_url=imap_url)
    handler.messages.clear()
    gone, angry, away, curious = (sent[p] for p in PEOPLE)
    deliver_to_mailbox(dovecot, gone.return_path, returned_mail("qmail_no_mailbox.eml", gone))
    complaint = returned_mail("arf_microsoft_jmrp.eml", angry, **{"exec@hotmail.com": angry.email})
    deliver_to_mailbox(dovecot, angry.return_path, complaint)
    deliver_to_mailbox(dovecot, away.return_path, returned_mail("german_abwesenheit.eml", away))
    reply = returned_mail("gmail_human_reply_html.eml", curious)
    deliver_to_mailbox(dovecot, f"reply@{BOUNCE_DOMAIN}", reply)
    env = cli_env(settings)

    first = run_drip(["inbound", "poll", "--now", "2026-12-15T09:00:00Z"], env)
    assert first.returncode == 0, first.stderr
    assert "4 new message(s): 4 processed, 0 already processed, 0 left to try again" in first.stdout
    assert flagged_done(dovecot) == [True, True, True, True]
    second = run_drip(["inbound", "poll", "--now", "2026-12-15T09:05:00Z"], env)
    assert second.returncode == 0, second.stderr
    assert "0 new message(s): 0 processed" in second.stdout

    assert statuses(db_url) == AFTER_THE_FOUR
    (until,) = db_rows(db_url, "SELECT paused_until FROM enrollment WHERE status = 'paused'")[0]
    assert str(until) == str(date(2027, 1, 9))  # "bis einschließlich 8. Januar 2027"
    assert db_rows(db_url, "SELECT kind, count(*) FROM event WHERE kind IN "
                   "('bounce', 'unsubscribe', 'pause', 'question') GROUP BY kind ORDER BY kind") == [
        ("bounce", 1), ("pause", 1), ("question", 1), ("unsubscribe", 1)
    ]  # fmt: skip
    assert [m.rcpt_tos for m in handler.messages] == [["coach@example.com"]]
    assert db_rows(db_url, "SELECT count(*) FROM inbound_message") == [(4,)]


def test_a_message_whose_flag_was_lost_is_not_processed_again(
    tmp_path: Path, db_url: str, smtp: tuple[SmtpHandler, int], dovecot: int
) -> None:
    _, smtp_port = smtp
    imap_url = f"imap://drip:imap-test-pass@127.0.0.1:{dovecot}/INBOX"
    settings, sent = send_first_lessons(
        tmp_path, db_url, smtp_port, ["full@corp.example"], imap_url=imap_url
    )
    full = sent["full@corp.example"]
    deliver_to_mailbox(dovecot, full.return_path, returned_mail("exim_delay_warning.eml", full))
    env = cli_env(settings)
    assert "1 processed" in run_drip(["inbound", "poll"], env).stdout
    client = imaplib.IMAP4("127.0.0.1", dovecot)
    client.login("drip", "imap-test-pass")
    client.select("INBOX")
    client.uid("STORE", "1", "-FLAGS", "($DripDone)")  # someone's mail client cleared it
    client.logout()
    again = run_drip(["inbound", "poll"], env)
    assert "1 new message(s): 0 processed, 1 already processed" in again.stdout
    assert db_rows(db_url, "SELECT count(*) FROM event WHERE kind = 'softbounce'") == [(1,)]


def test_a_wrong_password_is_reported_with_the_fix(
    tmp_path: Path, db_url: str, dovecot: int
) -> None:
    from support import make_settings

    url = f"imap://drip:wrong@127.0.0.1:{dovecot}/INBOX"
    settings = make_settings(tmp_path, db_url, bounce_domain=BOUNCE_DOMAIN, imap_url=url)
    result = run_drip(["inbound", "poll"], cli_env(settings))
    assert result.returncode == 1
    assert f"cannot read imap://drip@127.0.0.1:{dovecot}/INBOX" in result.stderr
    assert "check DRIP_IMAP_URL" in result.stderr
