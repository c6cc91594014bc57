import email
import email.policy
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from support import LESSONS, TEMPLATES, SmtpHandler, cli_env, free_port, make_settings, run_drip
from support_peers import Script, scripted_smtp

from drip.curriculum.load import load_course
from drip.mail.message import DotSafe, MessageTemplate
from drip.mail.render import Renderer, recipient_keys
from drip.mail.transports import OutboxTransport, Outcome, open_transport, smtp_options


def message(message_id: str = "<t1@example.com>") -> bytes:
    course = load_course(LESSONS, "sample")
    rendered = Renderer(TEMPLATES).render(course, course.lessons[0])
    values = {k: f"https://learn.example.com/{k.lower()}" for k in recipient_keys(rendered)} | {
        "NAME": "Ada"
    }
    return MessageTemplate.of(rendered, "Drip <lessons@example.com>").build(
        to_name="Ada",
        to_address="ada@example.com",
        date=datetime(2026, 12, 1, tzinfo=UTC),
        message_id=message_id,
        values=values,
    )


def test_message_arrives_intact_over_smtp(smtp: tuple[SmtpHandler, int]) -> None:
    handler, port = smtp
    transport = open_transport(f"smtp://127.0.0.1:{port}")
    data = message()
    results = [transport.send("lessons@example.com", "ada@example.com", data) for _ in range(3)]
    transport.close()
    assert [r.outcome for r in results] == [Outcome.accepted] * 3
    assert len(handler.messages) == 3
    received = handler.messages[0]
    assert received.rcpt_tos == ["ada@example.com"]
    msg = email.message_from_bytes(received.data, policy=email.policy.default)
    assert len(msg.get_all("Date")) == 1 and len(msg.get_all("Message-ID")) == 1
    assert msg["List-Unsubscribe"] and msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg.get_body(("plain",)) is not None and msg.get_body(("html",)) is not None
    assert received.data.rstrip(b"\r\n") == data.rstrip(b"\r\n")  # byte for byte


def test_lines_starting_with_a_dot_arrive_as_written(smtp: tuple[SmtpHandler, int]) -> None:
    """Bytes from elsewhere are dot-stuffed on the wire; a built lesson has no line starting
    with "." (its quoted-printable writes =2E), so it goes unscanned and arrives the same."""
    handler, port = smtp
    plain = b"Subject: dots\r\n\r\n.first\r\n..second\r\nmiddle\r\n.\r\nlast .\r\n"
    lesson = message()
    assert isinstance(lesson, DotSafe) and b"\n." not in lesson
    with open_transport(f"smtp://127.0.0.1:{port}") as transport:
        results = [transport.send("lessons@example.com", "ada@example.com", d)
                   for d in (plain, lesson)]  # fmt: skip
    assert [r.outcome for r in results] == [Outcome.accepted] * 2
    assert [m.data for m in handler.messages] == [plain, lesson]


@pytest.mark.parametrize(
    ("reply", "outcome", "code"),
    [
        ("451 4.3.0 try later", Outcome.retry, 451),
        ("550 5.1.1 no such user", Outcome.rejected, 550),
        ("drop", Outcome.retry, None),
    ],
)
def test_server_replies_map_to_outcomes(
    smtp: tuple[SmtpHandler, int], reply: str, outcome: Outcome, code: int | None
) -> None:
    handler, port = smtp
    handler.replies = [reply]
    transport = open_transport(f"smtp://127.0.0.1:{port}")
    result = transport.send("lessons@example.com", "ada@example.com", message())
    assert result.outcome is outcome
    if code:
        assert result.code == code and reply.split(" ", 1)[1] in result.reply
    # The connection recovers for the next message.
    assert (
        transport.send("lessons@example.com", "ada@example.com", message()).outcome
        is Outcome.accepted
    )
    transport.close()
    assert len(handler.messages) == 1


def test_refused_connection_is_retry_later() -> None:
    transport = open_transport(f"smtp://127.0.0.1:{free_port()}", timeout=2)
    result = transport.send("a@example.com", "b@example.com", b"Subject: x\r\n\r\nx\r\n")
    assert result.outcome is Outcome.retry


def test_silent_server_times_out_as_retry_later() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        transport = open_transport(f"smtp://127.0.0.1:{port}", timeout=0.5)
        result = transport.send("a@example.com", "b@example.com", b"Subject: x\r\n\r\nx\r\n")
        assert result.outcome is Outcome.retry and "timed out" in result.reply
    finally:
        server.close()


def test_smtp_url_forms() -> None:
    o = smtp_options("smtp://user:p%40ss@mail.example.com:587", 10)
    assert (o.host, o.port, o.starttls, o.implicit_tls, o.username, o.password) == (
        "mail.example.com",
        587,
        True,
        False,
        "user",
        "p@ss",
    )
    assert smtp_options("smtps://mail.example.com", 10).port == 465
    assert smtp_options("smtps://mail.example.com", 10).implicit_tls
    assert not smtp_options("smtp://127.0.0.1:2525", 10).starttls


def test_outbox_names_sort_in_sending_order(tmp_path: Path) -> None:
    outbox = OutboxTransport(tmp_path / "out")
    for i in range(20):
        assert (
            outbox.send("a@example.com", "b@example.com", f"X-N: {i}\r\n\r\n".encode()).outcome
            is Outcome.accepted
        )
    files = sorted((tmp_path / "out").glob("*.eml"))
    assert [f.read_bytes() for f in files] == [f"X-N: {i}\r\n\r\n".encode() for i in range(20)]


def test_send_test_command_through_smtp(tmp_path: Path, smtp: tuple[SmtpHandler, int]) -> None:
    handler, port = smtp
    env = cli_env(make_settings(tmp_path, mail_url=f"smtp://127.0.0.1:{port}"))
    result = run_drip(
        [
            "send-test",
            "sample",
            "what-a-drip-course-is",
            "--to",
            "Ada@Example.com",
            "--name",
            "Ada",
        ],
        env,
    )
    assert result.returncode == 0, result.stderr
    assert len(handler.messages) == 1 and handler.messages[0].rcpt_tos == ["ada@example.com"]


def test_send_test_refuses_injected_name(tmp_path: Path, smtp: tuple[SmtpHandler, int]) -> None:
    handler, port = smtp
    env = cli_env(make_settings(tmp_path, mail_url=f"smtp://127.0.0.1:{port}"))
    result = run_drip(
        [
            "send-test",
            "sample",
            "what-a-drip-course-is",
            "--to",
            "a@example.com",
            "--name",
            "Eve\nBcc: x@evil.example",
        ],
        env,
    )
    assert (
        result.returncode == 1
        and "line break" in result.stderr
        and "Traceback" not in result.stderr
    )
    assert handler.messages == [] and handler.attempts == []


def test_send_test_to_outbox_writes_eml(tmp_path: Path) -> None:
    env = cli_env(make_settings(tmp_path))
    result = run_drip(
        [
            "send-test",
            "social-media-for-executives",
            "why-it-matters-now",
            "--to",
            "ceo@example.com",
        ],
        env,
    )
    assert result.returncode == 0, result.stderr
    (eml,) = (tmp_path / "outbox").glob("*.eml")
    msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert msg["To"] == "ceo@example.com"


def test_a_relay_refusing_us_at_the_greeting_is_retry_later_not_a_bounce() -> None:
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]

    def greet_and_refuse() -> None:
        conn, _ = server.accept()
        conn.sendall(b"554 5.7.1 no service for you\r\n")
        conn.close()

    thread = threading.Thread(target=greet_and_refuse, daemon=True)
    thread.start()
    try:
        result = open_transport(f"smtp://127.0.0.1:{port}", timeout=5).send(
            "a@example.com", "b@example.com", b"x\r\n"
        )
    finally:
        thread.join(5)
        server.close()
    assert (
        result.outcome is Outcome.retry
        and "cannot connect" in result.reply
        and "554" in str(result)
    )


@pytest.mark.parametrize(
    ("code", "reply", "block"),
    [
        (554, "5.7.1 Message rejected as spam", True),
        (550, "5.7.1 Service unavailable; client host blocked using Spamhaus", True),
        (550, "Message rejected due to content restrictions", True),
        (554, "5.6.0 Message content rejected", True),
        (550, "5.7.26 This message does not pass DMARC", True),
        (550, "5.1.1 The email account that you tried to reach does not exist", False),
        (550, "No such user here", False),
        (553, "5.1.3 mailbox name not allowed", False),
        (451, "4.7.1 Greylisted, try again", False),
    ],
)
def test_what_looks_like_a_content_or_policy_block(code: int, reply: str, block: bool) -> None:
    from drip.mail.transports import classify, policy_block

    assert policy_block(classify(code, reply)) is block


def test_552_is_temporary_at_rcpt_and_permanent_after_data() -> None:
    from drip.mail.transports import Outcome, classify

    assert classify(552, "4.2.2 mailbox full", at_rcpt=True).outcome is Outcome.retry
    assert classify(552, "5.3.4 message too big").outcome is Outcome.rejected


def outgoing(*names: str) -> list[tuple[str, str, bytes]]:
    return [
        ("lessons@example.com", f"{n}@example.com", message(f"<{n}.1@example.com>")) for n in names
    ]


def send_in_steps(transport: Any, messages: list[tuple[str, str, bytes]]) -> list[Any]:
    results = []
    for i in range(0, len(messages), transport.width):
        transport.start(messages[i : i + transport.width])
        results += transport.finish()
    return results


def test_pipelined_replies_are_classified_one_by_one() -> None:
    script = Script(
        rcpt={"bo@example.com": ["451 4.2.1 mailbox busy"], "cy@example.com": ["550 5.1.1 no"]},
        data={"di@example.com": ["451 4.3.0 queue full"], "ed@example.com": ["554 5.7.1 spam"]},
    )
    with scripted_smtp(script) as (_, seen, port):
        with open_transport(f"smtp://127.0.0.1:{port}", connections=3) as transport:
            results = send_in_steps(transport, outgoing("ada", "bo", "cy", "di", "ed", "fay"))
    assert [(r.outcome, r.code) for r in results] == [
        (Outcome.accepted, 250),
        (Outcome.retry, 451),
        (Outcome.rejected, 550),
        (Outcome.retry, 451),
        (Outcome.rejected, 554),
        (Outcome.accepted, 250),
    ]
    assert "mailbox busy" in results[1].reply and "spam" in results[4].reply
    assert seen.accepted == [
        ("ada@example.com", "<ada.1@example.com>"),
        ("fay@example.com", "<fay.1@example.com>"),
    ]
    # MAIL, RCPT and DATA travel in one flight; a refused envelope is reset in the next one.
    assert ["MAIL", "RCPT", "DATA"] in seen.flights
    assert ["RSET", "MAIL", "RCPT", "DATA"] in seen.flights
    assert seen.connections == 3


def test_without_pipelining_each_command_waits_for_its_reply() -> None:
    script = Script(pipelining=False, rcpt={"bo@example.com": ["550 5.1.1 no"]})
    with scripted_smtp(script) as (_, seen, port):
        with open_transport(f"smtp://127.0.0.1:{port}") as transport:
            results = send_in_steps(transport, outgoing("ada", "bo", "cy"))
    assert [r.outcome for r in results] == [Outcome.accepted, Outcome.rejected, Outcome.accepted]
    assert all(len(flight) == 1 for flight in seen.flights)
    assert "DATA" not in [f[0] for f in seen.flights][4:7]  # nothing after a refused RCPT


def test_421_closes_the_connection_and_the_next_message_reconnects() -> None:
    script = Script(data={"bo@example.com": ["421 4.3.2 shutting down"]})
    with scripted_smtp(script) as (_, seen, port):
        with open_transport(f"smtp://127.0.0.1:{port}") as transport:
            results = send_in_steps(transport, outgoing("ada", "bo", "cy", "di"))
    assert [r.outcome for r in results] == [
        Outcome.accepted,
        Outcome.retry,
        Outcome.accepted,
        Outcome.accepted,
    ]
    assert "shutting down" in results[1].reply
    assert seen.connections == 2
    assert [who for who, _ in seen.accepted] == [
        "ada@example.com",
        "cy@example.com",
        "di@example.com",
    ]


def test_a_relay_that_never_greets_is_tried_connect_tries_times_then_is_down() -> None:
    with scripted_smtp(Script(greet=False)) as (_, seen, port):
        url = f"smtp://127.0.0.1:{port}"
        with open_transport(url, timeout=0.5, connections=4, connect_tries=2) as transport:
            results = send_in_steps(transport, outgoing(*(f"p{i}" for i in range(12))))
    assert seen.connections == 2
    assert {r.outcome for r in results} == {Outcome.unsent}
    assert transport.down is not None and "after 2 tries" in transport.down
    assert "timed out" in transport.down


def test_a_failed_login_is_tried_once_and_says_so() -> None:
    script = Script(auth="535 5.7.8 authentication credentials invalid")
    with scripted_smtp(script) as (_, seen, port):
        url = f"smtp://drip:wrong@127.0.0.1:{port}?starttls=no"
        with open_transport(url, connections=4, connect_tries=3) as transport:
            results = send_in_steps(transport, outgoing(*(f"p{i}" for i in range(10))))
    assert seen.auths == 1 and seen.connections == 1
    assert {r.outcome for r in results} == {Outcome.unsent}
    assert transport.down is not None
    assert transport.down.startswith("cannot log in to SMTP 127.0.0.1")
    assert "535 5.7.8 authentication credentials invalid" in transport.down
