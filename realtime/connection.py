"""One client connection: the protocol core bound to a voice session, for any transport.

A transport hands every client message to :meth:`RealtimeConnection.handle` and sends what the
``send`` callback is given. Session output is translated in order, and reply audio or text of an
interrupted reply is dropped here, at the sink, so it can never reach the client late. A media
transport (WebRTC) passes an :class:`AudioSink`: reply audio then goes to it, at its rate, instead of
``response.output_audio.delta`` events, and it is told when queued audio must be dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from realtime.events import AudioCleared, AudioOut
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


SendEvent = Callable[[dict[str, Any]], Awaitable[None]]


class AudioSink(Protocol):
    """Where reply audio goes when it does not travel as protocol events (a media track)."""

    rate: int
    """The session speaks at this rate (so audio is resampled once, from the synthesiser to the sink)."""

    def play(self, item: AudioOut) -> None:
        """Queue reply audio for playing."""

    def clear(self) -> None:
        """Drop every queued sample now (barge-in, ``response.cancel``)."""


class RealtimeConnection:
    """Use as ``async with RealtimeConnection(models, send) as connection: await connection.handle(msg)``."""

    def __init__(
        self,
        models: Models,
        send: SendEvent,
        *,
        config: SessionConfig | None = None,
        beta: bool = False,
        model: str = "embedded",
        audio_sink: AudioSink | None = None,
    ) -> None:
        self.id = f"sess_{secrets.token_hex(6)}"  # unique across processes: servers may share one MQTT broker
        self.protocol = RealtimeProtocol(self.id, config, beta=beta, model=model)
        self.audio_sink = audio_sink
        self.session = VoiceSession(models, self._session_config(self.protocol.config))
        self._applied = self.session.config
        """The session's settings as this connection last set them (``configure`` replaces the object)."""
        self._send = send
        self._pump: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RealtimeConnection:
        await self._run(self.protocol.start())
        self._pump = asyncio.create_task(self._forward_output(), name=f"{self.id}:output")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def handle(self, message: str | bytes) -> None:
        """Carry out one client message; one that fails gets an ``error`` event, and the session goes on."""
        if self.session.config is not self._applied:  # changed elsewhere (MQTT): the base of the client's next update
            self.protocol.config = dataclasses.replace(self.session.config, output_rate=self.protocol.output_format.rate)
            self._applied = self.session.config
        try:
            await self._run(self.protocol.receive(message))
        except Exception as exc:  # noqa: BLE001 - one bad event never ends the session
            log.exception("session %s: event failed", self.id)
            await self.protocol_send_error("server_error", f"the event failed: {exc}")

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
                    session.configure(self._session_config(command.config))
                    self._applied = session.config
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

    def _session_config(self, config: SessionConfig) -> SessionConfig:
        """The protocol's settings, speaking at the sink's rate when there is one."""
        return config if self.audio_sink is None else dataclasses.replace(config, output_rate=self.audio_sink.rate)

    async def _forward_output(self) -> None:
        sink = self.audio_sink
        while True:
            item = await self.session.output.get()
            if self.session.is_stale(item):
                continue
            if sink is not None and isinstance(item, AudioOut):
                sink.play(item)
                continue
            if sink is not None and isinstance(item, AudioCleared):
                sink.clear()
            for event in self.protocol.translate(item):
                await self._send(event)
