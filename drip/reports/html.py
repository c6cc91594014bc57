"""The self-contained HTML report: Jinja2 with inline CSS and SVG charts drawn here, no script."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from drip.errors import RenderError
from drip.reports.model import CohortReport, DayRow, LessonRow
from drip.reports.retention import RetentionRow

TEMPLATE = "report.html.j2"
MAX_ROWS = 500  # the report is mailed as an attachment; CSV has everyone
WIDTH = 720
GREY, BLUE, GREEN, AMBER, RED = "#cbd5e1", "#2563eb", "#059669", "#d97706", "#b91c1c"
FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"'


def _svg(height: int, label: str, body: list[str]) -> Markup:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'width="100%" role="img" aria-label="{escape(label)}" {FONT} font-size="12">'
        f"<title>{escape(label)}</title>"
    )
    # Whitespace between the text elements: spam filters read words glued by tags as obfuscation.
    return Markup(head + "\n" + "\n".join(body) + "\n</svg>")


def _text(x: float, y: float, value: object, anchor: str = "start", extra: str = "") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {extra}>{escape(str(value))}</text>'
    )


def _rect(x: float, y: float, w: float, h: float, fill: str) -> str:
    return f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{h:.1f}" fill="{fill}"/>'


def _legend(y: float, items: list[tuple[str, str]]) -> list[str]:
    parts, x = [], 0.0
    for name, colour in items:
        parts += [_rect(x, y - 9, 10, 10, colour), _text(x + 14, y, name)]
        x += 24 + 7 * len(name)
    return parts


def progress_chart(progress: list[tuple[int, int]]) -> Markup:
    """Bars of how many people have received 0, 1, ... N lessons."""
    height, top, bottom, left = 200, 20, 34, 4
    plot_h, plot_w = height - top - bottom, WIDTH - left - 4
    most = max((k for _, k in progress), default=0) or 1
    step = plot_w / max(len(progress), 1)
    parts = [_line(left, top + plot_h, WIDTH, top + plot_h)]
    for i, (lessons, people) in enumerate(progress):
        h = plot_h * people / most
        x = left + i * step
        parts.append(_rect(x + step * 0.15, top + plot_h - h, step * 0.7, h, BLUE))
        if people:
            parts.append(_text(x + step / 2, top + plot_h - h - 4, people, "middle"))
        if len(progress) <= 31 or i % 2 == 0:
            parts.append(
                _text(x + step / 2, top + plot_h + 14, lessons, "middle", 'fill="#475569"')
            )
    parts.append(
        _text(left + plot_w / 2, height - 4, "lessons received", "middle", 'fill="#475569"')
    )
    return _svg(height, "How many people have received each number of lessons", parts)


def _line(x1: float, y1: float, x2: float, y2: float) -> str:
    return f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="#94a3b8"/>'


def funnel_chart(lessons: list[LessonRow], human_only: bool) -> Markup:
    """Nested bars per lesson: sent, opened, confirmed and answered right."""
    row, top, label_w, number_w = 26, 26, 236, 96
    height = top + row * len(lessons) + 6
    plot_w = WIDTH - label_w - number_w
    most = max((x.sent for x in lessons), default=0) or 1
    opened_name = "opened (people)" if human_only else "opened (all)"
    parts = _legend(12, [("sent", GREY), (opened_name, BLUE), ("got it", GREEN),
                         ("answered right", AMBER)])  # fmt: skip
    for i, lesson in enumerate(lessons):
        y = top + i * row
        opened = lesson.opened_human if human_only else lesson.opened_all
        title = f"{lesson.position}. {lesson.title}"
        if len(title) > 34:
            title = title[:33].rstrip() + "…"
        parts.append(_text(0, y + 15, title))
        for value, colour, h in (
            (lesson.sent, GREY, 20), (opened, BLUE, 14), (lesson.confirmed, GREEN, 8),
            (lesson.answered_right, AMBER, 3),
        ):  # fmt: skip
            parts.append(_rect(label_w, y + (20 - h) / 2 + 1, plot_w * value / most, h, colour))
        share = f"{opened / lesson.sent:.0%} of {lesson.sent}" if lesson.sent else "not sent yet"
        parts.append(_text(WIDTH, y + 15, share, "end", 'fill="#334155"'))
    return _svg(height, "Lesson funnel: sent, opened, got it and answered right", parts)


def _every_day(days: list[DayRow]) -> list[DayRow]:
    """The rows with the quiet days between them filled in, so the axis is true time."""
    if not days:
        return []
    found = {d.day: d for d in days}
    first, last = date.fromisoformat(days[0].day), date.fromisoformat(days[-1].day)
    span = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    return [found.get(d.isoformat(), DayRow(d.isoformat(), 0, 0, 0, 0)) for d in span]


def activity_chart(days: list[DayRow]) -> Markup:
    """Stacked bars of events per day: lessons sent, opens, responses and other changes."""
    filled = _every_day(days)
    height, top, bottom, left = 240, 24, 34, 36
    plot_h, plot_w = height - top - bottom, WIDTH - left - 4
    most = max((d.sent + d.opened + d.responded + d.other for d in filled), default=0) or 1
    step = plot_w / max(len(filled), 1)
    label_every = max(1, round(len(filled) / 12))
    parts = _legend(12, [("lessons sent", GREY), ("opens", BLUE), ("clicks, got it, answers", GREEN),
                         ("pauses, unsubscribes, bounces", RED)])  # fmt: skip
    parts.append(_line(left, top + plot_h, WIDTH, top + plot_h))
    parts.append(_text(left - 4, top + 10, most, "end", 'fill="#475569"'))
    for i, day in enumerate(filled):
        x, base = left + i * step, float(top + plot_h)
        for value, colour in ((day.sent, GREY), (day.opened, BLUE), (day.responded, GREEN),
                              (day.other, RED)):  # fmt: skip
            h = plot_h * value / most
            parts.append(_rect(x + step * 0.12, base - h, step * 0.76, h, colour))
            base -= h
        if i % label_every == 0:
            parts.append(_text(x + step / 2, top + plot_h + 14, day.day[5:], "middle",
                               'fill="#475569"'))  # fmt: skip
    parts.append(_text(left + plot_w / 2, height - 4, "day (UTC)", "middle", 'fill="#475569"'))
    return _svg(height, "Events per day", parts)


def retention_chart(rows: list[RetentionRow]) -> Markup:
    """Bars: the share of answers right at the first try, and in review by days since the lesson."""
    label_w, bar_w, row_h = 200, WIDTH - 200 - 120, 26
    body: list[str] = []
    for i, row in enumerate(rows):
        y = 8 + i * row_h
        body.append(_text(0, y + 14, row.label))
        body.append(_rect(label_w, y, bar_w, 18, GREY))
        body.append(_rect(label_w, y, bar_w * row.rate, 18, GREEN if i == 0 else BLUE))
        shown = f"{row.rate:.0%} of {row.answered}" if row.answered else "no answers yet"
        body.append(_text(label_w + bar_w + 8, y + 14, shown))
    label = "Checks answered right: first try, and in review by days since the lesson"
    return _svg(16 + row_h * len(rows), label, body)


def render_html(report: CohortReport, templates: Path) -> str:
    """The report as one HTML page that needs nothing from the network."""
    folder = templates / "report"
    if not (folder / TEMPLATE).is_file():
        raise RenderError(
            f"{folder / TEMPLATE} is missing; reinstall drip or set DRIP_TEMPLATES_DIR"
        )
    env = Environment(
        loader=FileSystemLoader(folder),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    env.filters["pct"] = lambda value: f"{value:.0%}"
    env.filters["when"] = lambda value: value.strftime("%Y-%m-%d %H:%M") if value else "never"
    behind = report.behind
    return env.get_template(TEMPLATE).render(
        report=report,
        s=report.summary,
        mode="people only (machine opens left out)" if report.human_only else "all opens",
        progress_svg=progress_chart(report.progress),
        funnel_svg=funnel_chart(report.lessons, report.human_only),
        activity_svg=activity_chart(report.activity),
        retention_svg=retention_chart(report.retention),
        behind=behind[:MAX_ROWS],
        behind_more=max(0, len(behind) - MAX_ROWS),
        people=report.people[:MAX_ROWS],
        people_more=max(0, report.summary.enrolled - MAX_ROWS),
    )
