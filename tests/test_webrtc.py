"""The WebRTC transport without a browser: frame conversion, pacing and flushing of the reply track, ICE
helpers; then the HTTP routes and a whole call from an aiortc peer, on loopback only."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import time
from fractions import Fraction

import aioice.ice
import av
import numpy as np
import pytest
from aiohttp import ClientSession, FormData
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from websockets.asyncio.client import connect

from audio.samples import resample, rms_dbfs
from realtime.conversation import DEFAULT_INSTRUCTIONS
from realtime.events import AudioOut
from realtime.server import RealtimeServer, ServerOptions
from realtime.webrtc import (
    FRAME_SAMPLES,
    RATE,
    InboundAudio,
    ReplyTrack,
    gather_with_loopback,
    offers_loopback,
    parse_ice_server,
)
from tests.conftest import silence


def stereo_frame(left: np.ndarray, right: np.ndarray, pts: int) -> av.AudioFrame:
    """A frame as aiortc's Opus decoder delivers it: packed stereo s16 at 48 kHz."""
    interleaved = np.stack([left, right], axis=1).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray((interleaved * 32767).astype(np.int16), format="s16", layout="stereo")
    frame.sample_rate, frame.pts, frame.time_base = RATE, pts, Fraction(1, RATE)
    return frame


def sine(seconds: float, rate: int = RATE, amplitude: float = 0.5) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * 440 * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


def test_inbound_audio_becomes_16k_mono() -> None:
    tone, inbound = sine(1.0), InboundAudio()
    out = np.concatenate([
        inbound.convert(stereo_frame(tone[i : i + 960], tone[i : i + 960] * 0.5, i)) for i in range(0, len(tone), 960)
    ])
    assert abs(len(out) - 16_000) < 400  # the resampler holds back its filter delay
    assert out.dtype == np.float32
    expected = rms_dbfs(0.75 * tone)  # the mean of both channels
    assert abs(rms_dbfs(out[2000:]) - expected) < 0.5


async def test_the_reply_track_is_silent_when_idle_and_paced_in_real_time() -> None:
    track = ReplyTrack()
    start = time.monotonic()
    frames = [await track.recv() for _ in range(11)]
    assert time.monotonic() - start >= 0.19  # frame n leaves n x 20 ms after the first
    assert [f.pts for f in frames] == [i * FRAME_SAMPLES for i in range(11)]
    for frame in frames:
        assert (frame.samples, frame.sample_rate, frame.layout.name, frame.format.name) == (FRAME_SAMPLES, RATE, "mono", "s16")
        assert not frame.to_ndarray().any()


async def test_a_stalled_sender_does_not_burst() -> None:
    track = ReplyTrack()
    await track.recv()
    time.sleep(0.5)  # the event loop stalls
    await track.recv()
    start = time.monotonic()
    for _ in range(5):
        await track.recv()
    assert time.monotonic() - start >= 0.08, "frames after a stall keep the real-time pace"


async def test_queued_audio_plays_in_order_across_frames() -> None:
    track = ReplyTrack()
    ramp = np.linspace(-0.5, 0.5, 1500, dtype=np.float32)
    await track.play(AudioOut("turn_a", 1, ramp))
    await track.play(AudioOut("turn_a", 1, ramp[::-1].copy()))
    assert track.queued_samples == 3000
    sent = np.concatenate([(await track.recv()).to_ndarray().reshape(-1) for _ in range(4)]).astype(np.float32) / 32767
    np.testing.assert_allclose(sent[:3000], np.concatenate([ramp, ramp[::-1]]), atol=1e-4)
    assert not sent[3000:].any(), "the last frame is padded with silence"
    assert set(track.first_packets) == {"turn_a"} and track.queued_samples == 0


async def test_clear_flushes_at_once_and_stale_audio_is_never_sent() -> None:
    track = ReplyTrack()
    await track.play(AudioOut("turn_a", 1, np.full(RATE, 0.5, np.float32)))
    assert (await track.recv()).to_ndarray().any()
    playback = track.clear()
    assert (playback.generation, playback.samples) == (1, 960), "what was sent of which reply: one 20 ms frame"
    assert track.queued_samples == 0 and not (await track.recv()).to_ndarray().any()

    track.is_stale = lambda item: item.generation < 2  # generation 1 was interrupted after it was queued
    await track.play(AudioOut("turn_a", 1, np.full(RATE, 0.5, np.float32)))
    await track.play(AudioOut("turn_b", 2, np.full(100, -0.25, np.float32)))
    sent = (await track.recv()).to_ndarray().reshape(-1)
    assert (sent[:100] < 0).all() and not sent[100:].any()
    assert "turn_b" in track.first_packets


def test_ice_servers_and_loopback_offers() -> None:
    assert parse_ice_server("stun:stun.example.org:3478").urls == "stun:stun.example.org:3478"
    turn = parse_ice_server("turn:alice:s%40cret@turn.example.org:3478?transport=udp")
    assert (turn.urls, turn.username, turn.credential) == ("turn:turn.example.org:3478?transport=udp", "alice", "s@cret")
    with pytest.raises(ValueError):
        parse_ice_server("http://example.org")
    lan = "a=candidate:1 1 udp 2122260223 192.0.2.7 50548 typ host generation 0"
    mdns = "a=candidate:2 1 udp 2122260223 0c0ffee0-1234.local 50549 typ host"
    loop = "a=candidate:3 1 udp 2122260223 127.0.0.1 50550 typ host"
    assert not offers_loopback(f"v=0\r\n{lan}\r\n{mdns}\r\n")
    assert offers_loopback(f"v=0\r\n{lan}\r\n{loop}\r\n")


# ---- the HTTP routes and whole calls, on the real models ------------------------------------------------

KEY = "secret-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
PAGE_ORIGIN = "http://page.example"


@pytest.fixture
def loopback_only(monkeypatch):
    """aioice sees no interface but loopback, as in a loopback-only network namespace: every ICE
    candidate of both peers is 127.0.0.1, so no packet of these tests is addressed anywhere else."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: [])


@pytest.fixture
async def server(models, loopback_only):
    options = ServerOptions(port=0, max_sessions=2, api_key=KEY, allowed_origins=(PAGE_ORIGIN,))
    running = await RealtimeServer(models, options).start()
    yield running
    await running.stop()


class Peer:
    """An aiortc client: a microphone track it can speak into, the reply it hears, the events it gets."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.microphone = ReplyTrack()  # paced 48 kHz frames, silence when idle: a microphone in a quiet room
        self.pc.addTrack(self.microphone)
        self.channel = self.pc.createDataChannel("oai-events")
        self.events: list[dict] = []
        self.heard: list[np.ndarray] = []
        self.channel.on("message", lambda message: self.events.append(json.loads(message)))
        self.pc.on("track", lambda track: asyncio.ensure_future(self._listen(track)))

    async def offer(self) -> str:
        await gather_with_loopback(self.pc)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def _listen(self, track) -> None:  # noqa: ANN001 - the remote audio track
        inbound = InboundAudio()
        with contextlib.suppress(MediaStreamError):  # the call ended
            while True:
                self.heard.append(inbound.convert(await track.recv()))

    async def say(self, audio16k: np.ndarray) -> None:
        await self.microphone.play(AudioOut("question", 0, resample(audio16k, 16_000, RATE)))

    async def until(self, kind: str, timeout: float = 90.0) -> dict:
        async with asyncio.timeout(timeout):
            while not any(e["type"] == kind for e in self.events):
                await asyncio.sleep(0.05)
        return next(e for e in self.events if e["type"] == kind)


def calls_url(server: RealtimeServer) -> str:
    return f"http://127.0.0.1:{server.port}/v1/realtime/calls"


async def drained(server: RealtimeServer) -> None:
    async with asyncio.timeout(10):
        while server.connections:
            await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_routes_refuse_what_they_must(server) -> None:
    url, sdp = calls_url(server), {"Content-Type": "application/sdp"}
    async with ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{server.port}/nothing-here") as response:
            assert response.status == 404
        async with http.get(f"http://127.0.0.1:{server.port}/") as response:
            assert response.status == 200 and response.content_type == "text/html"
            assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        async with http.get(f"http://127.0.0.1:{server.port}/app.js") as response:
            assert response.status == 200 and "javascript" in response.content_type
        async with http.get(f"http://127.0.0.1:{server.port}/v1/realtime", headers=AUTH) as response:
            assert response.status == 426  # not a websocket handshake
        async with http.post(url, data="v=0", headers=sdp) as response:
            assert response.status == 401
        async with http.post(url, data="v=0", headers={**sdp, **AUTH, "Origin": "http://evil.example"}) as response:
            assert response.status == 403
        async with http.post(url, data="v=0", headers={**AUTH, "Content-Type": "text/plain"}) as response:
            assert response.status == 415
        async with http.post(url, data="not an offer", headers={**sdp, **AUTH, "Origin": PAGE_ORIGIN}) as response:
            assert response.status == 400 and (await response.json())["error"]["code"] == "invalid_offer"
    assert not server.connections


@pytest.mark.slow
async def test_an_offer_gets_an_sdp_answer_and_the_session_limit_holds(server) -> None:
    peer = Peer()
    async with ClientSession() as http, connect(f"ws://127.0.0.1:{server.port}/v1/realtime", additional_headers=AUTH):
        sdp = {**AUTH, "Content-Type": "application/sdp"}
        async with http.post(calls_url(server), data=await peer.offer(), headers=sdp) as response:
            assert response.status == 201 and response.content_type == "application/sdp"
            answer = await response.text()
        assert answer.startswith("v=0") and "m=audio" in answer and "m=application" in answer
        assert offers_loopback(answer), "a loopback offer gets a loopback candidate"
        assert len(server.connections) == 2  # the websocket and the call, before the peer even connected
        async with http.post(calls_url(server), data=await Peer().offer(), headers=sdp) as response:
            assert response.status == 503 and (await response.json())["error"]["code"] == "session_limit_reached"
    await peer.pc.close()


@pytest.mark.slow
async def test_a_whole_call_from_an_aiortc_peer(server, models, say) -> None:
    peer = Peer()
    form = FormData()
    form.add_field("sdp", await peer.offer(), content_type="application/sdp")
    # A full-sentence answer: a lone word ("Berlin.") from Piper is often misheard by Whisper base ("Rolin.").
    instructions = DEFAULT_INSTRUCTIONS + " Answer in a complete sentence."
    form.add_field("session", json.dumps({"instructions": instructions, "extensions": ["latency"]}), content_type="application/json")
    async with ClientSession() as http, http.post(calls_url(server), data=form, headers=AUTH) as response:
        assert response.status == 201, await response.text()
        await peer.pc.setRemoteDescription(RTCSessionDescription(await response.text(), "answer"))
    assert (await peer.until("session.created"))["session"]["id"] == next(iter(server.connections)).id
    assert (await peer.until("session.updated"))["session"]["instructions"] == instructions
    await peer.say(np.concatenate([silence(0.3), say("What is the capital of Germany?")]))
    transcript = await peer.until("conversation.item.input_audio_transcription.completed")
    assert "germany" in transcript["transcript"].lower(), transcript
    latency = (await peer.until("response.latency"))["latency"]
    await asyncio.sleep(2.0)  # the reply plays in real time; response.done came when it was written
    kinds = [e["type"] for e in peer.events]
    assert "response.output_audio.delta" not in kinds, "reply audio travels as RTP, not as events"
    assert latency["first_packet_delay_ms"] > 0
    reply = np.concatenate(peer.heard)
    assert rms_dbfs(reply) > -50, "the reply arrived as audio"
    heard = (await models.asr.transcribe_async(reply)).text
    said = " ".join(e["delta"] for e in peer.events if e["type"] == "response.output_audio_transcript.delta")
    assert "berlin" in heard.lower(), (heard, said)
    await peer.pc.close()
    await drained(server)  # hanging up frees the session


@pytest.mark.slow
async def test_https_serves_the_page(models, tmp_path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    options = ServerOptions(port=0, certfile=str(tmp_path / "cert.pem"), keyfile=str(tmp_path / "key.pem"))
    server = await RealtimeServer(models, options).start()
    try:
        assert server.url.startswith("https://")
        async with ClientSession() as http, http.get(server.url, ssl=False) as response:
            assert response.status == 200 and "Voice agent" in await response.text()
    finally:
        await server.stop()
