"""The websocket endpoint over real loopback sockets, on the real embedded models."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from audio.samples import resample, to_pcm16
from realtime import heap
from realtime.server import RealtimeServer, ServerOptions
from tests.conftest import silence

pytestmark = pytest.mark.slow
WIRE_RATE = 24_000


@pytest.fixture
async def server(models):
    running = await RealtimeServer(models, ServerOptions(port=0, max_sessions=3, api_key="secret-key")).start()
    yield running
    await running.stop()


def url(server: RealtimeServer) -> str:
    return f"ws://127.0.0.1:{server.port}/v1/realtime?model=embedded"


AUTH = {"Authorization": "Bearer secret-key"}


async def stream(ws, audio16k: np.ndarray, *, realtime: bool = True) -> float:
    """Send 16 kHz audio as 24 kHz PCM16 in 20 ms appends, paced in real time; returns when it ended."""
    wire = resample(audio16k, 16_000, WIRE_RATE)
    step = WIRE_RATE // 50
    start = time.monotonic()
    for index, offset in enumerate(range(0, len(wire), step)):
        if realtime:
            await asyncio.sleep(max(0.0, start + index * 0.02 - time.monotonic()))
        chunk = base64.b64encode(to_pcm16(wire[offset : offset + step])).decode()
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))
    return time.monotonic()


async def events_until(ws, kind: str, timeout: float = 60.0) -> list[dict]:
    seen = []
    async with asyncio.timeout(timeout):
        while True:
            event = json.loads(await ws.recv())
            seen.append(event)
            if event["type"] == kind:
                return seen


async def keep_silent(ws, seconds: float) -> None:
    await stream(ws, silence(seconds))


async def drained(server: RealtimeServer) -> None:
    """Every session of the server ended and was freed."""
    async with asyncio.timeout(10):
        while server.connections:
            await asyncio.sleep(0.05)


def reply_audio(events: list[dict]) -> np.ndarray:
    pcm = b"".join(base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta")
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


async def test_a_spoken_question_gets_a_spoken_answer_in_order(server, models, say) -> None:
    async with connect(url(server), additional_headers=AUTH) as ws:
        created = json.loads(await ws.recv())
        assert created["type"] == "session.created"
        assert created["session"]["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24_000}
        await ws.send(json.dumps({"type": "session.update", "session": {
            "reasoning": {"budget_tokens": 16}, "extensions": ["thinking", "latency"]}}))
        speech_end = await stream(ws, np.concatenate([silence(0.3), say("What is the capital of Germany?")]))
        tail = asyncio.create_task(keep_silent(ws, 8.0))
        events = await events_until(ws, "response.latency")
        tail.cancel()
    kinds = [e["type"] for e in events]
    order = [
        "session.updated", "input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed", "conversation.item.added", "conversation.item.input_audio_transcription.completed",
        "response.created", "response.thinking.delta", "response.thinking.done", "response.output_item.added",
        "response.content_part.added", "response.output_audio_transcript.delta", "response.output_audio.delta",
        "response.output_audio.done", "response.output_audio_transcript.done", "response.content_part.done",
        "response.output_item.done", "response.done", "response.latency",
    ]
    positions = [kinds.index(kind) for kind in order]
    assert positions == sorted(positions), kinds
    transcript = next(e for e in events if e["type"] == "conversation.item.input_audio_transcription.completed")
    assert "germany" in transcript["transcript"].lower()
    done = next(e for e in events if e["type"] == "response.done")
    assert done["response"]["status"] == "completed"
    heard = (await models.asr.transcribe_async(resample(reply_audio(events), WIRE_RATE, 16_000))).text
    assert "berlin" in heard.lower()
    latency = next(e for e in events if e["type"] == "response.latency")["latency"]
    assert latency["first_packet_delay_ms"] > 0
    del speech_end


@pytest.mark.timing
async def test_barge_in_cancels_and_truncates(server, say) -> None:
    async with connect(url(server), additional_headers=AUTH) as ws:
        await stream(ws, np.concatenate([silence(0.3), say("Please tell me a long story about a brave little dragon.")]))
        silent = asyncio.create_task(keep_silent(ws, 30.0))
        await events_until(ws, "response.output_audio.delta")
        await asyncio.sleep(1.0)
        silent.cancel()
        await stream(ws, np.concatenate([say("Wait, wait, hold on a moment please."), silence(0.2)]))
        tail = asyncio.create_task(keep_silent(ws, 10.0))
        events = await events_until(ws, "response.done")
        tail.cancel()
    kinds = [e["type"] for e in events]
    assert "input_audio_buffer.speech_started" in kinds and "output_audio_buffer.cleared" in kinds
    done = next(e for e in events if e["type"] == "response.done")
    assert done["response"]["status"] == "cancelled"
    assert kinds.index("input_audio_buffer.speech_started") < kinds.index("output_audio_buffer.cleared")
    after = kinds[kinds.index("output_audio_buffer.cleared") :]
    assert "response.output_audio.delta" not in after, "no reply audio after the barge-in"


async def test_two_sessions_at_once_do_not_disturb_each_other(server, say) -> None:
    async def ask(question: str) -> list[dict]:
        async with connect(url(server), additional_headers=AUTH) as ws:
            await stream(ws, np.concatenate([silence(0.3), say(question)]))
            tail = asyncio.create_task(keep_silent(ws, 15.0))
            events = await events_until(ws, "response.done", timeout=90)
            tail.cancel()
            return events

    germany, japan = await asyncio.gather(ask("What is the capital of Germany?"), ask("What is the capital of Japan?"))
    for events, city in ((germany, "berlin"), (japan, "tokyo")):
        transcript = " ".join(e["delta"] for e in events if e["type"] == "response.output_audio_transcript.delta")
        assert city in transcript.lower(), transcript
    await drained(server)


async def test_bad_input_gets_errors_and_the_session_goes_on(server) -> None:
    bad = [
        ("not json", "invalid_json"),
        (json.dumps(["a", "list"]), "invalid_event"),
        (json.dumps({"type": "no.such.event"}), "invalid_event_type"),
        (json.dumps({"type": "input_audio_buffer.append", "audio": "%%%not base64"}), "invalid_audio"),
        (json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(b"\x01\x02\x03").decode()}),
         "invalid_audio"),
        (json.dumps({"type": "session.update", "session": {"input_audio_format": "mp3"}}), "invalid_value"),
        (json.dumps({"type": "input_audio_buffer.append", "audio": "A" * (5 * 1024 * 1024)}), "message_too_large"),
        (json.dumps({"type": "input_audio_buffer.commit", "event_id": "mine"}), "input_audio_buffer_commit_empty"),
        (json.dumps({"type": "response.cancel"}), "response_cancel_not_active"),
        (json.dumps({"type": "conversation.item.delete", "item_id": "nope"}), "item_not_found"),
    ]
    async with connect(url(server), additional_headers=AUTH) as ws:
        await ws.recv()  # session.created
        for message, code in bad:
            await ws.send(message)
            event = json.loads(await ws.recv())
            assert event["type"] == "error" and event["error"]["code"] == code, (message[:40], event)
        await ws.send(json.dumps({"type": "session.update", "session": {"instructions": "Be brief."}}))
        assert json.loads(await ws.recv())["type"] == "session.updated"


async def test_auth_origin_limit_and_disconnect(server, say) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url(server)):
            pass
    assert refused.value.response.status_code == 401
    browser = await connect(url(server), subprotocols=["realtime", "openai-insecure-api-key.secret-key"])
    assert browser.subprotocol == "realtime"
    others = [await connect(url(server), additional_headers=AUTH) for _ in range(2)]
    async with connect(url(server), additional_headers=AUTH) as extra:
        refusal = json.loads(await extra.recv())
        assert refusal["error"]["code"] == "session_limit_reached"
    # An abrupt disconnect in the middle of a reply frees the session.
    await stream(browser, np.concatenate([silence(0.3), say("Tell me a story about a cat."), silence(1.0)]))
    await events_until(browser, "response.created")
    browser.transport.abort()
    for ws in others:
        await ws.close()
    await drained(server)


async def test_frames_are_not_compressed(server) -> None:
    async with connect(url(server), additional_headers=AUTH) as ws:  # the client offers permessage-deflate
        assert ws.response.headers.get("Sec-WebSocket-Extensions") is None
        assert json.loads(await ws.recv())["type"] == "session.created"


async def test_freed_memory_is_given_back_once_the_last_session_leaves(server, monkeypatch) -> None:
    released: list[int] = []
    monkeypatch.setattr(heap, "release", lambda: released.append(len(server.connections)) or True)
    first, second = [await connect(url(server), additional_headers=AUTH) for _ in range(2)]
    for ws in (first, second):
        assert json.loads(await ws.recv())["type"] == "session.created"
    await first.close()
    async with asyncio.timeout(10):
        while len(server.connections) > 1:
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    assert released == []  # a session still runs: no trimming beside it
    second.transport.abort()
    await drained(server)
    async with asyncio.timeout(5):
        while not released:
            await asyncio.sleep(0.05)
    assert released == [0]


async def test_the_official_openai_sdk_talks_to_it(server, models, say) -> None:
    """A client nobody here wrote: the openai package's realtime client, on loopback."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(api_key="secret-key", base_url=f"http://127.0.0.1:{server.port}/v1",
                         websocket_base_url=f"ws://127.0.0.1:{server.port}/v1")
    audio = resample(np.concatenate([silence(0.3), say("What is the capital of Japan?"), silence(1.5)]), 16_000, WIRE_RATE)
    async with client.realtime.connect(model="embedded") as connection:
        instructions = "You are a friendly voice assistant. Answer in one complete sentence of plain words."
        await connection.session.update(session={"type": "realtime", "instructions": instructions})
        step = WIRE_RATE // 10
        for offset in range(0, len(audio), step):
            chunk = base64.b64encode(to_pcm16(audio[offset : offset + step])).decode()
            await connection.input_audio_buffer.append(audio=chunk)
            await asyncio.sleep(0.1)
        pcm, transcript = b"", ""
        async with asyncio.timeout(60):
            async for event in connection:
                if event.type == "response.output_audio.delta":
                    pcm += base64.b64decode(event.delta)
                elif event.type == "response.output_audio_transcript.delta":
                    transcript += event.delta
                elif event.type == "response.done":
                    status = event.response.status
                    break
    assert status == "completed" and "tokyo" in transcript.lower(), (status, transcript)
    reply = np.frombuffer(pcm, "<i2").astype(np.float32) / 32768
    heard = await models.asr.transcribe_async(resample(reply, WIRE_RATE, 16_000))
    assert "tokyo" in heard.text.lower(), heard.text


async def test_settings_changed_elsewhere_survive_a_client_update(server) -> None:
    """An MQTT "instructions" control changes the session: the client is told with session.updated, and its next
    session.update builds on it."""
    import dataclasses

    async with connect(url(server), additional_headers=AUTH) as ws:
        await ws.recv()  # session.created
        [connection] = server.connections
        session = connection.session
        session.configure(dataclasses.replace(session.config, instructions="Speak like a pirate."), announce=True)
        told = json.loads(await ws.recv())
        assert told["type"] == "session.updated" and told["session"]["instructions"] == "Speak like a pirate."
        await ws.send(json.dumps({"type": "session.update", "session": {"temperature": 0.5}}))
        updated = json.loads(await ws.recv())
    assert updated["session"]["instructions"] == "Speak like a pirate."
    assert session.config.instructions == "Speak like a pirate." and session.config.temperature == 0.5


async def test_a_session_without_client_events_is_closed_while_pings_flow() -> None:
    """The idle timeout counts client events, not pongs (aiohttp restarts a receive timeout on each one). The client
    sends one event, then nothing but pongs to the server's pings: 25 s after that event the session is told why and
    closed with code 1000, ``idle timeout``."""
    from aiohttp import ClientSession, WSMsgType

    from tests.fakes import fake_models

    server = await RealtimeServer(fake_models()[0], ServerOptions(port=0, idle_timeout_s=25.0, web_root=None)).start()
    pings, events = [], []
    try:
        async with ClientSession() as http, http.ws_connect(f"ws://127.0.0.1:{server.port}/v1/realtime", autoping=False) as ws:
            await asyncio.sleep(3.0)
            await ws.send_str(json.dumps({"type": "session.update", "session": {"instructions": "Be brief."}}))
            last_event = time.monotonic()
            async with asyncio.timeout(60):
                while (message := await ws.receive()).type not in (WSMsgType.CLOSE, WSMsgType.CLOSED):
                    if message.type == WSMsgType.PING:
                        pings.append(time.monotonic())
                        await ws.pong(message.data)
                    elif message.type == WSMsgType.TEXT:
                        events.append(json.loads(message.data))
            closed = time.monotonic()
        await drained(server)
    finally:
        await server.stop()
    assert (message.type, message.data, message.extra) == (WSMsgType.CLOSE, 1000, "idle timeout")
    assert 24.5 < closed - last_event < 29.0, closed - last_event
    assert any(last_event < ping < closed for ping in pings), "pings and pongs flowed while the client was idle"
    assert [e["type"] for e in events] == ["session.created", "session.updated", "error"]
    assert events[-1]["error"]["code"] == "idle_timeout"


async def test_freed_memory_is_given_back_after_a_reply_now_and_then(server, monkeypatch) -> None:
    released: list[int] = []
    monkeypatch.setattr(heap, "release", lambda: released.append(len(server.connections)) or True)
    now = [0.0]
    monkeypatch.setattr(server, "heap", heap.Releases(interval_s=60.0, clock=lambda: now[0]))
    now[0] = 60.0  # a minute after the server started
    async with connect(url(server), additional_headers=AUTH) as ws:
        assert json.loads(await ws.recv())["type"] == "session.created"
        for question in ("What is two plus two?", "What colour is the sky?"):
            await ws.send(json.dumps({"type": "conversation.item.create", "item": {
                "type": "message", "role": "user", "content": [{"type": "input_text", "text": question}]}}))
            await ws.send(json.dumps({"type": "response.create"}))
            await events_until(ws, "response.done", timeout=60)
        await asyncio.sleep(0.2)
        assert released == [1]  # after the first reply, beside its session; not again within the interval
    await drained(server)
