"""The e-mail templates as mail clients treat them: WCAG contrast of every text/background pair
in the light and dark schemes, Outlook's structures after premailer, text size with <body>'s
styles dropped (Gmail), tap targets, headings.

Colours are read the way clients apply them: the light scheme from the inline styles premailer
wrote; the dark one from those overridden by the !important rules of the
`prefers-color-scheme: dark` block, or of Outlook.com's [data-ogsc] rules."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

import cssutils
import lxml.html
import pytest
from support import LESSONS, TEMPLATES

from drip.curriculum.load import load_course
from drip.mail.build import Recipient
from drip.mail.notes import LessonResult, NoteMail
from drip.mail.notes import Summary as NoteSummary
from drip.mail.render import NO_EXTRAS, Extras, Renderer, Welcome, recipient_keys
from drip.reports.digest import Named, digest_parts
from drip.reports.model import CohortReport, PersonRow, Summary

DARK_MEDIA = "prefers-color-scheme: dark"
OGSC = "[data-ogsc]"  # Outlook.com's dark mode: text colours
OGSB = "[data-ogsb]"  # and backgrounds
SCHEMES = ("light", "dark", "ogsc")


def parse_style(text: str) -> dict[str, str]:
    """An inline style attribute as a property: value map (last one wins, as in browsers)."""
    out = {}
    for part in (text or "").split(";"):
        name, colon, value = part.partition(":")
        if colon:
            out[name.strip().lower()] = value.replace("!important", "").strip()
    return out


@dataclass(frozen=True)
class Rule:
    selector: str  # ".class" or "tag"
    style: dict[str, str]

    def matches(self, element: lxml.html.HtmlElement) -> bool:
        if self.selector.startswith("."):
            return self.selector[1:] in (element.get("class") or "").split()
        return element.tag == self.selector


def scheme_rules(html: str) -> dict[str, list[Rule]]:
    """The dark-mode rules of the e-mail's kept <style> blocks, per scheme."""
    rules: dict[str, list[Rule]] = {"light": [], "dark": [], "ogsc": []}
    for css in re.findall(r"<style[^>]*>(.*?)</style>", html, flags=re.S):
        sheet = cssutils.parseString(css, validate=False)
        for rule in sheet:
            if rule.type == rule.MEDIA_RULE and DARK_MEDIA in rule.media.mediaText:
                for inner in rule:
                    rules["dark"] += _rules(inner.selectorText, inner.style.cssText, strip="")
            elif rule.type == rule.STYLE_RULE and OGSC in rule.selectorText:
                selectors = rule.selectorText.replace(OGSB, OGSC)
                rules["ogsc"] += _rules(selectors, rule.style.cssText, strip=OGSC)
    return rules


def _rules(selectors: str, css: str, strip: str) -> list[Rule]:
    style = parse_style(css.replace("\n", ";"))
    out = []
    for selector in selectors.split(","):
        selector = selector.replace(strip, "").strip() if strip else selector.strip()
        if not re.fullmatch(r"\.?[a-z][a-z0-9-]*", selector):
            continue  # only simple selectors here; a test asserts every rule is one
        out.append(Rule(selector, style))
    return out


class Styled:
    """An e-mail's elements with their computed colours and font sizes in one scheme."""

    def __init__(self, html: str, scheme: str, strip_body: bool = False) -> None:
        self.root = lxml.html.document_fromstring(html)
        self.rules = [] if scheme == "light" else scheme_rules(html)[scheme]
        self.strip_body = strip_body

    def style(self, element: lxml.html.HtmlElement) -> dict[str, str]:
        if self.strip_body and element.tag == "body":
            return {}
        style = {}
        if element.get("bgcolor"):
            style["background-color"] = element.get("bgcolor")
        style.update(parse_style(element.get("style", "")))
        for rule in self.rules:
            if rule.matches(element):
                style.update(rule.style)
        if "border-color" in style:
            for side in ("border", "border-left"):
                if side in style:
                    style[side] = re.sub(r"#[0-9a-fA-F]{3,6}", style["border-color"], style[side])
        return style

    def inherited(self, element: lxml.html.HtmlElement, prop: str) -> str | None:
        node = element
        while node is not None:
            value = self.style(node).get(prop)
            if value:
                return value
            node = node.getparent()
        return None

    def background(self, element: lxml.html.HtmlElement) -> str:
        node = element
        while node is not None:
            style = self.style(node)
            value = style.get("background-color") or _colour_in(style.get("background", ""))
            if value and value != "transparent":
                return value
            node = node.getparent()
        return "#ffffff"

    def text_elements(self) -> Iterator[lxml.html.HtmlElement]:
        """Elements that show text of their own, outside <head> and hidden preheaders."""
        body = self.root.find("body")
        for element in body.iter():
            if not isinstance(element.tag, str) or self._hidden(element):
                continue
            own = (element.text or "").strip() or any(
                (child.tail or "").strip() for child in element
            )
            if own:
                yield element

    def _hidden(self, element: lxml.html.HtmlElement) -> bool:
        node = element
        while node is not None:
            if self.style(node).get("display") == "none":
                return True
            node = node.getparent()
        return False


def _colour_in(value: str) -> str | None:
    found = re.search(r"#[0-9a-fA-F]{3,6}\b", value)
    return found.group(0) if found else None


def rgb(colour: str) -> tuple[float, float, float]:
    colour = colour.strip().lower()
    named = {"white": "#ffffff", "black": "#000000", "#fff": "#ffffff", "#000": "#000000"}
    colour = named.get(colour, colour)
    if not re.fullmatch(r"#[0-9a-f]{3}|#[0-9a-f]{6}", colour):
        raise ValueError(f"colour {colour!r} is not #rgb or #rrggbb")
    if len(colour) == 4:
        colour = "#" + "".join(c * 2 for c in colour[1:])
    return tuple(int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))  # type: ignore[return-value]


def luminance(colour: str) -> float:
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """WCAG 2 contrast ratio of two colours."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def px(value: str | None) -> float:
    if not value:
        return 0.0
    found = re.match(r"\s*([\d.]+)px", value)
    return float(found.group(1)) if found else 0.0


def describe(element: lxml.html.HtmlElement) -> str:
    text = " ".join((element.text_content() or "").split())[:40]
    return f"<{element.tag} class={element.get('class')!r}> {text!r}"


# -- the e-mails under test --------------------------------------------------------------------

URL = "https://learn.example.com/x/BUISZyeaOA_IeImwOy0cnkE"


def lesson_html(course_slug: str, index: int, extras: Extras = NO_EXTRAS) -> str:
    course = load_course(LESSONS, course_slug)
    rendered = Renderer(TEMPLATES).render(course, course.lessons[index], extras)
    values = {key: f"{URL}{key}" for key in recipient_keys(rendered)} | {"NAME": "Ada"}
    return rendered.personalize(values)[0]


def emails() -> dict[str, str]:
    """Every e-mail template's output, by name."""
    return {
        "lesson (sample 1)": lesson_html("sample", 0),
        "lesson (sample 2, a list)": lesson_html("sample", 1),
        "lesson (with sources)": lesson_html("social-media-for-executives", 2),
        "lesson (welcome, review, catch-up)": lesson_html("social-media-for-executives", 3, EXTRAS),
        **note_emails(),
        **digest_emails(),
    }


EXECUTIVES = load_course(LESSONS, "social-media-for-executives")
EXTRAS = Extras(
    welcome=Welcome("Leaders Q1", "The CEO asked us to run this course.", "07:30", "weekday"),
    review=EXECUTIVES.lessons[1],
    catch_up=3,
)


def note_emails() -> dict[str, str]:
    """The welcome, review, completion and pause-note e-mails, as their HTML parts."""
    notes = NoteMail(TEMPLATES, "Drip Lessons <lessons@example.org>", URL.rstrip("/"), "k" * 32)
    who = Recipient(7, "ada@example.com", "Ada Lovelace", datetime(2026, 3, 9, 7, 30, tzinfo=UTC), "<n1@example.org>")  # fmt: skip
    course = EXECUTIVES
    summary = NoteSummary(
        "Leaders Q1", date(2026, 2, 2), date(2026, 3, 2), 18,
        [LessonResult(x.title, x.takeaway, ("right", "wrong", "not answered")[i % 3])
         for i, x in enumerate(course.lessons)],
        [course.lessons[1].check.question],  # type: ignore[union-attr]
    )  # fmt: skip
    built = {
        "welcome": notes.welcome(
            course,
            who,
            cohort="Leaders Q1",
            sponsor="The CEO asked us to run this course.",
            first_lesson=datetime(2026, 3, 10, 7, 30, tzinfo=UTC),
            timezone="Europe/London",
            days="weekday",
        ),  # fmt: skip
        "review": notes.review(course, course.lessons[4], who),
        "completion": notes.completion(course, who, summary),
        "note": notes.note(course, who, 5),
    }
    return {name: _html_part(data) for name, data in built.items()}


def _html_part(data: bytes) -> str:
    message = email.message_from_bytes(data, policy=email.policy.default)
    body = message.get_body(("html",))
    assert body is not None
    return str(body.get_content())


def digest_report(behind: int = 3) -> CohortReport:
    """A cohort's report as the digest reads it, with people behind (no database needed)."""
    people = [
        PersonRow(f"p{i}@example.com", f"Person {i}", "active", "", 3, 20, "3 of 20", None, 0, 0, i < behind)
        for i in range(12)
    ]  # fmt: skip
    summary = Summary(
        "Leaders Q1", "sample", "Sample: three quick lessons", 20, 12, 10, 1, 0, 1, 0, 0, 36,
        20, 24, 0.56, 0.67, 9, 8, 6, 0.15, 12 - behind, behind,
    )  # fmt: skip
    return CohortReport(summary, [], people, [], [], True, datetime(2026, 3, 9, 8, tzinfo=UTC))


def digest_emails() -> dict[str, str]:
    paused = [Named("Hal Jordan", "hal@example.com")]
    html, _ = digest_parts(digest_report(), paused, TEMPLATES, "leaders-q1-2026-03-09.html")
    return {"digest": html}


EMAILS = emails()


def text_failures(html: str, scheme: str) -> tuple[list[str], int]:
    styled = Styled(html, scheme)
    failures, checked = [], 0
    for element in styled.text_elements():
        colour = styled.inherited(element, "color") or "#000000"
        background = styled.background(element)
        size = px(styled.inherited(element, "font-size")) or 16
        bold = (styled.inherited(element, "font-weight") or "") in ("bold", "600", "700", "800")
        large = size >= 24 or (bold and size >= 18.66)
        needed = 3.0 if large else 4.5
        ratio = contrast(colour, background)
        checked += 1
        if ratio < needed:
            failures.append(
                f"{scheme}: {describe(element)} {colour} on {background} is {ratio:.2f}:1 < {needed}"
            )
    return failures, checked


CONTROLS = ("option", "check", "button-cell", "takeaway")


def control_failures(html: str, scheme: str) -> list[str]:
    """Control boundaries (borders, or a filled button's edge) need 3:1 against what is behind."""
    styled = Styled(html, scheme)
    failures = []
    for element in styled.root.iter():
        classes = (element.get("class") or "").split() if isinstance(element.tag, str) else []
        if not set(classes) & set(CONTROLS):
            continue
        behind = styled.background(element.getparent())
        style = styled.style(element)
        border = _colour_in(style.get("border", "") or style.get("border-left", ""))
        edge = border or style.get("background-color") or styled.background(element)
        ratio = contrast(edge, behind)
        if ratio < 3.0:
            failures.append(f"{scheme}: {describe(element)} edge {edge} on {behind}: {ratio:.2f}:1")
    return failures


@pytest.mark.parametrize("name", EMAILS)
@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_text_and_control_colour_pair_meets_wcag_aa(name: str, scheme: str) -> None:
    html = EMAILS[name]
    failures, checked = text_failures(html, scheme)
    assert checked >= (8 if name == "note" else 15), "the walk found too little text to judge"
    assert failures + control_failures(html, scheme) == []


@pytest.mark.parametrize("name", EMAILS)
def test_dark_rules_are_simple_selectors_the_contrast_check_understands(name: str) -> None:
    html = EMAILS[name]
    rules = scheme_rules(html)
    assert len(rules["dark"]) >= 10
    assert {r.selector for r in rules["ogsc"]} == {r.selector for r in rules["dark"]}
    assert 'name="color-scheme" content="light dark"' in html
    assert "color-scheme: light dark" in html


def test_contrast_formula_matches_known_pairs() -> None:
    assert round(contrast("#ffffff", "#000000"), 1) == 21.0
    assert round(contrast("#ffffff", "#059669"), 2) == 3.77  # main's old "Got it" button
    assert round(contrast("#6b7280", "#f3f4f6"), 2) == 4.39  # main's old footer
    assert contrast("#ffffff", "#047857") >= 4.5


@pytest.mark.parametrize("name", EMAILS)
def test_outlook_structures_survive_premailer(name: str) -> None:
    html = EMAILS[name]
    opened = html.count("<!--[if mso]>")
    assert opened >= 2 and opened == html.count("<![endif]-->") - html.count("<!--[if !mso]>")
    assert re.search(r'<!--\[if mso\]><table role="presentation" align="center" width="600"', html)
    assert "<o:OfficeDocumentSettings>" in html and "<o:PixelsPerInch>96" in html
    root = lxml.html.document_fromstring(html)
    tables = root.findall(".//table")
    assert tables and all(t.get("role") == "presentation" for t in tables)
    assert any("max-width:600px" in (t.get("style") or "").replace(" ", "") for t in tables)
    for div in root.iter("div"):
        style = parse_style(div.get("style", ""))
        layout = {k for k in style if k.startswith(("width", "max-width", "padding", "margin"))}
        assert not layout, f"a div carries layout {layout}; Outlook ignores it: {describe(div)}"


@pytest.mark.parametrize("name", [n for n in EMAILS if n.startswith("lesson")])
def test_the_got_it_button_is_bulletproof(name: str) -> None:
    html = EMAILS[name]
    vml = re.search(
        r"<!--\[if mso\]>\s*<v:roundrect[^>]*href=\"([^\"]+)\"(.*?)<!\[endif\]-->", html, re.S
    )
    assert vml, "no VML button for Outlook"
    assert vml.group(1) == f"{URL}CONFIRM" and "Got it" in vml.group(2)
    assert 'fillcolor="#047857"' in vml.group(0)
    assert re.search(r"<!--\[if !mso\]><!-- -->\s*<a class=\"button\"", html)
    for option in lxml.html.document_fromstring(html).find_class("option"):
        assert option.tag == "td" and "mso-padding-alt" in option.get("style", "")


@pytest.mark.parametrize("name", EMAILS)
def test_text_stays_16px_when_gmail_drops_the_body_styles(name: str) -> None:
    styled = Styled(EMAILS[name], "light", strip_body=True)
    small = []
    for element in styled.text_elements():
        if "label" in (element.get("class") or "") or "meta" in (element.get("class") or ""):
            continue  # short uppercase labels and the course line, 15 px
        size = px(styled.inherited(element, "font-size"))
        if size < 16:
            small.append(f"{describe(element)} at {size or 'the default'} px")
    assert small == []
    assert "font-size" not in parse_style(styled.root.find("body").get("style", ""))


@pytest.mark.parametrize("name", [n for n in EMAILS if n.startswith("lesson")])
def test_tap_targets_are_44px_and_headings_name_takeaway_and_check(name: str) -> None:
    styled = Styled(EMAILS[name], "light")
    root = styled.root
    assert root.get("lang") == "en"
    targets = root.find_class("option-link") + root.find_class("footer-link")
    assert len(targets) >= 4
    for link in targets:
        style = parse_style(link.get("style", ""))
        sides = style["padding"].split()
        top, bottom = px(sides[0]), px(sides[2] if len(sides) > 2 else sides[0])
        line = px(styled.inherited(link, "line-height"))
        assert top + bottom + line >= 44, describe(link)
        assert style.get("display") in ("block", "inline-block"), describe(link)
    headings = [" ".join(h.text_content().split()) for h in root.iter("h1", "h2")]
    # The lesson's own headings, after any welcome, in reading order.
    own = [h for h in headings[1:] if h in ("Takeaway", "Quick check")]
    assert own == ["Takeaway", "Quick check"]
    assert "One tap on an answer sends it" in root.text_content()
    checks = root.find_class("check")  # the lesson's check, then any review question
    for check in checks:
        letters = [s.text for s in check.find_class("letter")]
        assert letters == ["A.", "B.", "C.", "D."][: len(letters)] and len(letters) >= 3


def test_the_digest_names_the_people_behind_and_paused() -> None:
    html, text = digest_parts(
        digest_report(), [Named("Hal Jordan", "hal@example.com")], TEMPLATES, "r.html"
    )
    for body in (html, text):
        assert "Person 0" in body and "p2@example.com" in body and "Person 3" not in body
        assert "Hal Jordan" in body and "hal@example.com" in body
        assert "Checks answered right" in body and "6 of 8" in body
    assert max(len(line) for line in text.splitlines()) <= 72


def test_every_email_template_is_checked() -> None:
    # A new e-mail template (welcome, completion) joins emails() above, so the checks cover it.
    names = {
        path.name.removesuffix(".html.j2")
        for path in (TEMPLATES / "email").glob("*.html.j2")
        if path.name not in ("base.html.j2", "_macros.html.j2", "_top.html.j2")  # _top: in a lesson
    }
    checked = {name.split(" ")[0] for name in EMAILS}
    assert names <= checked, f"add {sorted(names - checked)} to emails() in this file"


@pytest.mark.parametrize("name", EMAILS)
def test_gmail_does_not_clip_the_message(name: str) -> None:
    assert len(EMAILS[name].encode("utf-8")) < 90_000  # Gmail clips HTML over 102 kB
