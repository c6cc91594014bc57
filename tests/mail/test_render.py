from pathlib import Path

from support import LESSONS, TEMPLATES

from drip.curriculum.load import load_course
from drip.mail.render import Renderer, recipient_keys


def test_one_lesson_for_1000_recipients_inlines_css_once() -> None:
    course = load_course(LESSONS, "social-media-for-executives")
    renderer = Renderer(TEMPLATES)
    lesson = course.lessons[0]
    htmls = set()
    for i in range(1000):
        rendered = renderer.render(course, lesson)
        values = {k: f"https://x.example/{k}/{i}" for k in recipient_keys(rendered)}
        values["NAME"] = f"Person {i}"
        html, text = rendered.personalize(values)
        htmls.add(html)
    assert renderer.inline_calls == 1
    assert len(htmls) == 1000
    assert 'style="' in next(iter(htmls))  # CSS was inlined into the elements


def test_html_is_one_column_phone_friendly_and_complete() -> None:
    course = load_course(LESSONS, "social-media-for-executives")
    rendered = Renderer(TEMPLATES).render(course, course.lessons[0])
    html, text = rendered.personalize(
        {k: "https://x.example/" + k for k in recipient_keys(rendered)} | {"NAME": "Ada"}
    )
    assert "max-width:600px" in html.replace(" ", "")
    assert 'name="viewport"' in html
    assert "@media" in html  # the phone rules survive inlining
    assert "Lesson 1 of 20" in html and "min read" in html
    assert "Takeaway" in html and "Got it" in html
    assert "https://x.example/UNSUBSCRIBE" in html and "https://x.example/PAUSE" in html
    for i in range(len(course.lessons[0].check.options)):
        assert f"https://x.example/ANSWER-{i}" in html and f"https://x.example/ANSWER-{i}" in text


def test_body_links_become_tracked_slots(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "course.yml").write_text("title: T\n")
    (folder / "01-a.md").write_text(
        "---\ntitle: A\nsummary: S\ntakeaway: T\n---\nRead [Pew](https://www.pewresearch.org/) and [this](mailto:x@y.z), {{ name }}.\n"
    )
    course = load_course(tmp_path, "c")
    rendered = Renderer(TEMPLATES).render(course, course.lessons[0])
    assert rendered.links == ("https://www.pewresearch.org/",)
    html, text = rendered.personalize(
        {k: f"[{k}]" for k in recipient_keys(rendered)} | {"NAME": "Bo"}
    )
    assert 'href="[LINK-0]"' in html and "pewresearch" not in html
    assert "Bo." in text
