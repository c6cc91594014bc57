"""xAPI 1.0.3 statements (IEEE 9274.1.1) for the events a learning record keeps, and the target
that PUTs each one to a learning record store under its own statementId."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from drip.outbound.outbox import Item
from drip.states import EventKind

VERSION = "1.0.3"
ADL = "http://adlnet.gov/expapi"
VERBS: dict[str, str] = {
    EventKind.open.value: "experienced",
    EventKind.confirm.value: "completed",
    EventKind.answer.value: "answered",
    EventKind.review_answer.value: "answered",
    EventKind.complete.value: "completed",
    EventKind.pause.value: "suspended",
    EventKind.autopause.value: "suspended",
    EventKind.resume.value: "resumed",
    EventKind.wake.value: "resumed",
    EventKind.unsubscribe.value: "exited",
}
ANSWER_KINDS = frozenset({EventKind.answer.value, EventKind.review_answer.value})
LESSON_KINDS = frozenset({EventKind.open.value, EventKind.confirm.value, *ANSWER_KINDS})
LANGUAGE = "en"


@dataclass(frozen=True)
class Identity:
    """How statements name people and activities."""

    activity_base: str
    actor: str = "mbox"  # or "account"
    account_attribute: str = "employee_id"


def course_iri(identity: Identity, course: str) -> str:
    """The stable activity id of a course."""
    return f"{identity.activity_base}/courses/{course}"


def lesson_iri(identity: Identity, course: str, lesson: str) -> str:
    """The stable activity id of a lesson of a course."""
    return f"{course_iri(identity, course)}/lessons/{lesson}"


def actor(identity: Identity, item: Item) -> dict[str, Any]:
    """The person: by e-mail (mbox), or by HR id (account) with no e-mail in the statement;
    a person without that attribute gets drip's own person id under the activity base."""
    if identity.actor == "account":
        employee = item.attributes.get(identity.account_attribute)
        name = employee or f"drip-person-{item.person_id}"
        return {
            "objectType": "Agent",
            "account": {"homePage": identity.activity_base, "name": name},
        }
    agent: dict[str, Any] = {"objectType": "Agent", "mbox": f"mailto:{item.email}"}
    if item.name:
        agent["name"] = item.name
    return agent


def _activity(iri: str, kind: str, name: str) -> dict[str, Any]:
    return {
        "objectType": "Activity",
        "id": iri,
        "definition": {"type": f"{ADL}/activities/{kind}", "name": {LANGUAGE: name}},
    }


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def statement(identity: Identity, item: Item, namespace: uuid.UUID) -> dict[str, Any] | None:
    """The statement of one queued event, or None for an event that makes none."""
    verb = VERBS.get(item.kind)
    if verb is None:
        return None
    course = _activity(course_iri(identity, item.course), "course", item.course)
    context: dict[str, Any] = {
        "registration": str(uuid.uuid5(namespace, f"enrollment/{item.enrollment_id}")),
        "platform": "drip",
        "language": LANGUAGE,
    }
    result: dict[str, Any] | None = None
    if item.kind in LESSON_KINDS:
        if not item.lesson_slug:
            return None
        lesson = lesson_iri(identity, item.course, item.lesson_slug)
        target = _activity(lesson, "lesson", item.lesson_title or item.lesson_slug)
        context["contextActivities"] = {"parent": [course]}
        if item.kind in ANSWER_KINDS:
            review = item.kind == EventKind.review_answer.value
            name = target["definition"]["name"][LANGUAGE]
            target = _activity(
                f"{lesson}/check/review" if review else f"{lesson}/check",
                "question",
                f"Review: {name}" if review else f"Check: {name}",
            )
            context["contextActivities"]["grouping"] = [{"objectType": "Activity", "id": lesson}]
            result = {"success": bool(item.correct), "completion": True}
            if item.option is not None:
                result["response"] = (
                    chr(ord("a") + item.option) if item.option < 26 else str(item.option)
                )
        elif item.kind == EventKind.confirm.value:
            result = {"completion": True}
    else:
        target = course
        if item.kind == EventKind.complete.value:
            result = {"completion": True}
    body: dict[str, Any] = {
        "id": item.key,
        "actor": actor(identity, item),
        "verb": {"id": f"{ADL}/verbs/{verb}", "display": {"en-US": verb}},
        "object": target,
        "context": context,
        "timestamp": _time(item.at),
        "version": VERSION,
    }
    if result is not None:
        body["result"] = result
    return body


@dataclass
class XapiTarget:
    """A learning record store: each statement PUT to ENDPOINT/statements?statementId=KEY."""

    endpoint: str
    identity: Identity
    namespace: uuid.UUID
    username: str = ""
    password: str = ""
    name: str = "xapi"
    already: frozenset[int] = frozenset({409})  # the LRS has a statement with this id

    def send(self, client: httpx.Client, item: Item, now: datetime) -> httpx.Response:
        """PUT the item's statement; an event that makes no statement counts as delivered."""
        body = statement(self.identity, item, self.namespace)
        if body is None:
            return httpx.Response(204)
        auth = httpx.BasicAuth(self.username, self.password) if self.username else None
        return client.put(
            f"{self.endpoint}/statements",
            params={"statementId": item.key},
            json=body,
            headers={"X-Experience-API-Version": VERSION},
            auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
        )
