"""The MQTT event and control bus: message shapes without a broker, then a real mosquitto on loopback
with a real voice session on the embedded models."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import aiomqtt
import numpy as np
import pytest

from realtime.events import AudioOut, ReplyDone, ReplyStarted, SpeechStarted, UserTranscriptFinal
from realtime.mqtt import MqttBus, Outbox
from realtime.mqtt_messages import Control, ControlError, event_messages, parse_control
from realtime.session.orchestrator import VoiceSession
from tests.conftest import Broker, silence
from tests.fakes import RecordingSpeaker

PREFIX = "test/agent"

# ---- without a broker -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'{"type": "say", "text": "Hello."}', Control("say", "Hello.")),
        (b'{"type": "interrupt", "id": "c1"}', Control("interrupt", None, "c1")),
        (b'{"type": "instructions", "text": "Be brief."}', Control("instructions", "Be brief.")),
        (b'{"type": "end", "text": "ignored"}', Control("end")),
    ],
)
def test_parses_control_messages(payload: bytes, expected: Control) -> None:
    assert parse_control(payload) == expected


@pytest.mark.parametrize(
    ("payload", "complaint"),
    [
        (b"say hello", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"type": "dance"}', "unknown type"),
        (b'{"text": "hi"}', "unknown type"),
        (b'{"type": "say"}', "non-empty string text"),
        (b'{"type": "say", "text": "  "}', "non-empty string text"),
        (b'{"type": "instructions", "text": 5}', "non-empty string text"),
        (b'{"type": "end", "id": 7}', "id must be a string"),
        (b'{"type": "say", "text": "' + b"a" * 70_000 + b'"}', "at most"),
    ],
)
def test_refuses_malformed_control_messages(payload: bytes, complaint: str) -> None:
    with pytest.raises(ControlError, match=complaint):
        parse_control(payload)


def test_maps_session_output_to_topics_and_never_audio() -> None:
    assert event_messages(AudioOut("turn_1", 1, np.zeros(480, np.float32))) == []
    assert event_messages(SpeechStarted(16_000, "item_1")) == [
        ("speech", {"type": "speech.started", "item_id": "item_1", "audio_ms": 1000})
    ]
    latency = {"turn_id": "turn_1", "first_packet_delay_ms": 612.5, "reference": "vad_speech_end", "stages_ms": {}}
    done = event_messages(ReplyDone("turn_1", 1, "item_2", "completed", "Paris.", latency))
    assert [(topic, message["type"]) for topic, message in done] == [
        ("transcript/assistant", "transcript.assistant.done"), ("response", "response.done"), ("latency", "latency")
    ]
    assert done[2][1]["first_packet_delay_ms"] == 612.5 and done[2][1]["status"] == "completed"


def test_urls() -> None:
    plain = MqttBus.from_url("mqtt://broker.example")
    assert (plain.host, plain.port, plain.tls_context) == ("broker.example", 1883, None)
    secure = MqttBus.from_url("mqtts://user:p%40ss@broker.example", prefix="home/agent")
    assert (secure.port, secure.username, secure.password, secure.prefix) == (8883, "user", "p@ss", "home/agent")
    assert secure.tls_context is not None
    assert MqttBus.from_url("mqtt://h:1", username="u", tls=True).tls_context is not None
    for bad in ("http://h", "mqtt://", "mqtt://h:99999"):
        with pytest.raises(ValueError, match="MQTT URL"):
            MqttBus.from_url(bad)
    with pytest.raises(ValueError, match="prefix"):
        MqttBus("h", prefix="a/#")


async def test_the_outbox_drops_the_oldest_when_full() -> None:
    from realtime.mqtt import _Outgoing

    outbox = Outbox(limit=3)
    messages = [_Outgoing(f"t/{i}", b"") for i in range(5)]
    for message in messages[:2]:
        outbox.put(message)
    batch = await outbox.peek(2)
    for message in messages[2:]:  # while the batch is in flight, the oldest is dropped
        outbox.put(message)
    outbox.delivered(batch)
    assert outbox.dropped == 2
    assert [m.topic for m in await outbox.peek(10)] == ["t/2", "t/3", "t/4"]


# ---- a real broker ----------------------------------------------------------------------------------


@dataclass
class Subscriber:
    """Collects every message under the test prefix, in arrival order (``identifier``: a persistent session)."""

    port: int
    identifier: str | None = None
    messages: list[tuple[str, dict]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    client: aiomqtt.Client | None = None

    async def run(self, ready: asyncio.Event) -> None:
        persistent = self.identifier is not None
        async with aiomqtt.Client("127.0.0.1", self.port, identifier=self.identifier, clean_session=not persistent) as client:
            self.client = client
            await client.subscribe(f"{PREFIX}/#", qos=1)
            ready.set()
            with contextlib.suppress(aiomqtt.MqttError):
                async for message in client.messages:
                    if message.topic.value.endswith("/control"):  # what the test itself sent
                        continue
                    self.messages.append((message.topic.value, json.loads(message.payload)))
                    self.arrived.set()

    async def wait_for(self, kind: str, timeout: float = 60.0, *, after: int = 0, **fields: object) -> dict:
        """The first message of type ``kind`` with ``fields``, from the ``after``-th one on."""
        async with asyncio.timeout(timeout):
            while True:
                for _, message in self.messages[after:]:
                    if message.get("type") == kind and all(message.get(k) == v for k, v in fields.items()):
                        return message
                self.arrived.clear()
                await self.arrived.wait()

    def types(self, session_id: str) -> list[str]:
        return [m["type"] for _, m in self.messages if m.get("session_id") == session_id]

    async def send(self, topic: str, payload: str | bytes) -> None:
        assert self.client is not None
        await self.client.publish(topic, payload, qos=1)


@contextlib.asynccontextmanager
async def subscribed(port: int, identifier: str | None = None):
    subscriber = Subscriber(port, identifier)
    ready = asyncio.Event()
    task = asyncio.create_task(subscriber.run(ready))
    async with asyncio.timeout(10):
        await ready.wait()
    try:
        yield subscriber
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@dataclass
class Conversation:
    """A transport for tests: a microphone that pushes silence, or the speech it is given, in real time;
    a sink that keeps what a listener would get."""

    id: str
    session: VoiceSession
    heard: list = field(default_factory=list)
    _speech: list[np.ndarray] = field(default_factory=list)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._microphone())
            group.create_task(self._sink())

    def speak(self, audio: np.ndarray) -> None:
        self._speech.append(audio)

    def reply_audio(self) -> np.ndarray:
        return np.concatenate([i.samples for i in self.heard if isinstance(i, AudioOut)] or [np.zeros(0, np.float32)])

    async def wait_for(self, kind: type, timeout: float = 90.0, **fields: object):
        async with asyncio.timeout(timeout):
            while True:
                for item in self.heard:
                    if isinstance(item, kind) and all(getattr(item, k) == v for k, v in fields.items()):
                        return item
                await asyncio.sleep(0.05)

    async def _microphone(self) -> None:
        start, pushed = time.monotonic(), 0
        pending = np.zeros(0, np.float32)
        while True:
            if not len(pending) and self._speech:
                pending = self._speech.pop(0)
            frame, pending = (pending[:320], pending[320:]) if len(pending) else (silence(0.02), pending)
            pushed += 1
            await asyncio.sleep(max(0.0, start + pushed * 0.02 - time.monotonic()))
            await self.session.push_audio(frame)

    async def _sink(self) -> None:
        async def heard(item: object) -> None:
            self.heard.append(item)

        await self.session.route(heard)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def conversation_on(bus: MqttBus, models, name: str):
    """A live conversation inside the bus's scope, as a transport runs it."""
    heard: list = []
    conversation = Conversation(name, VoiceSession(models, None, RecordingSpeaker(heard)), heard)
    task = asyncio.create_task(_scoped(bus, conversation))
    try:
        yield conversation, task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await conversation.session.close()


async def _scoped(bus: MqttBus, conversation: Conversation) -> str:
    async with bus.scope(conversation):
        await conversation.run()
    return "ended"


def bus_for(broker: Broker, **options: object) -> MqttBus:
    return MqttBus.from_url(
        f"mqtt://127.0.0.1:{broker.port}", prefix=PREFIX, reconnect_min_s=0.5, reconnect_max_s=2.0, **options
    )


async def connected(bus: MqttBus) -> None:
    async with asyncio.timeout(10):
        await bus.connected.wait()


def in_order(subscriber: Subscriber, session_id: str) -> list[int]:
    return [m["seq"] for _, m in subscriber.messages if m.get("session_id") == session_id]


@pytest.mark.slow
async def test_a_spoken_turn_is_published_in_order(broker, models, say) -> None:
    async with subscribed(broker.port) as subscriber:
        async with bus_for(broker) as bus:
            await connected(bus)
            async with conversation_on(bus, models, "sess_turn") as (conversation, _):
                await subscriber.wait_for("session.started", session_id="sess_turn")
                conversation.speak(say("What is the capital of France?"))
                latency = await subscriber.wait_for("latency", session_id="sess_turn")
            await subscriber.wait_for("session.ended", session_id="sess_turn", reason="closed")
        await subscriber.wait_for("status", state="offline")  # a clean shutdown, not the last will
    assert subscriber.messages[0] == (f"{PREFIX}/status", {"type": "status", "state": "online"})
    types = subscriber.types("sess_turn")
    assert in_order(subscriber, "sess_turn") == list(range(1, len(types) + 1)), "every event once, in order"
    first_of = {kind: types.index(kind) for kind in types}
    spine = ["session.started", "speech.started", "speech.stopped", "transcript.user.final", "response.started",
             "transcript.assistant.delta", "transcript.assistant.done", "response.done", "latency", "session.ended"]
    assert [first_of[kind] for kind in spine] == sorted(first_of[kind] for kind in spine), types
    assert "transcript.user.partial" in types
    messages = {m["type"]: (topic, m) for topic, m in subscriber.messages}
    assert messages["session.started"][0] == f"{PREFIX}/sess_turn/session"
    assert messages["session.started"][1]["control_topic"] == f"{PREFIX}/sess_turn/control"
    assert messages["transcript.user.final"][0] == f"{PREFIX}/sess_turn/transcript/user"
    assert "france" in messages["transcript.user.final"][1]["text"].lower()
    assert "paris" in messages["transcript.assistant.done"][1]["text"].lower()
    assert messages["response.done"][1]["status"] == "completed"
    assert latency["first_packet_delay_ms"] > 0 and latency["stages_ms"]["first_audio_out"] is not None
    assert all("audio" not in topic for topic, _ in subscriber.messages)
    assert max(len(json.dumps(m)) for _, m in subscriber.messages) < 2_000, "no audio payloads"


@pytest.mark.slow
async def test_say_speaks_and_interrupt_stops_a_reply(broker, models) -> None:
    async with subscribed(broker.port) as subscriber, bus_for(broker) as bus:
        await connected(bus)
        async with conversation_on(bus, models, "sess_ctl") as (conversation, _):
            control = f"{PREFIX}/sess_ctl/control"
            await subscriber.wait_for("session.started", session_id="sess_ctl")
            await subscriber.send(control, json.dumps({"type": "say", "text": "The meeting starts at noon."}))
            done = await subscriber.wait_for("response.done", session_id="sess_ctl")
            assert done["status"] == "completed"
            spoken = await subscriber.wait_for("transcript.assistant.done", session_id="sess_ctl")
            assert spoken["text"] == "The meeting starts at noon."
            heard = (await models.asr.transcribe_async(_to_16k(conversation.reply_audio()))).text.lower()
            assert "meeting" in heard and "noon" in heard

            story = "Once upon a time, a little dragon lived by the sea. " * 6
            mark = len(subscriber.messages)
            await subscriber.send(control, json.dumps({"type": "say", "text": story}))
            turn_id = (await subscriber.wait_for("transcript.assistant.delta", after=mark))["turn_id"]
            await subscriber.send(control, json.dumps({"type": "interrupt"}))
            await subscriber.wait_for("response.audio_cleared", turn_id=turn_id)
            stopped = await subscriber.wait_for("response.done", turn_id=turn_id)
            if stopped["status"] == "completed":  # all written before the interrupt came: what played is cut
                heard_text = (await subscriber.wait_for("transcript.assistant.truncated", after=mark))["text"]
            else:
                assert stopped["status"] == "cancelled"
                heard_text = (await subscriber.wait_for("transcript.assistant.done", turn_id=turn_id))["text"]
            assert len(heard_text) < len(story.strip()), "history keeps only what was heard"


def _to_16k(audio24k: np.ndarray) -> np.ndarray:
    from audio.samples import resample

    return resample(audio24k, 24_000, 16_000)


@pytest.mark.slow
async def test_malformed_control_is_answered_and_changes_nothing(broker, models) -> None:
    async with subscribed(broker.port) as subscriber, bus_for(broker) as bus:
        await connected(bus)
        async with conversation_on(bus, models, "sess_bad") as (conversation, task):
            await subscriber.wait_for("session.started", session_id="sess_bad")
            control = f"{PREFIX}/sess_bad/control"
            await subscriber.send(control, b"not json at all")
            error = await subscriber.wait_for("error", session_id="sess_bad")
            assert error["code"] == "invalid_control" and "not JSON" in error["message"]
            await subscriber.send(control, json.dumps({"type": "say", "id": "c-7"}))
            error = await subscriber.wait_for("error", control_id="c-7")
            assert error["session_id"] == "sess_bad"
            assert ("test/agent/sess_bad/error", error) in subscriber.messages
            await subscriber.send(f"{PREFIX}/control", b'{"type": "jump", "id": "c-9"}')
            broadcast = await subscriber.wait_for("error", control_id="c-9")
            assert (f"{PREFIX}/error", broadcast) in subscriber.messages
            await subscriber.send(f"{PREFIX}/nobody/control", b'{"type": "end", "id": "c-8"}')
            assert "no session" in (await subscriber.wait_for("error", control_id="c-8"))["message"]
            await subscriber.send(control, json.dumps({"type": "interrupt"}))  # nothing to interrupt
            assert (await subscriber.wait_for("error", code="response_cancel_not_active"))["session_id"] == "sess_bad"

            await subscriber.send(control, json.dumps({"type": "instructions", "text": "Answer like a pirate."}))
            async with asyncio.timeout(10):
                while conversation.session.config.instructions != "Answer like a pirate.":
                    await asyncio.sleep(0.05)
            assert not task.done(), "the session goes on"
            assert not [i for i in conversation.heard if isinstance(i, (ReplyStarted, UserTranscriptFinal))]


@pytest.mark.slow
async def test_end_closes_the_scope_without_cancelling_its_owner(broker, models) -> None:
    async with subscribed(broker.port) as subscriber, bus_for(broker) as bus:
        await connected(bus)
        async with conversation_on(bus, models, "sess_end") as (_, task):
            await subscriber.wait_for("session.started", session_id="sess_end")
            await subscriber.send(f"{PREFIX}/sess_end/control", json.dumps({"type": "end"}))
            async with asyncio.timeout(10):
                assert await task == "ended"
            assert not task.cancelled()
        ended = await subscriber.wait_for("session.ended", session_id="sess_end")
        assert ended["reason"] == "control"


@pytest.mark.slow
async def test_the_conversation_survives_the_broker_and_events_resume_in_order(tmp_path, models, say) -> None:
    broker = Broker(tmp_path, persistent=True)  # the watcher's subscription survives the kill: no race with the bus
    broker.start()
    try:
        async with subscribed(broker.port, "watcher") as before, bus_for(broker) as bus:
            await connected(bus)
            async with conversation_on(bus, models, "sess_loss") as (conversation, _):
                await before.wait_for("session.started", session_id="sess_loss")
                broker.kill()
                conversation.speak(say("What is the capital of Germany?"))
                reply = await conversation.wait_for(ReplyDone)  # the whole turn happens while the broker is down
                assert reply.status == "completed" and "berlin" in reply.text.lower()
                assert not bus.connected.is_set() and len(bus.outbox) > 0
                broker.start()
                async with subscribed(broker.port, "watcher") as after:
                    latency = await after.wait_for("latency", session_id="sess_loss", timeout=30)
                    assert latency["first_packet_delay_ms"] > 0 and bus.connected.is_set()
                    mark = len(after.messages)
                    conversation.speak(say("What is the capital of France?"))  # and the bus goes on live
                    await after.wait_for("transcript.user.final", session_id="sess_loss", after=mark, timeout=90)
    finally:
        broker.kill()
    assert bus.outbox.dropped == 0
    seen = in_order(before, "sess_loss") + in_order(after, "sess_loss")
    unique = list(dict.fromkeys(seen))  # a message in flight at the loss may come twice (at least once)
    assert unique == list(range(1, len(unique) + 1)), "nothing lost, in order"
    types = after.types("sess_loss")
    for kind in ("speech.started", "transcript.user.final", "transcript.assistant.done", "response.done"):
        assert kind in types
    assert any("berlin" in m.get("text", "").lower() for _, m in after.messages if m["type"] == "transcript.assistant.done")


@pytest.mark.slow
async def test_end_closes_a_websocket_session_of_the_server(broker, models) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    from realtime.server import RealtimeServer, ServerOptions

    async with subscribed(broker.port) as subscriber, bus_for(broker) as bus:
        await connected(bus)
        server = await RealtimeServer(models, ServerOptions(port=0), session_scope=bus.scope).start()
        try:
            async with connect(f"ws://127.0.0.1:{server.port}/v1/realtime") as ws:
                session_id = json.loads(await ws.recv())["session"]["id"]
                await subscriber.wait_for("session.started", session_id=session_id)
                await subscriber.send(f"{PREFIX}/{session_id}/control", json.dumps({"type": "say", "text": "Goodbye."}))
                await subscriber.wait_for("response.done", session_id=session_id)
                await subscriber.send(f"{PREFIX}/{session_id}/control", json.dumps({"type": "end"}))
                with pytest.raises(ConnectionClosed):
                    async with asyncio.timeout(10):
                        while True:
                            await ws.recv()
            assert (await subscriber.wait_for("session.ended", session_id=session_id))["reason"] == "control"
            async with asyncio.timeout(10):
                while server.connections:
                    await asyncio.sleep(0.05)
        finally:
            await server.stop()


async def test_a_long_outage_keeps_the_newest_events_and_counts_the_rest(tmp_path) -> None:
    broker = Broker(tmp_path, persistent=True)
    broker.start()
    session = SimpleNamespace(observers=[])  # the bus only listens to a session's output here
    try:
        async with subscribed(broker.port, "watcher") as before, bus_for(broker, outbox_limit=5) as bus:
            await connected(bus)
            async with bus.scope(SimpleNamespace(id="sess_drop", session=session)):
                await before.wait_for("session.started", session_id="sess_drop")
                broker.kill()
                async with asyncio.timeout(10):
                    while bus.connected.is_set():
                        await asyncio.sleep(0.02)
                for sample in range(1, 21):
                    session.observers[0](SpeechStarted(sample * 16, f"item_{sample}"))
                assert (len(bus.outbox), bus.outbox.dropped) == (5, 15)
                broker.start()
                async with subscribed(broker.port, "watcher") as after:
                    await after.wait_for("speech.started", item_id="item_20", timeout=30)
    finally:
        broker.kill()
    assert in_order(after, "sess_drop") == [17, 18, 19, 20, 21], "the newest five, in order"
    assert [m["item_id"] for _, m in after.messages if m["type"] == "speech.started"] == [f"item_{i}" for i in range(16, 21)]
