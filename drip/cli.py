"""The `drip` command: each command parses input, calls one service and prints the result."""

from __future__ import annotations

import csv
import io
import json
import logging
import secrets
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from drip import __version__
from drip.cli_report import log_cmd, report_cmd
from drip.config import CONFIG_FILE, SETTINGS, Settings, load_settings, mask, require_secret
from drip.errors import DripError, InputError

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def now_utc() -> datetime:
    """The real clock; only entry points read it."""
    return datetime.now(UTC)


def parse_now(value: str | None) -> datetime:
    """--now ISO, else the real clock; a naive time is taken as UTC."""
    if not value:
        return now_utc()
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"'{value}' is not an ISO time like 2026-12-01T07:30:00Z"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class DripGroup(click.Group):
    """A click group that turns DripError into a clean message and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InputError as exc:
            for problem in exc.problems:
                err_console.print(f"[red]error:[/red] {problem}", markup=True, soft_wrap=True)
            ctx.exit(1)
        except DripError as exc:
            for line in str(exc).splitlines():
                err_console.print(f"[red]error:[/red] {line}", markup=True, soft_wrap=True)
            ctx.exit(1)


def settings() -> Settings:
    """The settings, read now."""
    return load_settings()


def open_app(check: bool = True) -> Any:
    from drip.app import App

    return App.open(settings(), check=check)


def output_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--format table|csv|json, shared by the listing commands."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", "csv", "json"]),
        default="table",
        show_default=True,
        help="Output format.",
    )(func)


def emit(
    rows: Sequence[dict[str, Any]],
    fmt: str,
    title: str | None = None,
    columns: Sequence[str] | None = None,
) -> None:
    """Print rows as a rich table, CSV or JSON."""
    columns = list(columns or (rows[0].keys() if rows else []))
    if fmt == "json":
        click.echo(json.dumps(list(rows), default=str, indent=2, ensure_ascii=False))
        return
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
        click.echo(buffer.getvalue(), nl=False)
        return
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column.replace("_", " "), overflow="fold")
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    console.print(table)


@click.group(cls=DripGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="drip")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors and requested data.")
@click.option("-v", "--verbose", is_flag=True, help="Log debug details.")
@click.pass_context
def main(ctx: click.Context, quiet: bool, verbose: bool) -> None:
    """drip: one short lesson email a day, from an ordered curriculum, for busy executives."""
    ctx.obj = {"quiet": quiet}
    level = logging.DEBUG if verbose else (logging.WARNING if quiet else logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("apscheduler", "cssutils", "alembic", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def quiet() -> bool:
    ctx = click.get_current_context()
    return bool(ctx.find_root().obj and ctx.find_root().obj.get("quiet"))


def say(message: str) -> None:
    """Print a human message unless --quiet."""
    if not quiet():
        console.print(message, markup=False)


# -- setup ---------------------------------------------------------------------------------


@main.command("config")
@output_options
def config_cmd(fmt: str) -> None:
    """Print the effective settings, where each comes from, with secrets masked."""
    s = settings()
    rows = [
        {
            "variable": setting.env,
            "value": mask(setting, s.values[setting.name]) or "(not set)",
            "source": s.sources.get(setting.name, "default"),
            "meaning": setting.help,
        }
        for setting in SETTINGS
    ]
    emit(rows, fmt, title=f"drip settings (file: {s.config_file or 'none'})")


@main.command("init")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=CONFIG_FILE,
    show_default=True,
    help="Config file to write when missing.",
)
def init_cmd(config_path: Path) -> None:
    """Create or upgrade the database, and write drip.toml with a fresh secret key if there is none."""
    from drip.db import make_engine, migrate

    if not config_path.exists():
        config_path.write_text(
            "# drip settings; DRIP_* environment variables override these.\n"
            f'secret_key = "{secrets.token_urlsafe(32)}"\n'
            '# database_url = "sqlite:///drip.db"\n'
            '# mail_url = "outbox:outbox"\n'
            '# from = "Drip Lessons <lessons@example.com>"\n'
            '# base_url = "https://learn.example.com"\n',
            encoding="utf-8",
        )
        config_path.chmod(0o600)
        say(f"wrote {config_path} with a new secret key")
    s = load_settings(config_path=config_path)
    engine = make_engine(s.database_url)
    before, after = migrate(engine)
    say(
        f"database {engine.url.render_as_string(hide_password=True)}: "
        + (
            f"created at migration {after}"
            if before is None
            else ("already at " + after if before == after else f"upgraded {before} -> {after}")
        )
    )


@main.command("migrate")
def migrate_cmd() -> None:
    """Upgrade the database schema in place to this version of drip."""
    from drip.db import make_engine, migrate

    engine = make_engine(settings().database_url)
    before, after = migrate(engine)
    say("already at " + after if before == after else f"migrated {before or 'empty'} -> {after}")


# -- lessons -------------------------------------------------------------------------------


@main.group("lessons", cls=DripGroup)
def lessons() -> None:
    """List, check and preview courses and lessons."""


@lessons.command("list")
@click.argument("course", required=False)
@output_options
def lessons_list(course: str | None, fmt: str) -> None:
    """List the courses, or the lessons of COURSE in order."""
    from drip.curriculum import course_slugs, load_course

    root = settings().lessons_path
    if course is None:
        rows = []
        for slug in course_slugs(root):
            c = load_course(root, slug)
            rows.append({"course": slug, "title": c.title, "lessons": len(c.lessons)})
        emit(rows, fmt, title=f"courses in {root}")
        return
    c = load_course(root, course)
    emit(
        [
            {"n": i, "slug": x.slug, "title": x.title, "minutes": x.minutes}
            for i, x in enumerate(c.lessons, 1)
        ],
        fmt,
        title=c.title,
    )


@lessons.command("check")
@click.argument("course", required=False)
@output_options
def lessons_check(course: str | None, fmt: str) -> None:
    """Validate every lesson; list each problem with file and line, or print a table of lessons."""
    from drip.curriculum import course_slugs, inspect_course
    from drip.render import Renderer

    s = settings()
    root = s.lessons_path
    slugs = [course] if course else course_slugs(root)
    failed = False
    renderer = Renderer(s.templates_path)
    for slug in slugs:
        loaded, problems = inspect_course(root, slug)
        for problem in problems:
            style = "red" if problem.severity == "error" else "yellow"
            err_console.print(
                f"[{style}]{problem.severity}:[/{style}] {problem.path}:{problem.line}: {problem.message}",
                markup=True,
            )
        if loaded is None:
            failed = True
            continue
        for lesson in loaded.lessons:
            try:
                renderer.render(loaded, lesson)
            except DripError as exc:
                err_console.print(f"[red]error:[/red] {exc}", markup=True)
                failed = True
        rows = [
            {
                "n": lesson.number,
                "slug": lesson.slug,
                "title": lesson.title,
                "words": lesson.words,
                "minutes": lesson.minutes,
                "check": "yes" if lesson.check else "no",
            }
            for lesson in loaded.lessons
        ]
        if not failed:
            emit(
                rows,
                fmt,
                title=f"{loaded.title} ({slug}): {len(rows)} lessons, "
                f"{sum(lesson.words for lesson in loaded.lessons)} words",
            )
    if failed:
        raise click.exceptions.Exit(1)


@lessons.command("preview")
@click.argument("course")
@click.argument("slug")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the HTML to this file.",
)
@click.option("--text", is_flag=True, help="Print the plain-text part instead of HTML.")
@click.option("--name", default="Alex Example", show_default=True, help="Recipient name to show.")
def lessons_preview(course: str, slug: str, output: Path | None, text: bool, name: str) -> None:
    """Render one lesson as the recipient would see it (links point nowhere)."""
    from drip.curriculum import load_course
    from drip.render import Renderer, recipient_keys

    s = settings()
    c = load_course(s.lessons_path, course)
    rendered = Renderer(s.templates_path).render(c, c.lesson(slug))
    values = {key: f"{s.base_url}/preview#{key.lower()}" for key in recipient_keys(rendered)}
    values["NAME"] = name
    html, plain = rendered.personalize(values)
    content = plain if text else html
    if output:
        output.write_text(content, encoding="utf-8")
        say(f"wrote {output}")
    else:
        click.echo(content)


@main.command("send-test")
@click.argument("course")
@click.argument("slug")
@click.option("--to", "to", required=True, help="Recipient address.")
@click.option("--name", default="", help="Recipient display name.")
def send_test(course: str, slug: str, to: str, name: str) -> None:
    """Send one lesson to one address through the configured transport."""
    from drip.curriculum import load_course
    from drip.dispatch import link_values
    from drip.enrollment import _valid_address
    from drip.message import MessageTemplate, new_message_id, sender_domain
    from drip.render import Renderer
    from drip.transports import Outcome, open_transport

    s = settings()
    address = _valid_address(to)
    c = load_course(s.lessons_path, course)
    lesson = c.lesson(slug)
    rendered = Renderer(s.templates_path).render(c, lesson)
    template = MessageTemplate.of(rendered, s.sender)
    key = s.secret_key or secrets.token_urlsafe(32)
    options = len(lesson.check.options) if lesson.check else 0
    values = link_values(s.base_url, key, 0, options, len(rendered.links))
    values["NAME"] = name or "there"
    data = template.build(
        to_name=name,
        to_address=address,
        date=now_utc(),
        message_id=new_message_id(sender_domain(s.sender)),
        values=values,
    )
    transport = open_transport(s.mail_url, s.smtp_timeout)
    try:
        result = transport.send(parseaddr(s.sender)[1], address, data)
    finally:
        transport.close()
    if result.outcome is not Outcome.accepted:
        raise DripError(f"not sent to {address} via {transport.describe()}: {result}")
    say(f"sent '{lesson.title}' to {address} via {transport.describe()}: {result.reply}")


# -- cohorts and people --------------------------------------------------------------------


@main.group("cohort", cls=DripGroup)
def cohort() -> None:
    """Create, list, show, pause and resume cohorts."""


@cohort.command("create")
@click.argument("name")
@click.option("--course", required=True, help="Course slug (see drip lessons list).")
@click.option(
    "--start", type=click.DateTime(["%Y-%m-%d"]), help="First day of lessons (default today)."
)
@click.option(
    "--timezone",
    "tz",
    default="UTC",
    show_default=True,
    help="Timezone for people without their own.",
)
@click.option(
    "--send-time", default="07:30", show_default=True, help="Local time of the daily lesson."
)
@click.option(
    "--days", default="mon-fri", show_default=True, help="Send days, like mon-fri or mon,wed,fri."
)
@click.option(
    "--window-end",
    default="18:00",
    show_default=True,
    help="Latest local time to send a late lesson.",
)
@click.option("--skip", default="", help="Dates to skip, like 2026-12-24,2026-12-31.")
@click.option("--manager", default=None, help="Manager's e-mail address for the weekly digest.")
def cohort_create(
    name: str,
    course: str,
    start: datetime | None,
    tz: str,
    send_time: str,
    days: str,
    window_end: str,
    skip: str,
    manager: str | None,
) -> None:
    """Create a cohort that follows COURSE."""
    from drip.curriculum import load_course
    from drip.enrollment import create_cohort

    app = open_app()
    load_course(app.settings.lessons_path, course)
    now = now_utc()
    c = create_cohort(
        app.engine,
        name=name,
        course=course,
        start=start.date() if start else now.date(),
        timezone=tz,
        send_time=send_time,
        days=days,
        window_end=window_end,
        skip=skip,
        manager=manager,
        now=now,
    )
    say(
        f"created cohort '{c.name}': {course}, from {c.start_date}, {c.send_days} at {c.send_time} "
        f"({c.timezone} unless a person has their own timezone), window until {c.window_end}"
    )


@cohort.command("list")
@output_options
def cohort_list(fmt: str) -> None:
    """List cohorts with their enrolment counts."""
    from drip.enrollment import list_cohorts

    rows = [
        {
            "cohort": r.cohort.name,
            "course": r.cohort.course,
            "start": r.cohort.start_date,
            "enrolled": r.enrolled,
            "active": r.counts.get("active", 0),
            "paused": r.counts.get("paused", 0),
            "completed": r.counts.get("completed", 0),
            "unsubscribed": r.counts.get("unsubscribed", 0),
            "bounced": r.counts.get("bounced", 0),
            "state": "paused" if r.cohort.paused else "running",
        }
        for r in list_cohorts(open_app().engine)
    ]
    emit(
        rows,
        fmt,
        title="cohorts",
        columns=[
            "cohort",
            "course",
            "start",
            "enrolled",
            "active",
            "paused",
            "completed",
            "unsubscribed",
            "bounced",
            "state",
        ],
    )


@cohort.command("show")
@click.argument("name")
@output_options
def cohort_show(name: str, fmt: str) -> None:
    """Show a cohort's settings and its people."""
    from drip.db import session
    from drip.enrollment import get_cohort, list_people

    app = open_app()
    with session(app.engine) as db:
        c = get_cohort(db, name)
    if fmt == "table" and not quiet():
        console.print(
            f"cohort {c.name}: course {c.course}, start {c.start_date}, {c.send_days} at {c.send_time} "
            f"until {c.window_end}, timezone {c.timezone}"
            + (f", skipping {c.skip_dates}" if c.skip_dates else "")
            + (", PAUSED" if c.paused else "")
            + (f", manager {c.manager_email}" if c.manager_email else ""),
            markup=False,
        )
    emit(
        [_person_row(p, e) for p, e, _ in list_people(app.engine, name)],
        fmt,
        title="people",
        columns=["email", "name", "timezone", "status", "lessons_sent", "next_due_utc", "reason"],
    )


def _person_row(p: Any, e: Any) -> dict[str, Any]:
    return {
        "email": p.email,
        "name": p.name,
        "timezone": p.timezone or "",
        "status": e.status,
        "lessons_sent": e.lessons_sent,
        "next_due_utc": e.next_due_at.strftime("%Y-%m-%d %H:%M") if e.next_due_at else "",
        "reason": e.status_reason,
    }


@cohort.command("pause")
@click.argument("name")
def cohort_pause(name: str) -> None:
    """Stop sending to a whole cohort until it is resumed."""
    from drip.enrollment import set_cohort_paused

    set_cohort_paused(open_app().engine, name, True, now_utc())
    say(f"cohort '{name}' paused")


@cohort.command("resume")
@click.argument("name")
def cohort_resume(name: str) -> None:
    """Resume a paused cohort; everyone continues with their next lesson."""
    from drip.enrollment import set_cohort_paused

    set_cohort_paused(open_app().engine, name, False, now_utc())
    say(f"cohort '{name}' resumed")


@main.command("enroll")
@click.argument("cohort_name", metavar="COHORT")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check the file and report, writing nothing.")
def enroll(cohort_name: str, file: Path, dry_run: bool) -> None:
    """Enrol the people in FILE.csv (email,name[,timezone]) into COHORT, all or nothing."""
    from drip.enrollment import enroll_csv

    app = open_app()
    show_bar = not quiet() and file.exists() and file.stat().st_size > 200_000
    with Progress(console=err_console, disable=not show_bar, transient=True) as progress:
        task = progress.add_task(f"reading {file.name}", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        result = enroll_csv(
            app.engine, cohort_name, file, now=now_utc(), dry_run=dry_run, progress=advance
        )
    verb = "would enrol" if dry_run else "enrolled"
    say(
        f"{verb} {result.enrolled} of {result.rows} people in '{cohort_name}' "
        f"({result.new_people} new, {result.already} already enrolled and skipped)"
    )


@main.group("people", cls=DripGroup)
def people() -> None:
    """List and show people; pause, resume or unsubscribe one."""


@people.command("list")
@click.option("--cohort", "cohort_name", help="Only this cohort.")
@output_options
def people_list(cohort_name: str | None, fmt: str) -> None:
    """List people with their status and progress."""
    from drip.enrollment import list_people

    rows = []
    for p, e, c in list_people(open_app().engine, cohort_name):
        row = _person_row(p, e)
        row["cohort"] = c.name
        rows.append(row)
    emit(
        rows,
        fmt,
        title="people",
        columns=["email", "name", "cohort", "status", "lessons_sent", "next_due_utc", "reason"],
    )


@people.command("show")
@click.argument("email")
@output_options
def people_show(email: str, fmt: str) -> None:
    """Show one person: each enrolment, its status and why."""
    from drip.enrollment import get_person

    view = get_person(open_app().engine, email)
    rows = [
        {
            "cohort": c.name,
            "course": c.course,
            "status": e.status,
            "lessons_sent": e.lessons_sent,
            "last_lesson_on": e.last_sent_on or "",
            "next_due_utc": e.next_due_at.strftime("%Y-%m-%d %H:%M") if e.next_due_at else "",
            "reason": e.status_reason,
        }
        for e, c in view.enrollments
    ]
    if fmt == "table" and not quiet():
        console.print(
            f"{view.person.name} <{view.person.email}>, timezone {view.person.timezone or '(cohort)'}",
            markup=False,
        )
    emit(
        rows,
        fmt,
        title="enrolments",
        columns=[
            "cohort",
            "course",
            "status",
            "lessons_sent",
            "last_lesson_on",
            "next_due_utc",
            "reason",
        ],
    )
    if fmt == "table":
        for e, c in view.enrollments:
            if e.status_reason and e.status != "active":
                say(f"{c.name}: {e.status}: {e.status_reason}")


def _people_action(action: str, past: str) -> Callable[..., None]:
    @click.argument("email")
    @click.option("--cohort", "cohort_name", help="Only this cohort (default: all of theirs).")
    def command(email: str, cohort_name: str | None) -> None:
        from drip.enrollment import change_person

        results = change_person(
            open_app().engine, email, action, now=now_utc(), cohort_name=cohort_name
        )
        for name, changed in results:
            say(
                f"{email} in '{name}': {past}"
                if changed
                else f"{email} in '{name}': unchanged (not {action}able now)"
            )

    command.__doc__ = {
        "pause": "Pause a person's lessons until resumed.",
        "resume": "Resume a paused or bounced person with their next lesson.",
        "unsubscribe": "Unsubscribe a person; they get no more lessons.",
    }[action]
    return command


for _action, _past in (("pause", "paused"), ("resume", "resumed"), ("unsubscribe", "unsubscribed")):
    people.command(_action)(_people_action(_action, _past))


# -- sending -------------------------------------------------------------------------------


@main.command("send-due")
@click.option("--now", "now_text", help="Pretend it is this time (ISO 8601, UTC if no offset).")
@output_options
def send_due_cmd(now_text: str | None, fmt: str) -> None:
    """Make one dispatcher pass: send every lesson that is due, and print what happened."""
    from drip.dispatch import send_due

    app = open_app()
    dispatcher = app.dispatcher()
    try:
        result = send_due(dispatcher, parse_now(now_text))
    finally:
        dispatcher.transport.close()
    if fmt != "table" or (result.items and not quiet()):
        emit(
            [
                {"email": i.email, "lesson": i.lesson, "outcome": i.outcome, "detail": i.detail}
                for i in result.items
            ],
            fmt,
            columns=["email", "lesson", "outcome", "detail"],
        )
    if fmt == "table":
        say(result.summary())
    if result.failed:
        sys.exit(1)


@main.command("run")
@click.option(
    "--no-web", is_flag=True, help="Only the scheduler, without the tracking web endpoint."
)
@click.option("--host", default=None, help="Web address (default DRIP_WEB_HOST).")
@click.option("--port", type=int, default=None, help="Web port (default DRIP_WEB_PORT).")
def run_cmd(no_web: bool, host: str | None, port: int | None) -> None:
    """Run the scheduler (a pass every DRIP_TICK_SECONDS) and, unless --no-web, the web endpoint."""
    from drip.scheduler import run_forever

    app = open_app()
    require_secret(app.settings)
    serve = None
    if not no_web:
        from drip.web import serve_function

        serve = serve_function(app, host or app.settings.web_host, port or app.settings.web_port)
    say(
        f"drip running: database {app.engine.url.render_as_string(hide_password=True)}, "
        f"mail via {app.transport().describe()}, a pass every {app.settings.tick_seconds:g}s"
        + (
            ""
            if no_web
            else f", web on http://{host or app.settings.web_host}:{port or app.settings.web_port}"
        )
    )
    run_forever(app, serve)


@main.command("serve")
@click.option("--host", default=None, help="Address to listen on (default DRIP_WEB_HOST).")
@click.option("--port", type=int, default=None, help="Port (default DRIP_WEB_PORT).")
@click.option(
    "--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Web processes."
)
def serve_cmd(host: str | None, port: int | None, workers: int) -> None:
    """Serve the tracking web endpoint (opens, clicks, got it, answers, pause, unsubscribe)."""
    from drip.web import serve_function

    app = open_app()
    require_secret(app.settings)
    serve_function(app, host or app.settings.web_host, port or app.settings.web_port, workers)()


@main.command("demo")
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("drip-demo"),
    show_default=True,
    help="Folder for the demo database and outbox (replaced if it holds an old demo).",
)
@click.option(
    "--days", type=click.IntRange(1, 60), default=14, show_default=True, help="Days to simulate."
)
def demo_cmd(folder: Path, days: int) -> None:
    """Enrol a dozen example executives and simulate a fortnight of lessons into an outbox folder."""
    from drip.demo import demo_start, run_demo

    started = now_utc()
    result = run_demo(folder, settings(), days=days, start=demo_start(started))
    rows = [
        {
            "person": f"{p.name} <{p.email}>",
            "timezone": p.timezone,
            "lessons": f"{p.received} of {p.total}",
            "next_lesson_local": p.next_due.astimezone(
                __import__("zoneinfo").ZoneInfo(p.timezone)
            ).strftime("%a %d %b %H:%M")
            if p.next_due
            else "-",
        }
        for p in result.people
    ]
    emit(
        rows,
        "table",
        title=f"drip demo: {result.start:%a %d %b} to {result.end:%a %d %b %Y} (simulated)",
    )
    elapsed = (now_utc() - started).total_seconds()
    say(
        f"{result.messages} lesson emails in {result.outbox}/ ({result.passes} dispatcher passes, {elapsed:.1f}s).\n"
        f"Open any .eml file in a mail client, or try:\n"
        f"  DRIP_DATABASE_URL=sqlite:///{result.database} drip people list\n"
        f"  drip lessons preview social-media-for-executives why-it-matters-now -o lesson.html"
    )


main.add_command(report_cmd, "report")
main.add_command(log_cmd, "log")


def run() -> None:
    """Entry point that never shows a traceback for drip's own errors."""
    main()


if __name__ == "__main__":
    main()
