"""Real-world bounce, complaint, auto-reply and reply formats, each classified right."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import pytest

from drip.inbound.classify import Kind, classify

CORPUS = Path(__file__).resolve().parent / "corpus"
TODAY = date(2026, 12, 18)
LESSON_ID = "<0f1e2d3c4b5a69788796a5b4c3d2e1f0@example.com>"
EXPECTED = list(csv.DictReader((CORPUS / "expected.csv").open(encoding="utf-8")))


def test_the_corpus_covers_the_formats_the_issue_names() -> None:
    names = " ".join(row["file"] for row in EXPECTED)
    assert len(EXPECTED) >= 20
    for form in ("exchange", "gmail", "postfix", "exim", "sendmail", "qmail", "yahoo", "ses",
                 "arf", "german", "french"):  # fmt: skip
        assert form in names, form
    assert {p.name for p in CORPUS.glob("*.eml")} == {row["file"] for row in EXPECTED}


@pytest.mark.parametrize("row", EXPECTED, ids=[row["file"] for row in EXPECTED])
def test_each_message_is_classified_right(row: dict[str, str]) -> None:
    finding = classify((CORPUS / row["file"]).read_bytes(), TODAY)
    assert finding.kind == Kind(row["kind"]), finding
    if row["status"]:
        assert finding.status == row["status"]
    if row["recipient"]:
        assert row["recipient"] in finding.recipients
    assert finding.until == (date.fromisoformat(row["until"]) if row["until"] else None)
    if row["file"] not in ("exim_delay_warning.eml", "autoreply_no_date.eml"):
        # The others point back at the lesson they answer or return (only the VERP address
        # identifies those two).
        assert LESSON_ID in finding.message_ids


def test_a_reply_keeps_the_persons_words_for_the_coach() -> None:
    finding = classify((CORPUS / "gmail_human_reply_html.eml").read_bytes(), TODAY)
    assert finding.text.startswith("Useful. Can you send me the source for the 40% figure?")
    assert finding.sender == "exec@corp.example"


def test_a_hard_bounce_gives_the_reason_a_manager_reads() -> None:
    finding = classify((CORPUS / "postfix_user_unknown.eml").read_bytes(), TODAY)
    assert "User unknown" in finding.reason
