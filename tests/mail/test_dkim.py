"""DKIM signing in drip: a lesson verifies with dkimpy against the key the DNS server publishes."""

from __future__ import annotations

from pathlib import Path

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from support import SmtpHandler, cli_env, run_drip
from support_inbound import send_first_lessons
from support_peers import dns_server, txt_lookup

from drip.mail.dkim import DkimSigner


def write_key(path: Path) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def test_a_signed_lesson_verifies_against_the_published_key(
    tmp_path: Path, db_url: str, smtp: tuple[SmtpHandler, int]
) -> None:
    handler, port = smtp
    key = write_key(tmp_path / "dkim.pem")
    send_first_lessons(tmp_path, db_url, port, ["ada@corp.example"], dkim_key=str(key))
    (lesson,) = handler.messages
    assert lesson.data.startswith(
        b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com;"
    )
    record = DkimSigner.load(key, "drip", "example.com").public_record()
    with dns_server({("drip._domainkey.example.com", "TXT"): [record]}) as dns_port:
        lookup = txt_lookup(dns_port)
        assert dkim.verify(lesson.data, dnsfunc=lookup)
        # The signature covers what RFC 8058 asks for, so a changed header fails it.
        signature = lesson.data.split(b"\r\n\r\n", 1)[0]
        for header in (b"from", b"subject", b"date", b"message-id", b"list-unsubscribe",
                       b"list-unsubscribe-post"):  # fmt: skip
            assert header in signature.split(b"h=", 1)[1].split(b";", 1)[0].split(b":")
        tampered = lesson.data.replace(b"Subject: ", b"Subject: FREE ", 1)
        assert not dkim.verify(tampered, dnsfunc=lookup)
        body_changed = lesson.data.replace(b"/u/", b"/x/", 1)
        assert not dkim.verify(body_changed, dnsfunc=lookup)


def test_a_key_published_for_another_private_key_fails(tmp_path: Path) -> None:
    signer = DkimSigner.load(write_key(tmp_path / "a.pem"), "drip", "example.com")
    other = DkimSigner.load(write_key(tmp_path / "b.pem"), "drip", "example.com")
    message = b"From: a@example.com\r\nSubject: hi\r\nDate: x\r\nMessage-ID: <1@example.com>\r\n\r\nbody\r\n"
    from support import utc

    signed = signer.sign(message, utc(2026, 12, 1, 7, 30))
    with dns_server({("drip._domainkey.example.com", "TXT"): [other.public_record()]}) as port:
        assert not dkim.verify(signed, dnsfunc=txt_lookup(port))


def test_an_unusable_key_file_is_named_with_the_fix(tmp_path: Path, db_url: str) -> None:
    from support import make_settings

    bad = tmp_path / "dkim.pem"
    bad.write_text("not a key")
    settings = make_settings(tmp_path, db_url, dkim_key=str(bad))
    result = run_drip(
        ["send-test", "sample", "what-a-drip-course-is", "--to", "a@example.com"], cli_env(settings)
    )
    assert result.returncode == 1
    assert f"DRIP_DKIM_KEY has value '{bad}': not an unencrypted PEM private key" in result.stderr


def test_the_notes_and_the_digest_are_signed_like_the_lessons(tmp_path: Path, db_url: str) -> None:
    """The welcome, a review, the completion with its certificate, the pause note and the
    manager's digest carry the same signature as a lesson: mail from one domain that is signed
    only sometimes fails DMARC for the rest."""
    from support import LESSONS, make_settings, utc

    from drip.app import App
    from drip.curriculum.load import load_course
    from drip.db import migrate
    from drip.mail.build import Recipient
    from drip.mail.notes import LessonResult, Summary
    from drip.people.cohorts import create_cohort
    from drip.reports.digest import send_digests

    key = write_key(tmp_path / "dkim.pem")
    app = App.open(make_settings(tmp_path, db_url, dkim_key=str(key)), check=False)
    migrate(app.engine)
    notes = app.note_mail()
    course = load_course(LESSONS, "sample")
    now = utc(2026, 11, 30, 8, 0)  # in the past: a signature's time must not be ahead of the clock
    who = Recipient(7, "ada@corp.example", "Ada", now, "<n7@example.com>")
    results = [LessonResult(x.title, x.takeaway, "right") for x in course.lessons]
    built = {
        "welcome": notes.welcome(
            course,
            who,
            cohort="Board",
            sponsor="",
            first_lesson=now,
            timezone="UTC",
            days="weekday",
        ),  # fmt: skip
        "review": notes.review(course, next(x for x in course.lessons if x.check), who),
        "completion": notes.completion(
            course, who, Summary("Board", now.date(), now.date(), 3, results, [])
        ),
        "note": notes.note(course, who, 3),
    }
    create_cohort(app.engine, name="Board", course="sample", start=now.date(), timezone="UTC",
                  manager="boss@corp.example", now=now)  # fmt: skip
    with app.transport() as transport:
        (digest,) = send_digests(app.engine, transport, app.settings, now)
    assert digest.outcome == "accepted", digest
    (eml,) = (tmp_path / "outbox").glob("*.eml")
    built["digest"] = eml.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    record = DkimSigner.load(key, "drip", "example.com").public_record()
    with dns_server({("drip._domainkey.example.com", "TXT"): [record]}) as dns_port:
        lookup = txt_lookup(dns_port)
        for kind, data in built.items():
            assert data.startswith(b"DKIM-Signature: "), kind
            assert dkim.verify(data, dnsfunc=lookup), kind
            assert not dkim.verify(data.replace(b"Subject: ", b"Subject: FREE ", 1),
                                   dnsfunc=lookup), kind  # fmt: skip
