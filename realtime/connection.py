"""One client connection: the protocol core bound to a voice session, for any transport.

A transport hands every client message to :meth:`RealtimeConnection.handle` and sends what the
``send`` callback is given. Session output is translated in order, and reply audio or text of an
interrupted reply is dropped here, at the sink, so it can never reach the client late.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from realtime.models import Models
from realtime.protocol import (
    AddMessage,
    AppendAudio,
    CancelResponse,
    ClearInput,
    Command,
    CommitInput,
    Configure,
    CreateResponse,
    DeleteMessage,
    RealtimeProtocol,
    Send,
    TruncateMessage,
)
from realtime.session import SessionConfig, VoiceSession

log = logging.getLogger(__name__)

_session_ids = itertools.count(1)

SendEvent = Callable[[dict[str, Any]], Awaitable[None]]


class RealtimeConnection:
    """Use as ``async with RealtimeConnection(models, send) as connection: await connection.handle(msg)``."""

    def __init__(
        self, models: Models, send: SendEvent, *, config: SessionConfig | None = None, beta: bool = False, model: str = "embedded"
    ) -> None:
        self.id = f"sess_{next(_session_ids):06d}"
        self.protocol = RealtimeProtocol(self.id, config, beta=beta, model=model)
        self.session = VoiceSession(models, self.protocol.config)
        self._send = send
        self._pump: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RealtimeConnection:
        await self._run(self.protocol.start())
        self._pump = asyncio.create_task(self._forward_output(), name=f"{self.id}:output")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def handle(self, message: str | bytes) -> None:
        """Carry out one client message."""
        await self._run(self.protocol.receive(message))

    async def protocol_send_error(self, code: str, message: str) -> None:
        """Tell the client about a failure of the connection itself (not of one of its events)."""
        await self._send(self.protocol.error(code, message))

    async def close(self) -> None:
        """Stop the session and everything it runs."""
        await self.session.close()
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump

    async def _run(self, commands: list[Command]) -> None:
        session = self.session
        for command in commands:
            match command:
                case Send():
                    await self._send(command.event)
                case AppendAudio():
                    await session.push_audio(command.samples)
                case Configure():
                    session.configure(command.config)
                case CommitInput():
                    await session.commit_input(command.event_id)
                case ClearInput():
                    session.clear_input()
                case AddMessage():
                    session.add_message(command.role, command.text, command.item_id, command.event_id)
                case DeleteMessage():
                    session.delete_message(command.item_id, command.event_id)
                case TruncateMessage():
                    await session.truncate_message(command.item_id, command.audio_end_ms, command.event_id)
                case CreateResponse():
                    await session.create_response(command.event_id)
                case CancelResponse():
                    await session.cancel_response(command.event_id)

    async def _forward_output(self) -> None:
        while True:
            item = await self.session.output.get()
            if self.session.is_stale(item):
                continue
            for event in self.protocol.translate(item):
                await self._send(event)
