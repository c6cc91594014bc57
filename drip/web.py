"""The ASGI app: thin handlers that check a signed token and call tracking."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email.utils import parseaddr
from functools import lru_cache, partial
from typing import Any

import uvicorn
from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
    select_autoescape,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from drip.app import App
from drip.config import Settings, load_settings, require_secret, verifying_keys
from drip.curriculum.load import load_course
from drip.errors import DripError, TokenError
from drip.inbound import webhooks
from drip.inbound.classify import Finding
from drip.inbound.process import Inbound, handle_report
from drip.tokens import Purpose, make_token, read_token
from drip.tracking import hits as tracking
from drip.tracking import pages as actions
from drip.tracking.writer import EventWriter

log = logging.getLogger("drip.web")

GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
GIF_HEADERS = {"Cache-Control": "no-store, private", "Content-Type": "image/gif"}
PIXEL = Response(GIF, headers=GIF_HEADERS)  # built once: a response object is sent, never changed
PAGE_HEADERS = {
    "Cache-Control": "no-store, private",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
MAX_TOKEN = 64
MESSAGES = {
    400: ("That did not work", "Please use one of the buttons on the page."),
    404: ("Link not found", "This link is not valid. Please use the link in your lesson e-mail."),
    405: ("Not allowed", "This page does not accept that kind of request."),
    429: ("Too many requests", "Please wait a minute and try again."),
    500: ("Something went wrong", "Please try again in a few minutes."),
    503: ("Unavailable", "Please try again in a few minutes."),
}


class RateLimiter:
    """A fixed-window request counter per key with a cap on the keys it remembers."""

    def __init__(
        self,
        limit: int,
        window: float = 60.0,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self.clock = clock
        self._started = clock()
        self._counts: dict[str, int] = {}

    def allow(self, key: str) -> bool:
        """Count one request for the key; False once it is over the limit in this window."""
        now = self.clock()
        if now - self._started >= self.window:
            self._counts.clear()
            self._started = now
        seen = self._counts.get(key)
        if seen is None:
            # Full: new keys pass uncounted rather than grow memory without bound.
            if len(self._counts) < self.max_keys:
                self._counts[key] = 1
            return True
        if seen >= self.limit:
            return False
        self._counts[key] = seen + 1
        return True


def _now() -> datetime:
    return datetime.now(UTC)


def fetch_url(url: str) -> bytes:
    """GET a small public document (an SNS signing certificate, a subscription's confirmation)."""
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - https only, checked
        return bytes(response.read(65536))


def create_app(
    engine: Engine,
    settings: Settings,
    *,
    clock: Callable[[], datetime] = _now,
    fetch: Callable[[str], bytes] = fetch_url,
    token_limit: int = 30,
    ip_limit: int = 1200,
    window: float = 60.0,
) -> Starlette:
    """Build the tracking web app on an engine and settings; nothing happens at import."""
    secret = verifying_keys(settings)
    signing = require_secret(settings)
    pages = Environment(
        loader=FileSystemLoader(settings.templates_path / "web"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
    )
    writer = EventWriter(engine)
    by_token = RateLimiter(token_limit, window)
    by_ip = RateLimiter(ip_limit, window)

    contact = parseaddr(settings.reply_to)[1]

    @lru_cache(maxsize=64)
    def course_length(slug: str) -> int | None:
        try:
            return len(load_course(settings.lessons_path, slug).lessons)
        except DripError:
            return None  # the page leaves the "of N" out rather than fail

    def page(name: str, code: int = 200, /, **context: Any) -> HTMLResponse:
        status = context.get("status")
        if isinstance(status, actions.Status):
            context.setdefault("when", _when(status))
            context.setdefault("total", course_length(status.course) if status.course else None)
        html = pages.get_template(name).render(contact=contact, **context)
        return HTMLResponse(html, status_code=code, headers=PAGE_HEADERS)

    def message(status: int, title: str = "", text: str = "") -> HTMLResponse:
        default_title, default_text = MESSAGES.get(status, MESSAGES[500])
        return page(
            "message.html.j2", status, title=title or default_title, text=text or default_text
        )

    def ids(request: Request, purpose: Purpose) -> tuple[int, ...]:
        client = request.client.host if request.client else "-"
        return checked(str(request.path_params["token"]), client, purpose)

    def checked(token: str, client: str, purpose: Purpose) -> tuple[int, ...]:
        # Called on the event loop only, so the limiters need no lock.
        if not by_ip.allow(client) or not by_token.allow(token[:MAX_TOKEN]):
            raise HTTPException(429)
        if len(token) > MAX_TOKEN:
            raise HTTPException(404)
        try:
            return read_token(secret, purpose, token)
        except TokenError:
            raise HTTPException(404) from None

    def hit(request: Request) -> tracking.Request:
        agent = request.headers.get("user-agent", "")[:500]
        return tracking.Request(request.method, agent, clock())

    async def click(request: Request) -> Response:
        delivery_id, index = _pair(ids(request, Purpose.click))
        url = await run_in_threadpool(
            tracking.record_click, engine, delivery_id, index, hit(request)
        )
        if url is None:
            raise HTTPException(404)
        headers = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
        return RedirectResponse(url, status_code=302, headers=headers)

    async def confirm(request: Request) -> Response:
        (delivery_id,) = ids(request, Purpose.confirm)
        shown = await run_in_threadpool(tracking.record_confirm, engine, delivery_id, hit(request))
        if shown is None:
            raise HTTPException(404)
        return page("confirm.html.j2", lesson=shown, status=shown.status)

    async def answered(request: Request, purpose: Purpose, record: Any) -> Response:
        """An answer to a lesson's check or to a review question: the same page either way."""
        delivery_id, option = _pair(ids(request, purpose))
        shown = await run_in_threadpool(record, engine, delivery_id, option, hit(request))
        if shown is None:
            raise HTTPException(404)
        return page("answer.html.j2", answer=shown, status=shown.status)

    async def answer(request: Request) -> Response:
        return await answered(request, Purpose.answer, tracking.record_answer)

    async def review(request: Request) -> Response:
        return await answered(request, Purpose.review, tracking.record_review_answer)

    async def schedule(request: Request) -> Response:
        (delivery_id,) = ids(request, Purpose.schedule)
        problem = ""
        if request.method == "POST":
            form = await request.form()
            days = [str(d) for d in form.getlist("days")]
            changed = await run_in_threadpool(
                partial(
                    actions.change_schedule,
                    engine,
                    delivery_id,
                    str(form.get("send_time") or ""),
                    days,
                    now=clock(),
                    method=request.method,
                )
            )
            if isinstance(changed, str):
                problem = changed
            elif changed is not None:
                return page("schedule.html.j2", schedule=changed, when=_when(changed.status),
                            times=actions.SEND_TIMES, weekdays=actions.WEEKDAYS, done=True,
                            problem="")  # fmt: skip
        current = await run_in_threadpool(actions.schedule_of, engine, delivery_id)
        if current is None:
            raise HTTPException(404)
        return page("schedule.html.j2", 400 if problem else 200, schedule=current,
                    when=_when(current.status), times=actions.SEND_TIMES,
                    weekdays=actions.WEEKDAYS, done=False, problem=problem)  # fmt: skip

    async def change(
        request: Request, delivery_id: int, action: str, reason: str = ""
    ) -> actions.Status | None:
        return await run_in_threadpool(
            partial(
                actions.change,
                engine,
                delivery_id,
                action,
                now=clock(),
                method=request.method,
                reason=reason,
            )
        )

    async def pause(request: Request) -> Response:
        (delivery_id,) = ids(request, Purpose.pause)
        action = ""
        if request.method == "POST":
            action = str((await request.form()).get("action") or "")
            if action not in ("pause1", "pause2", "resume"):
                status = await run_in_threadpool(actions.enrollment_status, engine, delivery_id)
                if status is None:
                    raise HTTPException(404)
                problem = MESSAGES[400][1]
                return page("pause.html.j2", 400, status=status, action="", problem=problem)
            status = await change(request, delivery_id, action)
        else:
            status = await run_in_threadpool(actions.enrollment_status, engine, delivery_id)
        if status is None:
            raise HTTPException(404)
        return page("pause.html.j2", status=status, action=action, problem="")

    async def unsubscribe(request: Request) -> Response:
        (delivery_id,) = ids(request, Purpose.unsubscribe)
        # The page offers a pause instead: the same delivery's signed pause link.
        pause_url = f"/p/{make_token(signing, Purpose.pause, delivery_id)}"
        if request.method != "POST":
            status = await run_in_threadpool(actions.enrollment_status, engine, delivery_id)
            if status is None:
                raise HTTPException(404)
            return page("unsubscribe.html.j2", status=status, done=False, pause_url=pause_url)
        try:
            form = await request.form()
            one_click = form.get("List-Unsubscribe") == "One-Click"
            undo = form.get("action") == "resubscribe"
        except Exception:  # a malformed body is still the person's POST to their own link
            one_click = undo = False
        if undo:  # the confirmation page's "I didn't mean to" button
            status = await change(request, delivery_id, "resubscribe")
            if status is None:
                raise HTTPException(404)
            return page(
                "unsubscribe.html.j2", status=status, done=False, pause_url=pause_url, back=True
            )
        reason = "one-click unsubscribe (RFC 8058)" if one_click else "unsubscribed via the page"
        status = await change(request, delivery_id, "unsubscribe", reason)
        if status is None:
            raise HTTPException(404)
        return page("unsubscribe.html.j2", status=status, done=True, pause_url=pause_url)

    inbound = Inbound.of(settings)
    certificates: dict[str, bytes] = {}

    def certificate(url: str) -> bytes:
        if url not in certificates:
            certificates[url] = fetch(url)
        return certificates[url]

    async def webhook(request: Request) -> Response:
        provider = request.path_params["provider"]
        body = await request.body()
        now = clock()
        try:
            if provider == "mailgun":
                reports = webhooks.mailgun(body, settings.mailgun_signing_key, now)
            elif provider == "sendgrid":
                reports = webhooks.sendgrid(
                    body, request.headers, settings.sendgrid_webhook_key, now
                )
            elif provider == "postmark":
                reports = webhooks.postmark(
                    body, request.headers.get("authorization", ""), settings.postmark_webhook_auth
                )
            elif provider == "ses":
                reports = await run_in_threadpool(
                    webhooks.ses, body, settings.ses_topic_arn, certificate
                )
            else:
                raise HTTPException(404)
        except webhooks.WebhookRejected as exc:
            log.warning("webhook %s rejected: %s", provider, exc)
            raise HTTPException(404) from None
        except webhooks.WebhookConfirm as exc:
            # Signed by SNS for the configured topic, on an SNS host: confirm it by opening it.
            try:
                await run_in_threadpool(fetch, str(exc))
            except OSError as failed:
                log.warning("cannot confirm the SNS subscription (%s): open %s once", failed, exc)
                return PlainTextResponse("open the SubscribeURL to confirm", status_code=202)
            log.info("SNS subscription to %s confirmed", settings.ses_topic_arn)
            return PlainTextResponse("subscription confirmed")
        for report in reports:
            finding = Finding(report.kind, reason=report.reason, status=report.status,
                              recipients=(report.email,))  # fmt: skip
            await run_in_threadpool(
                partial(handle_report, engine, finding, key=report.event_id, email=report.email,
                        message_id=report.message_id, config=inbound, source=provider, now=now)
            )  # fmt: skip
        return PlainTextResponse("ok", headers={"Cache-Control": "no-store"})

    async def healthz(request: Request) -> Response:
        if not await run_in_threadpool(actions.database_ok, engine):
            return PlainTextResponse("database unavailable", status_code=503)
        return PlainTextResponse("ok", headers={"Cache-Control": "no-store"})

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        response = message(status)
        if isinstance(exc, HTTPException) and exc.headers and "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response

    async def server_error(request: Request, exc: Exception) -> Response:
        # The path holds a token: log only its route letter.
        log.error("error on %s %s", request.method, request.url.path[:3], exc_info=exc)
        return message(500)

    pixel = OpenPixel(writer, checked, clock)
    routes = [
        Route("/o/{token}.gif", pixel, methods=["GET"]),
        Route("/c/{token}", click, methods=["GET"]),
        Route("/r/{token}", confirm, methods=["GET"]),
        Route("/a/{token}", answer, methods=["GET"]),
        Route("/v/{token}", review, methods=["GET"]),
        Route("/t/{token}", schedule, methods=["GET", "POST"]),
        Route("/p/{token}", pause, methods=["GET", "POST"]),
        Route("/u/{token}", unsubscribe, methods=["GET", "POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/hooks/{provider}", webhook, methods=["POST"]),
    ]

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(writer.close)

    return PixelFirst(
        pixel,
        routes=routes,
        lifespan=lifespan,
        # Expected failures are answered inside the app so the connection stays usable;
        # anything else reaches the last-resort handler, which also answers with a page.
        exception_handlers={
            HTTPException: http_error,
            SQLAlchemyError: server_error,
            DripError: server_error,
            TemplateError: server_error,
            OSError: server_error,
            Exception: server_error,
        },
    )


class OpenPixel:
    """The open pixel, an ASGI endpoint with no Request object per hit (the hottest route): it
    answers once the writer says so, so a 200 means the open's event is committed, 404 an
    unknown delivery, 500 a failed write; errors raise HTTPException for the app's pages."""

    def __init__(
        self,
        writer: EventWriter,
        checked: Callable[[str, str, Purpose], tuple[int, ...]],
        clock: Callable[[], datetime],
    ) -> None:
        self.writer = writer
        self.checked = checked
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The route's endpoint: a hit the fast path already judged raises its error here."""
        judged = scope.pop(JUDGED, None)
        if judged is not None:
            raise judged
        await self.record(scope, str(scope["path_params"]["token"]))
        await PIXEL(scope, receive, send)

    async def fast(self, scope: Scope, send: Send) -> bool:
        """Answer a hit on /o/<token>.gif before Starlette's routing and middleware (a third of
        a bare endpoint's cost); False, with the error kept in the scope for the route to raise,
        when the answer is an error page."""
        try:
            await self.record(scope, scope["path"][3:-4])
        except Exception as exc:  # the app's handlers make the page, as for any route
            scope[JUDGED] = exc
            return False
        await send(PIXEL_START)
        await send(PIXEL_BODY)
        return True

    async def record(self, scope: Scope, token: str) -> None:
        """Check the token, have the hit recorded and wait until it is (or raise the error)."""
        client = scope.get("client")
        (delivery_id,) = self.checked(token, client[0] if client else "-", Purpose.open)
        loop = asyncio.get_running_loop()
        recorded = loop.create_future()
        hit = (
            delivery_id,
            scope["method"],
            _user_agent(scope["headers"]),
            self.clock(),
            recorded,
            loop.call_soon_threadsafe,
        )
        self.writer.submit_from(loop, hit)
        try:
            found = await recorded
        except Exception:  # the writer logged it (a driver error, say): answer 500, keep alive
            raise HTTPException(500) from None
        if not found:
            raise HTTPException(404)


JUDGED = "drip.pixel"  # the scope key of an error the fast path found
PIXEL_START = {"type": "http.response.start", "status": 200, "headers": PIXEL.raw_headers}
PIXEL_BODY = {"type": "http.response.body", "body": GIF}


class PixelFirst(Starlette):
    """drip's app: Starlette, except that a GET or HEAD of /o/<token>.gif goes straight to the
    pixel, which sends its GIF itself; its errors go through Starlette like any route's."""

    def __init__(self, pixel: OpenPixel, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pixel = pixel

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in ("GET", "HEAD")
            and not scope.get("root_path")
            and _is_pixel(scope["path"])
            and await self.pixel.fast(scope, send)
        ):
            return
        await super().__call__(scope, receive, send)


def _is_pixel(path: str) -> bool:
    # What Route("/o/{token}.gif") matches: a token of one path segment.
    token = path[3:-4]
    return path.startswith("/o/") and path.endswith(".gif") and token != "" and "/" not in token


def _user_agent(headers: list[tuple[bytes, bytes]]) -> str:
    # As Starlette's Headers read it (the first one, latin-1), without building them.
    for name, value in headers:
        if name == b"user-agent":
            return value.decode("latin-1")[:500]
    return ""


def _pair(values: tuple[int, ...]) -> tuple[int, int]:
    if len(values) != 2:
        raise HTTPException(404)
    return values[0], values[1]


def _when(status: actions.Status | None) -> str:
    if status is None or status.next_local is None:
        return ""
    moment = status.next_local
    return f"{moment:%A} {moment.day} {moment:%B} at {moment:%H:%M} ({status.timezone})"


SERVER_OPTIONS: dict[str, Any] = {
    "access_log": False,  # access logs would keep client IP addresses
    "server_header": False,
    "proxy_headers": True,
}


def serve_function(app: App, host: str, port: int, workers: int = 1) -> Callable[[], None]:
    """A function that runs the web app with uvicorn until it is told to stop."""
    options: dict[str, Any] = {"host": host, "port": port, **SERVER_OPTIONS}

    def serve() -> None:
        try:
            if workers > 1:
                uvicorn.run("drip.web:asgi", factory=True, workers=workers, **options)
                return
            uvicorn.Server(uvicorn.Config(create_app(app.engine, app.settings), **options)).run()
        except KeyboardInterrupt:
            # uvicorn re-raises the SIGINT it handled once it has shut down: that is a clean stop.
            return

    return serve


def asgi() -> Starlette:
    """The app built from the environment's settings, for `uvicorn --factory drip.web:asgi`."""
    app = App.open(load_settings())
    return create_app(app.engine, app.settings)
