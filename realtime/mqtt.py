"""An MQTT event and control bus: every session's events out, control messages in.

Events are JSON, QoS 1, never audio, under ``{prefix}/{session_id}/``; each carries ``type``,
``session_id``, a per-session ``seq`` (1, 2, ...) and a wall-clock ``time``, so a consumer can restore
the order across topics, drop a duplicate and see a gap:

- ``session``: ``session.started`` (with its ``control_topic``), ``session.ended`` (``reason``:
  ``closed``, ``control`` or ``error``)
- ``speech``: ``speech.started``, ``speech.stopped`` (``item_id``, ``audio_ms`` since the session began)
- ``transcript/user``: ``transcript.user.partial`` (the whole hypothesis so far), ``transcript.user.final``
- ``reasoning``: ``reasoning.delta``, ``reasoning.done`` (never spoken)
- ``transcript/assistant``: ``transcript.assistant.delta`` (as its audio starts), ``transcript.assistant.done``
  (what the user heard), ``transcript.assistant.truncated`` (cut by a later barge-in)
- ``response``: ``response.started``, ``response.audio_cleared`` (barge-in), ``response.done`` (``status``:
  ``completed``, ``interrupted``, ``cancelled`` or ``failed``)
- ``latency``: the turn's record, ``first_packet_delay_ms`` and ``stages_ms``
- ``error``: the session's errors, and the answers to malformed control messages (``control_id``)

Control messages in, on ``{prefix}/{session_id}/control`` or, for every session, ``{prefix}/control``
(whose errors go to ``{prefix}/error``): ``{"type": "say", "text": ...}``, ``{"type": "interrupt"}``,
``{"type": "instructions", "text": ...}``, ``{"type": "end"}``, each with an optional string ``id``.
Retained control messages are ignored. ``{prefix}/status`` holds a retained ``{"type": "status",
"state": "online"}`` while the bus is connected (``offline`` on a clean exit, or from the broker as
the last will).

Broker loss never touches a conversation: events wait in a bounded outbox (the oldest are dropped and
counted when it is full), the client reconnects with exponential backoff and delivery resumes in order.
A message in flight when the connection broke is sent again (at least once: ``seq`` tells duplicates).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import logging
import random
import secrets
import ssl
import time
from collections import deque
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiomqtt

from realtime.events import OutputItem
from realtime.mqtt_messages import Control, ControlError, event_messages, parse_control
from realtime.session.orchestrator import VoiceSession

log = logging.getLogger(__name__)

MAX_PENDING_CONTROLS = 32
"""Control messages waiting for one session; past this they are refused (answered on ``error``)."""


# ---- the bus ------------------------------------------------------------------------------------


class SessionHost(Protocol):
    """What a transport gives the bus for one session (``RealtimeConnection`` is one)."""

    id: str
    session: VoiceSession


@dataclass(eq=False)
class _Outgoing:
    topic: str
    payload: bytes
    retain: bool = False


class Outbox:
    """Messages waiting for the broker, in order; when full, the oldest is dropped and counted."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.dropped = 0
        self._items: deque[_Outgoing] = deque()
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, message: _Outgoing) -> None:
        if len(self._items) >= self.limit:
            self._items.popleft()
            self.dropped += 1
        self._items.append(message)
        self._ready.set()

    async def peek(self, count: int) -> list[_Outgoing]:
        """Up to ``count`` of the oldest messages, left in place (waits for one)."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return list(itertools.islice(self._items, count))

    def delivered(self, batch: list[_Outgoing]) -> None:
        """Remove a delivered batch (those of it that were not dropped meanwhile)."""
        for message in batch:
            if self._items and self._items[0] is message:
                self._items.popleft()


class MqttBus:
    """Use as ``async with MqttBus.from_url(url) as bus``, and ``bus.scope`` as a server's session scope."""

    def __init__(
        self,
        host: str,
        port: int = 1883,
        *,
        username: str | None = None,
        password: str | None = None,
        tls: bool | ssl.SSLContext = False,
        prefix: str = "realtime",
        qos: int = 1,
        outbox_limit: int = 10_000,
        window: int = 16,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        keepalive_s: int = 30,
        flush_timeout_s: float = 2.0,
    ) -> None:
        if not prefix or any(c in prefix for c in "+#") or prefix.startswith("/") or prefix.endswith("/"):
            raise ValueError(f"invalid MQTT topic prefix {prefix!r}")
        self.host, self.port, self.prefix, self.qos = host, port, prefix, qos
        self.username, self.password = username, password
        self.tls_context = ssl.create_default_context() if tls is True else tls or None
        self.window = window
        """QoS 1 messages in flight at once (acknowledged in order, so delivery stays in order)."""
        self.reconnect_min_s, self.reconnect_max_s = reconnect_min_s, reconnect_max_s
        self.keepalive_s, self.flush_timeout_s = keepalive_s, flush_timeout_s
        self.connected = asyncio.Event()
        """Set while the bus is connected and subscribed to control messages."""
        self.outbox = Outbox(outbox_limit)
        self._sessions: dict[str, BusSession] = {}
        self._runner: asyncio.Task[None] | None = None
        self._closing = False

    @classmethod
    def from_url(
        cls, url: str, *, username: str | None = None, password: str | None = None, tls: bool = False,
        prefix: str = "realtime", **options: object,
    ) -> MqttBus:
        """``mqtt://[user[:password]@]host[:port]`` or ``mqtts://...`` (TLS, port 8883 by default)."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"MQTT URL {url!r}: expected mqtt://host[:port] or mqtts://host[:port]")
        tls = tls or parts.scheme == "mqtts"
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError as exc:
            raise ValueError(f"MQTT URL {url!r}: {exc}") from None
        return cls(
            parts.hostname, port, username=username or unquote(parts.username or "") or None,
            password=password or unquote(parts.password or "") or None, tls=tls, prefix=prefix, **options,  # type: ignore[arg-type]
        )

    @property
    def status_topic(self) -> str:
        return f"{self.prefix}/status"

    async def __aenter__(self) -> MqttBus:
        self._runner = asyncio.create_task(self._maintain(), name="mqtt-bus")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Deliver what is waiting (for at most ``flush_timeout_s``), say offline, disconnect."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.flush_timeout_s):
                while len(self.outbox) and self.connected.is_set():
                    await asyncio.sleep(0.02)
        if len(self.outbox):
            log.warning("MQTT: %d events were not delivered", len(self.outbox))
        self._closing = True
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner

    def scope(self, host: SessionHost) -> BusSession:
        """A session's presence on the bus, for ``async with``: its events out, its control messages in.

        ``{"type": "end"}`` ends the body of the ``async with`` (it is cancelled, and the cancellation
        ends there, like ``asyncio.timeout``), so a transport that closes when its body returns closes.
        """
        return BusSession(self, host)

    def publish(self, topic: str, message: dict[str, object], *, retain: bool = False) -> None:
        """Queue ``message`` for ``topic`` (delivered in order once the broker is reachable)."""
        payload = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()
        self.outbox.put(_Outgoing(topic, payload, retain))

    # ---- the connection --------------------------------------------------------------------------

    async def _maintain(self) -> None:
        """Stay connected: reconnect with exponential backoff (and jitter) whenever the broker is lost."""
        delay = self.reconnect_min_s
        while True:
            dropped = self.outbox.dropped
            reason: object = "the connection closed"
            try:
                await self._connection()
            except* (aiomqtt.MqttError, OSError) as group:
                reason = group.exceptions[0]
            except* Exception as group:  # noqa: BLE001 - a bug here must not end the bus for good
                log.error("MQTT: the connection failed", exc_info=group)
                reason = group.exceptions[0]
            if self.connected.is_set():  # it was up: start over from the shortest delay
                self.connected.clear()
                delay = self.reconnect_min_s
            if self.outbox.dropped > dropped:
                log.warning("MQTT: %d events dropped while the broker was unreachable", self.outbox.dropped - dropped)
            log.warning("MQTT: broker %s:%d unreachable (%s); retrying in %.1f s", self.host, self.port, reason, delay)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, self.reconnect_max_s)

    async def _connection(self) -> None:
        offline = json.dumps({"type": "status", "state": "offline"}).encode()
        client = aiomqtt.Client(
            self.host, self.port, username=self.username, password=self.password, tls_context=self.tls_context,
            identifier=f"realtime-{secrets.token_hex(4)}", keepalive=self.keepalive_s, logger=log,
            will=aiomqtt.Will(self.status_topic, offline, qos=1, retain=True),
        )
        client.pending_calls_threshold = self.window + 4
        async with client:
            granted = await client.subscribe([(f"{self.prefix}/control", 1), (f"{self.prefix}/+/control", 1)])
            if any(getattr(code, "is_failure", False) for code in granted):
                log.warning("MQTT: the broker refused the subscription to %s/+/control: no control messages", self.prefix)
            await client.publish(self.status_topic, json.dumps({"type": "status", "state": "online"}), qos=1, retain=True)
            self.connected.set()
            log.info("MQTT: connected to %s:%d", self.host, self.port)
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._send(client))
                    group.create_task(self._receive(client))
            finally:
                if self._closing:  # a clean shutdown: no last will
                    with contextlib.suppress(aiomqtt.MqttError):
                        await client.publish(self.status_topic, offline, qos=1, retain=True, timeout=1.0)

    async def _send(self, client: aiomqtt.Client) -> None:
        while True:
            batch = await self.outbox.peek(self.window)
            publishes: list[asyncio.Task[None]] = []
            try:
                async with asyncio.TaskGroup() as group:  # written to the socket in order: tasks start in order
                    for message in batch:
                        publishes.append(group.create_task(
                            client.publish(message.topic, message.payload, qos=self.qos, retain=message.retain)))
            finally:  # acknowledged ones are done; the rest are sent again after a reconnection
                acked = itertools.takewhile(lambda t: t.done() and not t.cancelled() and t.exception() is None, publishes)
                self.outbox.delivered(batch[: len(list(acked))])

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            self._dispatch(message.topic.value, bytes(message.payload), retained=message.retain)

    def _dispatch(self, topic: str, payload: bytes, *, retained: bool) -> None:
        """Route one control message to its session (or all, from ``{prefix}/control``); answer a bad one."""
        if retained:  # a stale command must not fire at every new subscriber
            log.warning("MQTT: ignored a retained control message on %s", topic)
            return
        session_id = topic[len(self.prefix) + 1 : -len("/control")]  # "" for the broadcast topic
        targets = [s for s in (self._sessions.get(session_id),) if s] if session_id else list(self._sessions.values())
        try:
            control = parse_control(payload)
            if session_id and not targets:
                raise ControlError(f"no session {session_id!r}", control.id)
        except ControlError as exc:
            log.warning("MQTT: bad control message on %s: %s", topic, exc)
            error: dict[str, object] = {"type": "error", "code": "invalid_control", "message": str(exc), "control_id": exc.control_id}
            if session_id and targets:
                targets[0].publish("error", error)
            else:
                self.publish(f"{self.prefix}/{session_id}/error" if session_id else f"{self.prefix}/error", error)
            return
        for target in targets:
            target.submit(control)


class BusSession:
    """One session on the bus (made by :meth:`MqttBus.scope`): publishes its events, carries out its control."""

    def __init__(self, bus: MqttBus, host: SessionHost) -> None:
        self.bus = bus
        self.id = host.id
        self.session = host.session
        self.topic = f"{bus.prefix}/{host.id}"
        self.ended_by_control = False
        self._seq = itertools.count(1)
        self._controls: asyncio.Queue[Control] = asyncio.Queue(MAX_PENDING_CONTROLS)
        self._worker: asyncio.Task[None] | None = None
        self._owner: asyncio.Task[object] | None = None
        self._owner_cancelling = 0
        self._exiting = False

    def publish(self, subtopic: str, message: dict[str, object]) -> None:
        envelope = {"type": message["type"], "session_id": self.id, "seq": next(self._seq), "time": round(time.time(), 3)}
        self.bus.publish(f"{self.topic}/{subtopic}", {**envelope, **message})

    def submit(self, control: Control) -> None:
        """Queue a control message (carried out in order, one at a time)."""
        try:
            self._controls.put_nowait(control)
        except asyncio.QueueFull:
            self.publish("error", {"type": "error", "code": "control_busy", "control_id": control.id,
                                   "message": f"more than {MAX_PENDING_CONTROLS} control messages are waiting"})

    async def __aenter__(self) -> BusSession:
        self._owner = asyncio.current_task()
        assert self._owner is not None, "a bus scope runs in a task"
        self._owner_cancelling = self._owner.cancelling()
        self.bus._sessions[self.id] = self  # noqa: SLF001 - the bus and its sessions are one module's pair
        self.session.observers.append(self._observe)
        self.publish("session", {"type": "session.started", "control_topic": f"{self.topic}/control"})
        self._worker = asyncio.create_task(self._carry_out(), name=f"{self.id}:mqtt-control")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> bool:
        self._exiting = True
        if self._worker is not None:
            self._worker.cancel()
        with contextlib.suppress(ValueError):
            self.session.observers.remove(self._observe)
        self.bus._sessions.pop(self.id, None)  # noqa: SLF001 - the bus and its sessions are one module's pair
        failed = exc_type is not None and not issubclass(exc_type, asyncio.CancelledError)
        reason = "control" if self.ended_by_control else "error" if failed else "closed"
        self.publish("session", {"type": "session.ended", "reason": reason})
        if self.ended_by_control and self._owner is not None:
            # Our cancellation ends here, unless someone else cancelled the task too.
            return self._owner.uncancel() <= self._owner_cancelling and exc_type is asyncio.CancelledError
        return False

    def _observe(self, item: OutputItem) -> None:
        for subtopic, message in event_messages(item):
            self.publish(subtopic, message)

    async def _carry_out(self) -> None:
        while True:
            control = await self._controls.get()
            try:
                await self._apply(control)
            except Exception as exc:  # noqa: BLE001 - a failed control message never ends the session
                log.exception("session %s: control %s failed", self.id, control.type)
                self.publish("error", {"type": "error", "code": "control_failed", "message": str(exc), "control_id": control.id})

    async def _apply(self, control: Control) -> None:
        session = self.session
        match control.type:
            case "say":
                await session.say(control.text or "")
            case "interrupt":
                await session.cancel_response()
            case "instructions":
                session.configure(dataclasses.replace(session.config, instructions=control.text or ""), announce=True)
            case "end":
                if not self._exiting and self._owner is not None and not self.ended_by_control:
                    self.ended_by_control = True
                    self._owner.cancel()
