"""`drip inbound serve`: an SMTP receiver (aiosmtpd) for the bounce domain.

It accepts mail only for drip's addresses (the reply address and valid signed return paths), so
it is no open relay and a forged return path is refused at RCPT. A message that cannot be
processed now gets a 451, and the sending server tries again."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy.engine import Engine

from drip.inbound.process import Inbound, handle
from drip.mail.transports import Transport

log = logging.getLogger("drip.inbound")

MAX_SIZE = 10 * 1024 * 1024  # a bounce carries the lesson back; nothing drip reads is bigger


@dataclass
class ReceiveHandler:
    """aiosmtpd hooks: RCPT checks the address, DATA processes the message."""

    engine: Engine
    config: Inbound
    clock: Callable[[], datetime]
    transport: Callable[[], AbstractContextManager[Transport]] | None = None

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if not self.config.accepts(address):
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data = envelope.original_content or envelope.content
        raw = data if isinstance(data, bytes) else str(data).encode("utf-8", "surrogateescape")
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(None, self._process, raw, list(envelope.rcpt_tos))
        except Exception:  # the sending server keeps the message and tries again
            log.exception("cannot process a message for %s", envelope.rcpt_tos)
            return "451 4.3.0 cannot process the message now; try again later"
        return f"250 OK {result}"

    def _process(self, raw: bytes, recipients: list[str]) -> str:
        if self.transport is None:
            result = handle(
                self.engine, raw, config=self.config, source="smtp", now=self.clock(),
                recipients=recipients,
            )  # fmt: skip
        else:
            with self.transport() as transport:
                result = handle(
                    self.engine, raw, config=self.config, source="smtp", now=self.clock(),
                    recipients=recipients, transport=transport,
                )  # fmt: skip
        return result.kind


def receiver(handler: ReceiveHandler, host: str, port: int) -> Controller:
    """An SMTP server for the handler, not yet started."""
    return Controller(
        handler,
        hostname=host,
        port=port,
        data_size_limit=MAX_SIZE,
        server_hostname="drip-inbound",
    )
