import email
import email.header
import email.policy
import email.utils
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from support import LESSONS, TEMPLATES, spam_score

from drip.curriculum.load import load_course
from drip.errors import HeaderError
from drip.mail.build import LessonMail, Recipient
from drip.mail.message import (
    MessageTemplate,
    check_header_value,
    format_address,
    new_message_id,
)
from drip.mail.render import Renderer, recipient_keys

NOW = datetime(2026, 12, 1, 7, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def template() -> MessageTemplate:
    course = load_course(LESSONS, "social-media-for-executives")
    rendered = Renderer(TEMPLATES).render(course, course.lessons[2])
    return MessageTemplate.of(rendered, "Drip Lessons <lessons@example.com>")


def values_for(template: MessageTemplate, name: str = "Ada") -> dict[str, str]:
    values = {
        k: f"https://learn.example.com/{k.lower()}/tok" for k in recipient_keys(template.rendered)
    }
    values["NAME"] = name
    return values


def build(
    template: MessageTemplate, name: str = "Ada Lovelace", address: str = "ada@example.com"
) -> email.message.EmailMessage:
    data = template.build(
        to_name=name,
        to_address=address,
        date=NOW,
        message_id="<m1@example.com>",
        values=values_for(template, name),
    )
    assert b"\n" not in data.replace(b"\r\n", b"")
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def test_message_has_the_headers_and_parts_mail_clients_expect(template: MessageTemplate) -> None:
    msg = build(template)
    assert msg["From"] == "Drip Lessons <lessons@example.com>"
    assert msg["To"] == "Ada Lovelace <ada@example.com>"
    assert msg["Subject"] == template.rendered.lesson.title
    assert len(msg.get_all("Date")) == 1 and len(msg.get_all("Message-ID")) == 1
    assert msg["List-Unsubscribe"] == "<https://learn.example.com/unsubscribe/tok>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "Lesson 3 of 20" in text and "Lesson 3 of 20" in html
    assert "Got it: https://learn.example.com/confirm/tok" in text
    assert 'href="https://learn.example.com/confirm/tok"' in html
    assert template.rendered.lesson.takeaway in " ".join(text.split())


def test_replies_and_out_of_office_answers_go_to_the_reply_address(
    template: MessageTemplate,
) -> None:
    msg = build(template)
    assert msg["Reply-To"] == "Drip Lessons <lessons@example.com>"  # by default the sender
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Auto-Response-Suppress"] == "OOF, AutoReply"
    lesson = template.rendered.lesson
    assert msg["Feedback-ID"] == f"{lesson.slug}:{lesson.course}:lesson:drip"
    other = MessageTemplate.of(
        template.rendered, template.sender, "Training team <training@example.com>"
    )
    assert build(other)["Reply-To"] == "Training team <training@example.com>"


def test_plain_text_reads_well_alone(template: MessageTemplate) -> None:
    text = build(template).get_body(("plain",)).get_content()
    assert "**" not in text and "](" not in text and "__" not in text
    too_long = [line for line in text.splitlines() if len(line) > 72 and "://" not in line]
    assert too_long == []
    assert "A. " in text and "QUICK CHECK" in text and "TAKEAWAY" in text


def test_script_in_name_is_escaped_in_html(template: MessageTemplate) -> None:
    msg = build(template, name="<script>alert(1)</script>")
    html = msg.get_body(("html",)).get_content()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert msg["To"].addresses[0].display_name == "<script>alert(1)</script>"


@pytest.mark.parametrize(
    "bad",
    [
        "Eve\r\nBcc: x@evil.example",
        "Eve\nBcc: x@evil.example",
        "=?UTF-8?Q?=0A?=Bcc: x@evil.example",
        "=?utf-8?b?Cg==?=",
    ],
)
def test_header_injection_is_refused(template: MessageTemplate, bad: str) -> None:
    with pytest.raises(HeaderError, match="line break"):
        template.build(
            to_name=bad,
            to_address="eve@example.com",
            date=NOW,
            message_id="<m@example.com>",
            values=values_for(template),
        )


def test_subject_with_newline_is_refused() -> None:
    with pytest.raises(HeaderError):
        check_header_value("Subject", "Hello\r\nBcc: x@evil.example")


@given(st.text(min_size=1, max_size=80).filter(lambda s: s.strip() == s and s.isprintable()))
@hsettings(max_examples=300, deadline=None)
def test_any_printable_name_round_trips(name: str) -> None:
    header = format_address(name, "a@example.com")
    raw = f"To: {header}\r\n\r\n".encode("ascii")
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["To"].addresses[0].addr_spec == "a@example.com"
    # RFC 2047 decoding (CPython's policy.default adds a space between folded encoded words
    # inside a phrase, which the RFC says to drop; email.header follows the RFC).
    phrase = header.rpartition(" <")[0]
    if phrase.startswith("=?"):
        name_part = str(email.header.make_header(email.header.decode_header(phrase)))
    else:
        name_part = email.utils.parseaddr(header)[0]
    assert name_part == name


def test_non_ascii_name_and_subject(tmp_path: Path) -> None:
    course = load_course(LESSONS, "sample")
    lesson = course.lessons[0]
    rendered = Renderer(TEMPLATES).render(course, lesson)
    template = MessageTemplate.of(rendered, "Équipe Drip <lessons@example.com>")
    msg = build(template, name="Zoë Ärger-Łukasz")
    assert msg["To"].addresses[0].display_name == "Zoë Ärger-Łukasz"
    assert msg["From"].addresses[0].display_name == "Équipe Drip"
    assert "Zoë Ärger-Łukasz" in msg.get_body(("plain",)).get_content()


@given(
    literals=st.lists(
        st.text(
            alphabet=st.one_of(
                st.characters(blacklist_categories=("Cs",), blacklist_characters="\r%"),
                st.sampled_from(".\n"),  # lines that start with a dot, often
            ),
            max_size=300,
        ),
        min_size=1,
        max_size=6,
    ),
    values=st.lists(
        st.text(
            alphabet=st.one_of(
                st.characters(blacklist_categories=("Cs", "Cc")), st.sampled_from(".")
            ),
            max_size=120,
        ),
        max_size=5,
    ),
    escape_html=st.booleans(),
)
@hsettings(max_examples=300, deadline=None)
def test_encoded_parts_decode_to_the_personalized_text(
    literals: list[str], values: list[str], escape_html: bool
) -> None:
    import binascii

    from markupsafe import escape

    from drip.mail.message import EncodedPart
    from drip.mail.render import Part

    keys = [f"K-{i}" for i in range(len(literals) - 1)]
    text = "".join(
        lit + (f"%%DRIP-{keys[i]}%%" if i < len(keys) else "") for i, lit in enumerate(literals)
    )
    part = Part.of(text)
    vals = {k: (values[i] if i < len(values) else "") for i, k in enumerate(keys)}
    encoded = EncodedPart.of(part, escape_html).fill(vals)
    assert all(len(line) <= 76 for line in encoded.split("\r\n"))
    # No line starts with "." (SMTP sends the message without dot-stuffing it).
    assert not encoded.startswith(".") and "\r\n." not in encoded
    expected = part.fill({k: str(escape(v)) if escape_html else v for k, v in vals.items()})
    decoded = binascii.a2b_qp(encoded.encode("ascii")).decode("utf-8")
    assert decoded == expected.replace("\r\n", "\n").replace("\n", "\r\n")


def test_spamassassin_local_rules_score_a_lesson_below_1() -> None:
    course = load_course(LESSONS, "social-media-for-executives")
    mail = LessonMail(Renderer(TEMPLATES), "Drip Lessons <lessons@example.org>",
                      "https://lessons.example.org", "k" * 32)  # fmt: skip
    recipient = Recipient(123, "ada@example.com", "Ada Lovelace", NOW, "<abc123@example.org>")
    score, report = spam_score(mail.build(course, course.lessons[2], recipient))
    assert score < 1.0, report


def test_plain_text_links_are_short_enough_for_72_columns() -> None:
    course = load_course(LESSONS, "social-media-for-executives")
    mail = LessonMail(Renderer(TEMPLATES), "Drip Lessons <lessons@example.org>",
                      "https://learn.example.com", "k" * 32)  # fmt: skip
    recipient = Recipient(12_345_678, "ada@example.com", "Ada", NOW, "<a1@example.org>")
    message = email.message_from_bytes(
        mail.build(course, course.lessons[2], recipient), policy=email.policy.default
    )
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    tracked = [line for line in text.splitlines() if "learn.example.com/" in line]
    assert len(tracked) >= 7  # answers, got it, pause, unsubscribe
    assert max(len(line) for line in tracked) <= 72
    assert max(len(line) for line in text.splitlines() if "://" not in line) <= 72


@pytest.mark.parametrize("kind", ["welcome", "completion", "review"])
def test_spamassassin_local_rules_score_the_welcome_and_other_notes_below_1(kind: str) -> None:
    from drip.mail.notes import LessonResult, NoteMail, Summary

    course = load_course(LESSONS, "social-media-for-executives")
    notes = NoteMail(TEMPLATES, "Drip Lessons <lessons@example.org>", "https://lessons.example.org", "k" * 32)  # fmt: skip
    who = Recipient(123, "ada@example.com", "Ada Lovelace", NOW, "<n123@example.org>")
    if kind == "welcome":
        data = notes.welcome(course, who, cohort="Leaders", sponsor="Our CEO asked for this.",
                             first_lesson=NOW, timezone="Europe/London", days="weekday")  # fmt: skip
    elif kind == "review":
        data = notes.review(course, course.lessons[2], who)
    else:
        results = [LessonResult(x.title, x.takeaway, "right") for x in course.lessons]
        summary = Summary("Leaders", NOW.date(), NOW.date(), 20, results, [])
        data = notes.completion(course, who, summary)
    score, report = spam_score(data)
    assert score < 1.0, report


def test_message_ids_are_unique_and_sort_in_the_order_they_were_made():
    # The time comes first so that a pass's new deliveries sit together at one end of the
    # unique index on message_id; 128 random bits after it keep each unique and unguessable.
    ids = [new_message_id("example.com") for _ in range(2_000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    for message_id in ids[:50]:
        stamp, _, rest = message_id[1:-1].partition(".")
        random_part, _, domain = rest.partition("@")
        assert len(stamp) == 14 and int(stamp, 16) > 0
        assert len(random_part) == 32 and int(random_part, 16) >= 0
        assert domain == "example.com"
        assert message_id.startswith("<") and message_id.endswith(">")
    assert len({i.split(".")[1] for i in ids}) == len(ids)  # the random parts alone differ
    check_header_value("Message-ID", ids[0])
