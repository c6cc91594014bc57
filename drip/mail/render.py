"""Render a lesson once (Jinja2 + markdown-it + premailer) and personalize it cheaply per recipient."""

from __future__ import annotations

import hashlib
import logging
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from markdown_it import MarkdownIt
from markupsafe import Markup, escape
from premailer import Premailer

from drip.curriculum.model import Check, Course, Lesson
from drip.errors import RenderError

PLACEHOLDER = re.compile(r"%%DRIP-([A-Z]+(?:-\d+)?)%%")
TRACKED_SCHEMES = ("http://", "https://")
TEXT_WIDTH = 72


def slot(key: str) -> str:
    """The placeholder text that stands for a per-recipient value until personalization."""
    return f"%%DRIP-{key}%%"


@dataclass(frozen=True)
class Part:
    """A rendered text split at its placeholders: literals at even indexes, keys at odd ones."""

    pieces: tuple[str, ...]

    @classmethod
    def of(cls, text: str) -> Part:
        return cls(tuple(PLACEHOLDER.split(text)))

    @property
    def keys(self) -> set[str]:
        return set(self.pieces[1::2])

    def fill(self, values: Mapping[str, str]) -> str:
        """Join the literals with the values; a missing key is a bug and raises KeyError."""
        pieces = list(self.pieces)
        pieces[1::2] = [values[key] for key in pieces[1::2]]
        return "".join(pieces)


@dataclass(frozen=True)
class Welcome:
    """What the welcome says, when it rides inside the first lesson: who asks and when."""

    cohort: str
    sponsor: str
    send_time: str
    days: str


@dataclass(frozen=True)
class Extras:
    """What rides inside a lesson e-mail besides the lesson (one e-mail a day, whatever it is)."""

    welcome: Welcome | None = None  # when the first lesson is also the first contact
    review: Lesson | None = None  # the one review question this e-mail carries
    catch_up: int = 0  # lessons unopened before this one; 0 when there is nothing to say
    # The lesson's place in the reader's own sequence ("Lesson N of M"); 0: its place in the
    # course. They differ when a lesson was inserted before where the reader is.
    position: int = 0


NO_EXTRAS = Extras()


@dataclass(frozen=True)
class RenderedLesson:
    """One lesson rendered and CSS-inlined, waiting for per-recipient values."""

    course: Course
    lesson: Lesson
    position: int
    total: int
    subject: str
    html: Part
    text: Part
    links: tuple[str, ...]
    version: str
    extras: Extras = NO_EXTRAS

    def personalize(self, values: Mapping[str, str]) -> tuple[str, str]:
        """Return (html, text) for one recipient; values are escaped for the HTML part."""
        html_values = {key: str(escape(value)) for key, value in values.items()}
        return self.html.fill(html_values), self.text.fill(values)


def review_check(extras: Extras) -> Check | None:
    """The review wording of the carried question (its check when it has no review variant)."""
    lesson = extras.review
    if lesson is None or lesson.check is None:
        return None
    return lesson.check.review or lesson.check


def review_options(extras: Extras) -> int:
    check = review_check(extras)
    return len(check.options) if check else 0


def recipient_keys(rendered: RenderedLesson) -> list[str]:
    """Every per-recipient key the rendered lesson needs."""
    return sorted(rendered.html.keys | rendered.text.keys)


def email_environment(templates: Path) -> jinja2.Environment:
    """The Jinja environment of the e-mail templates (HTML autoescaped, `wrap` for text parts)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["wrap"] = wrap
    return env


def render_email(templates: Path, name: str, **context: Any) -> tuple[str, str]:
    """(inlined html, text) of an e-mail that is not a lesson (the digest): templates/email/NAME
    .html.j2 and .txt.j2, rendered and CSS-inlined once per message."""
    env = email_environment(templates)
    try:
        html = env.get_template(f"email/{name}.html.j2").render(**context)
        text = env.get_template(f"email/{name}.txt.j2").render(**context)
    except jinja2.TemplateError as exc:
        raise RenderError(f"{templates}/email/{name}: template error: {exc}") from None
    return inline_css(html), text


class Renderer:
    """Renders lessons from a templates folder, caching one inlined copy per lesson version."""

    def __init__(self, templates: Path) -> None:
        self.templates = templates
        self.env = email_environment(templates)
        self.body_env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
        self.version = _folder_hash(templates / "email")
        self.inline_calls = 0
        self._cache: dict[tuple[object, ...], RenderedLesson] = {}

    def render(self, course: Course, lesson: Lesson, extras: Extras = NO_EXTRAS) -> RenderedLesson:
        """Return the lesson rendered and inlined, from the cache when this version was seen;
        each combination of extras (a review question, a catch-up line, the welcome) is one
        more variant, rendered and inlined once."""
        position = extras.position or course.position(lesson.slug)
        total = len(course.lessons)
        review = extras.review
        key = (
            course.slug, lesson.slug, lesson.content_hash, position, total,
            extras.welcome, review.slug if review else "", review.content_hash if review else "",
            extras.catch_up,
        )  # fmt: skip
        cached = self._cache.get(key)
        if cached is None:
            cached = self._render(course, lesson, position, total, extras)
            self._cache[key] = cached
        return cached

    def _render(
        self, course: Course, lesson: Lesson, position: int, total: int, extras: Extras
    ) -> RenderedLesson:
        body = self._body(lesson, total)
        links: list[str] = []
        body_html = _markdown(links).render(body)
        options = len(lesson.check.options) if lesson.check else 0
        urls = {
            "open": slot("OPEN"),
            "confirm": slot("CONFIRM"),
            "pause": slot("PAUSE"),
            "unsubscribe": slot("UNSUBSCRIBE"),
            "schedule": slot("SCHEDULE"),
            "answers": [slot(f"ANSWER-{i}") for i in range(options)],
            "reviews": [slot(f"REVIEW-{i}") for i in range(review_options(extras))],
        }
        context: dict[str, Any] = {
            "course": course,
            "lesson": lesson,
            "position": position,
            "total": total,
            "name": slot("NAME"),
            "urls": urls,
            "subject": lesson.title,
            "preheader": lesson.summary,
            "review": review_check(extras),
            "review_lesson": extras.review,
            "catch_up": extras.catch_up,
            "welcome": extras.welcome,
            "minutes": lesson.minutes,
        }
        try:
            html = self.env.get_template("email/lesson.html.j2").render(
                body_html=Markup(body_html), **context
            )
            text = self.env.get_template("email/lesson.txt.j2").render(
                body_text=markdown_text(body), **context
            )
        except jinja2.TemplateSyntaxError as exc:
            raise RenderError(
                f"{exc.filename or exc.name}:{exc.lineno}: template error: {exc.message}"
            ) from None
        except jinja2.TemplateError as exc:
            raise RenderError(f"{self.templates}/email: template error: {exc}") from None
        self.inline_calls += 1
        inlined = inline_css(html)
        return RenderedLesson(
            course=course,
            lesson=lesson,
            position=position,
            total=total,
            subject=lesson.title,
            html=Part.of(inlined),
            text=Part.of(text),
            links=tuple(links),
            version=self.version,
            extras=extras,
        )

    def _body(self, lesson: Lesson, total: int) -> str:
        try:
            template = self.body_env.from_string(lesson.body)
            return template.render(name=slot("NAME"), first_name=slot("NAME"), lessons_total=total)
        except jinja2.TemplateSyntaxError as exc:
            line = lesson.body_line + (exc.lineno or 1) - 1
            raise RenderError(f"{lesson.path}:{line}: template error: {exc.message}") from None
        except jinja2.TemplateError as exc:
            raise RenderError(f"{lesson.path}:{lesson.body_line}: template error: {exc}") from None


def inline_css(html: str) -> str:
    """Inline the <style> rules into the elements (premailer); @media rules stay in <head>."""
    return str(
        Premailer(
            html,
            allow_network=False,
            disable_validation=True,
            cssutils_logging_level=logging.CRITICAL,
            remove_classes=False,
            strip_important=False,
        ).transform(doctype="<!DOCTYPE html>")
    )


def wrap(text: str, width: int = TEXT_WIDTH, indent: str = "", first: str | None = None) -> str:
    """Wrap text at `width` columns with a hanging `indent`; long words such as links stay whole."""
    lines = []
    for paragraph in str(text).split("\n"):
        lines.append(
            textwrap.fill(
                paragraph,
                width=width,
                initial_indent=indent if first is None else first,
                subsequent_indent=indent,
                break_long_words=False,
                break_on_hyphens=False,
            )
            or (indent if first is None else first).rstrip()
        )
        first = None
    return "\n".join(lines)


def markdown_text(body: str, width: int = TEXT_WIDTH) -> str:
    """A lesson body as plain text that reads well alone: no Markdown markers, wrapped at `width`,
    tracked links numbered [1] with their slots listed after the text (same order as the HTML)."""
    md = MarkdownIt("commonmark", {"html": False, "typographer": True})
    tokens = md.enable(["replacements", "smartquotes"]).parse(body)
    out = ""
    links: list[str] = []
    lists: list[int] = []  # per open list: the next number, 0 for bullets
    prefix = ""
    quote = 0
    in_item = False  # the last block was a list item: the next item follows on the next line
    for token in tokens:
        kind = token.type
        if kind in ("bullet_list_open", "ordered_list_open"):
            lists.append(int(token.attrGet("start") or 1) if kind == "ordered_list_open" else 0)
        elif kind in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
            in_item = bool(lists)
        elif kind == "list_item_open":
            prefix = f"{lists[-1]}. " if lists[-1] else "- "
            lists[-1] += 1 if lists[-1] else 0
        elif kind in ("blockquote_open", "blockquote_close"):
            quote += 1 if kind == "blockquote_open" else -1
        elif kind == "inline" and token.children:
            text = _inline_text(token.children, links)
            base = " " * 3 * max(len(lists) - 1, 0) + "> " * quote
            block = wrap(text, width, indent=base + " " * len(prefix), first=base + prefix)
            out += ("\n" if in_item and prefix else "\n\n" if out else "") + block
            in_item, prefix = bool(lists), ""
        elif kind in ("fence", "code_block"):
            code = "\n".join("    " + line for line in token.content.rstrip().split("\n"))
            out += ("\n\n" if out else "") + code
            in_item = False
        elif kind == "hr":
            out += ("\n\n" if out else "") + "-" * 24
            in_item = False
    if links:
        out += "\n\n" + "\n".join(
            f"[{n}] {slot(f'LINK-{n - 1}')}" for n in range(1, len(links) + 1)
        )
    return out


def _inline_text(children: Sequence[Any], links: list[str]) -> str:
    out: list[str] = []
    pending: list[str] = []  # the note each open link adds at its close
    for child in children:
        kind = child.type
        if kind in ("text", "code_inline"):
            out.append(child.content)
        elif kind == "softbreak":
            out.append(" ")
        elif kind == "hardbreak":
            out.append("\n")
        elif kind == "image":
            out.append(child.content or "")
        elif kind == "link_open":
            href = str(child.attrGet("href") or "")
            if href.startswith(TRACKED_SCHEMES):
                links.append(href)
                pending.append(f" [{len(links)}]")
            elif href.startswith("mailto:"):
                pending.append(f" ({href[len('mailto:') :]})")
            else:
                pending.append(f" ({href})" if href else "")
        elif kind == "link_close":
            out.append(pending.pop() if pending else "")
    return "".join(out).strip()


def _markdown(links: list[str]) -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "typographer": True})
    md.enable(["replacements", "smartquotes"])

    def link_open(renderer: Any, tokens: Sequence[Any], idx: int, options: Any, env: Any) -> str:
        href = tokens[idx].attrGet("href") or ""
        if isinstance(href, str) and href.startswith(TRACKED_SCHEMES):
            tokens[idx].attrSet("href", slot(f"LINK-{len(links)}"))
            links.append(href)
        return str(renderer.renderToken(tokens, idx, options, env))

    md.add_render_rule("link_open", link_open)
    return md


def _folder_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    if folder.is_dir():
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                digest.update(path.name.encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
