"""One client connection: the protocol core bound to a voice session, for any transport.

A transport hands every client message to :meth:`RealtimeConnection.handle` and sends what the ``send`` callback is
given. Session output is translated in order by the session's output router. Reply audio goes to the connection's
:class:`~realtime.session.output.AudioSink`: by default a :class:`~realtime.session.output.ClientClockSink` that sends
it as ``response.output_audio.delta`` events; a media transport (WebRTC) passes its own sink (the track), and audio
then travels on the track, at its rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from realtime.commands import (
    AddItem,
    AppendAudio,
    CancelResponse,
    ClearInput,
    Command,
    CommitInput,
    Configure,
    CreateResponse,
    DeleteMessage,
    RetrieveItem,
    Send,
    TruncateMessage,
)
from realtime.events import OutputItem, ReplyDone, SettingsChanged
from realtime.models import Models
from realtime.protocol import RealtimeProtocol
from realtime.session.config import SessionConfig
from realtime.session.orchestrator import VoiceSession
from realtime.session.output import AudioSink, ClientClockSink

log = logging.getLogger(__name__)


SendEvent = Callable[[dict[str, Any]], Awaitable[None]]


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
        self._send = send
        self.audio_sink = audio_sink
        sink = audio_sink or ClientClockSink(self.protocol.output_format.rate, self._send_item)
        self.session = VoiceSession(models, self._session_config(self.protocol.config), sink)
        self._applied = self.session.config
        """The session's settings as this connection last set them (``configure`` replaces the object)."""
        self._pump: asyncio.Task[None] | None = None
        self.on_reply: Callable[[ReplyDone], None] | None = None
        """Told of every finished reply (the server measures its load from their first-packet delays)."""

    async def __aenter__(self) -> RealtimeConnection:
        await self._run(self.protocol.start())
        self._pump = asyncio.create_task(self.session.route(self._send_item), name=f"{self.id}:output")
        await self.session.greet()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def handle(self, message: str | bytes) -> None:
        """Carry out one client message; one that fails gets an ``error`` event, and the session goes on."""
        self._take_settings()
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
                    if self.audio_sink is None:  # the events sink plays at the wire format's rate
                        session.sink.rate = self.session_rate
                    session.configure(self._session_config(command.config))
                    self._applied = session.config
                case CommitInput():
                    await session.commit_input(command.event_id)
                case ClearInput():
                    session.clear_input()
                case AddItem():
                    session.add_item(command.item, command.previous_item_id, command.event_id, command.audio)
                case RetrieveItem():
                    session.retrieve(command.item_id, command.event_id)
                case DeleteMessage():
                    session.history.delete(command.item_id, command.event_id)
                case TruncateMessage():
                    await session.turns.truncate(command.item_id, command.audio_end_ms, command.event_id)
                case CreateResponse():
                    await session.create_response(command.options, command.event_id)
                case CancelResponse():
                    await session.cancel_response(command.event_id)

    def _session_config(self, config: SessionConfig) -> SessionConfig:
        """The protocol's settings, speaking at the sink's rate."""
        return dataclasses.replace(config, output_rate=self.session_rate)

    @property
    def session_rate(self) -> int:
        """The rate the session speaks at: the media sink's, or the wire format's."""
        return self.audio_sink.rate if self.audio_sink is not None else self.protocol.output_format.rate

    def _take_settings(self) -> None:
        """Settings changed elsewhere (an MQTT control) become the base of the client's next ``session.update``."""
        if self.session.config is not self._applied:
            self.protocol.config = dataclasses.replace(self.session.config, output_rate=self.protocol.output_format.rate)
            self._applied = self.session.config

    async def _send_item(self, item: OutputItem) -> None:
        if isinstance(item, SettingsChanged):
            self._take_settings()
        elif isinstance(item, ReplyDone) and self.on_reply is not None:
            self.on_reply(item)
        for event in self.protocol.translate(item):
            await self._send(event)
