"""The WebRTC transport without a browser: frame conversion, pacing and flushing of the reply track, ICE
helpers; then the HTTP routes (CORS, hang-up) and whole calls from aiortc peers (offers sent before gathering,
listen-only offers, playback events) on fake models, and a whole spoken call on the real models, on loopback only."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import time
from fractions import Fraction

import aioice.ice
import av
import numpy as np
import pydantic
import pytest
from aiohttp import ClientSession, FormData
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.codecs.opus import OpusDecoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket
from openai.types.realtime import RealtimeServerEvent
from websockets.asyncio.client import connect

from audio.samples import resample, rms_dbfs
from realtime.conversation import DEFAULT_INSTRUCTIONS
from realtime.events import AudioOut
from realtime.models import Models
from realtime.server import RealtimeServer, ServerOptions
from realtime.webrtc import (
    FRAME_SAMPLES,
    MAX_LAG_S,
    RATE,
    InboundAudio,
    OpusTrack,
    ReplyTrack,
    WebRtcCall,
    audio_codec,
    audio_direction,
    awaiting_candidates,
    candidate_addresses,
    gather_with_loopback,
    offers_loopback,
    parse_ice_server,
    prompt_audio,
)
from tests.conftest import silence
from tests.fakes import fake_models


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


async def test_the_track_tells_when_a_reply_starts_and_stops_playing() -> None:
    track, told = ReplyTrack(), []
    track.on_playback = lambda kind, turn_id: told.append((kind, turn_id))
    await track.play(AudioOut("turn_a", 1, np.full(1500, 0.5, np.float32)))
    await track.recv()
    assert told == [("started", "turn_a")], "the first frame of its audio starts a reply"
    await track.recv()
    await track.recv()
    assert told == [("started", "turn_a")], "a gap while the synthesis catches up stops nothing"
    await track.play(AudioOut("turn_a", 1, np.full(1500, 0.5, np.float32)))
    track.finish("turn_a")  # its response is done while its audio is still queued
    await track.recv()
    assert told == [("started", "turn_a")]
    await track.recv()
    assert told[-1] == ("stopped", "turn_a"), "stopped with its last frame"

    await track.play(AudioOut("turn_b", 2, np.full(960, 0.5, np.float32)))
    await track.recv()
    track.finish("turn_b")  # done after its audio had all left
    assert told[-2:] == [("started", "turn_b"), ("stopped", "turn_b")]
    track.finish("turn_z")  # a response that had no audio
    await track.play(AudioOut("turn_c", 3, np.full(RATE, 0.5, np.float32)))
    await track.recv()
    track.clear()  # barge-in: the protocol tells the client output_audio_buffer.cleared, not stopped
    track.finish("turn_c")
    await track.play(AudioOut("turn_d", 4, np.full(100, 0.5, np.float32)))
    await track.recv()
    assert told[4:] == [("started", "turn_c"), ("started", "turn_d")]


async def test_a_new_reply_stops_the_one_before() -> None:
    track, told = ReplyTrack(), []
    track.on_playback = lambda kind, turn_id: told.append((kind, turn_id))
    await track.play(AudioOut("turn_a", 1, np.full(500, 0.5, np.float32)))
    await track.play(AudioOut("turn_b", 2, np.full(500, 0.5, np.float32)))
    await track.recv()
    assert told == [("started", "turn_a"), ("stopped", "turn_a"), ("started", "turn_b")]


async def test_the_reply_leaves_as_opus_packets_one_per_frame_as_each_is_due() -> None:
    source = ReplyTrack()
    track = OpusTrack(source)
    await source.play(AudioOut("turn_a", 1, sine(0.2)))
    started = time.monotonic()
    packets = [await track.recv() for _ in range(15)]
    assert 0.25 < time.monotonic() - started < 0.5  # paced by the reply track, not bunched: 14 x 20 ms
    assert [p.pts for p in packets] == [i * FRAME_SAMPLES for i in range(15)]
    assert all(p.time_base == Fraction(1, RATE) for p in packets)
    decoder = OpusDecoder()
    heard = np.concatenate([f.to_ndarray().reshape(-1, 2)[:, 0] for p in packets
                            for f in decoder.decode(JitterFrame(bytes(p), p.pts))]).astype(np.float32) / 32767
    assert rms_dbfs(heard[1_000:9_000]) > -15 and rms_dbfs(heard[11_000:]) < -60  # the tone, then silence
    track.stop()
    assert source.readyState == "ended"
    with pytest.raises(MediaStreamError):
        await source.recv()


def released(buffer, sequence_numbers: list[int]) -> list[bytes | None]:
    """What the jitter buffer releases as each 20 ms packet (payload: its number) comes."""
    out = []
    for number in sequence_numbers:
        packet = RtpPacket(sequence_number=number, timestamp=FRAME_SAMPLES * number)
        vars(packet)["_data"] = bytes([number])  # as aiortc's receiver sets the depayloaded frame
        frame = buffer.add(packet)[1]
        out.append(None if frame is None else frame.data)
    return out


async def test_the_microphone_leaves_the_jitter_buffer_one_packet_later_not_four(loopback_only) -> None:
    pc = RTCPeerConnection()
    receiver = pc.addTransceiver("audio").receiver
    assert released(vars(receiver)["_RTCRtpReceiver__jitter_buffer"], [0, 1, 2, 3, 4, 5]) == [None] * 4 + [b"\x00", b"\x01"]
    assert prompt_audio(receiver)
    assert released(vars(receiver)["_RTCRtpReceiver__jitter_buffer"], [0, 1, 2, 3]) == [None, b"\x00", b"\x01", b"\x02"]
    assert not prompt_audio(pc.addTransceiver("video").receiver)  # video keeps aiortc's own buffer
    await pc.close()
    call = WebRtcCall(quick_models())
    answer = await call.answer(await Peer().offer())
    audio = next(t for t in call.pc.getTransceivers() if t.kind == "audio")
    assert released(vars(audio.receiver)["_RTCRtpReceiver__jitter_buffer"], [7, 8]) == [None, b"\x07"]
    assert audio_codec(answer) == "audio/opus" and isinstance(audio.sender.track, OpusTrack)  # encoded as it leaves
    await call.close()


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
    assert candidate_addresses(f"v=0\r\n\r\n{lan}\r\n{mdns}\r\n") == ["192.0.2.7", "0c0ffee0-1234.local"]
    assert candidate_addresses("v=0\r\na=ice-ufrag:x\r\n") == []
    ended = f"v=0\r\n{lan}\r\na=end-of-candidates\r\n"
    assert awaiting_candidates(ended) == ended
    assert awaiting_candidates("v=0\r\na=end-of-candidates\r\na=mid:0\r\n") == "v=0\r\na=mid:0\r\n", "none yet: more to come"


def test_the_direction_of_an_offers_audio() -> None:
    section = "m={kind} 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n"
    head = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
    assert audio_direction(head + section.format(kind="audio")) == "sendrecv"
    assert audio_direction(head + section.format(kind="audio") + "a=recvonly\r\n") == "recvonly"
    assert audio_direction(head + "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n") is None


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
    """An aiortc client: a microphone track it can speak into, the reply it hears, the events it gets (each with the
    time it came). ``audio``: the direction of its audio (``sendrecv``: a microphone in a quiet room), None for none."""

    def __init__(self, audio: str | None = "sendrecv") -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.microphone = ReplyTrack()  # paced 48 kHz frames, silence when idle: a microphone in a quiet room
        if audio == "sendrecv":
            self.pc.addTrack(self.microphone)
        elif audio is not None:
            self.pc.addTransceiver("audio", direction=audio)
        self.channel = self.pc.createDataChannel("oai-events")
        self.events: list[dict] = []
        self.times: list[float] = []
        self.heard: list[np.ndarray] = []
        self.channel.on("message", self._event)
        self.pc.on("track", lambda track: asyncio.ensure_future(self._listen(track)))
        self._unsent_offer: RTCSessionDescription | None = None

    def _event(self, message: str) -> None:
        self.events.append(json.loads(message))
        self.times.append(time.monotonic())

    async def offer(self, *, gathered: bool = True) -> str:
        """The offer, with every candidate; or as OpenAI's browser examples send it, before gathering (none)."""
        offer = await self.pc.createOffer()
        if not gathered:
            self._unsent_offer = offer
            return offer.sdp
        await gather_with_loopback(self.pc)
        await self.pc.setLocalDescription(offer)
        return self.pc.localDescription.sdp

    async def accept(self, answer: str) -> None:
        """Take the answer (gathering now if the offer went out before)."""
        if self._unsent_offer is not None:
            await gather_with_loopback(self.pc)
            await self.pc.setLocalDescription(self._unsent_offer)
        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))

    def send(self, event: dict) -> None:
        self.channel.send(json.dumps(event))

    async def connected(self, timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout):
            while self.pc.connectionState != "connected" or self.channel.readyState != "open":
                await asyncio.sleep(0.05)

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

    def when(self, kind: str) -> float:
        """When the first event of ``kind`` came (monotonic clock)."""
        return next(t for e, t in zip(self.events, self.times, strict=True) if e["type"] == kind)


def calls_url(server: RealtimeServer) -> str:
    return f"http://127.0.0.1:{server.port}/v1/realtime/calls"


async def drained(server: RealtimeServer) -> None:
    async with asyncio.timeout(10):
        while server.connections:
            await asyncio.sleep(0.05)


# ---- the call routes and whole calls on fake models (a reply is a tone, a word per 0.25 s) -----------------------------

SDP = {"Content-Type": "application/sdp"}
SERVER_EVENT = pydantic.TypeAdapter(RealtimeServerEvent)


class ToneTts:
    """Speaks each word as 0.25 s of a 440 Hz tone at 24 kHz (Opus drops the fakes' constant level: it is DC)."""

    sample_rate = 24_000

    async def stream(self, text: str, *, trim_lead: bool = True):
        for _ in text.split():
            await asyncio.sleep(0)
            yield sine(0.25, self.sample_rate, 0.3)


def quick_models() -> Models:
    return dataclasses.replace(fake_models()[0], tts=ToneTts())


@pytest.fixture
async def quick_server(loopback_only):
    options = ServerOptions(port=0, api_key=KEY, allowed_origins=(PAGE_ORIGIN,), web_root=None)
    running = await RealtimeServer(quick_models(), options).start()
    yield running
    await running.stop()


async def test_cross_origin_calls_follow_the_allowed_origins(quick_server) -> None:
    preflight = {"Origin": PAGE_ORIGIN, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}
    url = calls_url(quick_server)
    peer = Peer()
    async with ClientSession() as http:
        for path in (url, f"{url}/sess_any/hangup"):
            async with http.options(path, headers=preflight) as response:
                assert response.status == 204
                assert response.headers["Access-Control-Allow-Origin"] == PAGE_ORIGIN
                assert "POST" in response.headers["Access-Control-Allow-Methods"]
                assert response.headers["Access-Control-Allow-Headers"] == "authorization,content-type"
                assert "Origin" in response.headers.getall("Vary")
        async with http.options(url, headers={**preflight, "Origin": "http://evil.example"}) as response:
            assert response.status == 403 and "Access-Control-Allow-Origin" not in response.headers
        async with http.post(url, data="not an offer", headers={**SDP, **AUTH, "Origin": PAGE_ORIGIN}) as response:
            assert response.status == 400, "the page can read why"
            assert response.headers["Access-Control-Allow-Origin"] == PAGE_ORIGIN
        async with http.post(url, data=await peer.offer(), headers={**SDP, **AUTH, "Origin": PAGE_ORIGIN}) as response:
            assert response.status == 201
            assert response.headers["Access-Control-Allow-Origin"] == PAGE_ORIGIN
            assert response.headers["Access-Control-Expose-Headers"] == "Location", "the page can read the call id"
            location = response.headers["Location"]
        async with http.post(f"http://127.0.0.1:{quick_server.port}{location}/hangup", headers={**AUTH, "Origin": PAGE_ORIGIN}) as response:
            assert response.status == 200 and response.headers["Access-Control-Allow-Origin"] == PAGE_ORIGIN
        for origins, allowed in (((), None), (("*",), "*")):
            other = await RealtimeServer(quick_models(), ServerOptions(port=0, allowed_origins=origins, web_root=None)).start()
            try:
                async with http.options(calls_url(other), headers=preflight) as response:
                    assert response.status == (403 if allowed is None else 204)
                    assert response.headers.get("Access-Control-Allow-Origin") == allowed
                async with http.post(calls_url(other), data="v=0", headers={**SDP, "Origin": PAGE_ORIGIN}) as response:
                    assert response.status == 400 and response.headers.get("Access-Control-Allow-Origin") == allowed
            finally:
                await other.stop()
    await peer.pc.close()
    assert not quick_server.connections


def without_candidates(sdp: str) -> str:
    return "".join(line for line in sdp.splitlines(keepends=True) if not line.startswith("a=candidate:"))


@pytest.mark.parametrize("gathered", [False, True], ids=["sent-before-gathering", "candidates-stripped"])
async def test_an_offer_without_candidates_connects_and_the_call_hangs_up(quick_server, gathered) -> None:
    """OpenAI's browser examples post the offer at once: it holds no candidate, and the answer must still connect. A
    client that strips the candidates of a gathered offer leaves its end-of-candidates mark: the same must hold."""
    peer = Peer()
    offer = without_candidates(await peer.offer(gathered=gathered))
    assert not candidate_addresses(offer) and ("a=end-of-candidates" in offer) == gathered
    async with ClientSession() as http:
        async with http.post(calls_url(quick_server), data=offer, headers={**SDP, **AUTH}) as response:
            assert response.status == 201, await response.text()
            location, answer = response.headers["Location"], await response.text()
        call_id = location.rsplit("/", 1)[-1]
        assert location == f"/v1/realtime/calls/{call_id}"
        assert offers_loopback(answer), "an offer from this machine with no candidate gets a loopback one"
        await peer.accept(answer)
        await peer.connected()
        assert (await peer.until("session.created", 10))["session"]["id"] == call_id
        hangup = f"{calls_url(quick_server)}/{call_id}/hangup"
        async with http.post(hangup) as response:
            assert response.status == 401
        async with http.post(hangup, headers=AUTH) as response:
            assert response.status == 200
        assert not quick_server.connections, "the hang-up answers once the session is freed"
        async with http.post(hangup, headers=AUTH) as response:
            assert response.status == 404 and (await response.json())["error"]["code"] == "call_not_found"
    async with asyncio.timeout(10):
        while peer.channel.readyState != "closed":  # the browser learns that the call is over
            await asyncio.sleep(0.05)
    await peer.pc.close()


async def test_a_listen_only_call_hears_the_agent_and_is_told_when_its_audio_plays(quick_server) -> None:
    peer = Peer("recvonly")
    async with ClientSession() as http, http.post(calls_url(quick_server), data=await peer.offer(), headers={**SDP, **AUTH}) as response:
        assert response.status == 201, await response.text()
        await peer.accept(await response.text())
    await peer.connected()
    peer.send({"type": "conversation.item.create",
               "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hello there."}]}})
    peer.send({"type": "response.create"})
    stopped = await peer.until("output_audio_buffer.stopped", 20)
    started = await peer.until("output_audio_buffer.started")
    for event in (started, stopped):
        SERVER_EVENT.validate_python(event)  # the reference's shapes
    response_id = (await peer.until("response.created"))["response"]["id"]
    assert started["response_id"] == stopped["response_id"] == response_id
    kinds = [e["type"] for e in peer.events]
    assert kinds.index("response.content_part.added") < kinds.index("output_audio_buffer.started")
    assert kinds.index("response.done") < kinds.index("output_audio_buffer.stopped")
    assert "error" not in kinds
    playing_s = peer.when("output_audio_buffer.stopped") - peer.when("output_audio_buffer.started")
    # 'I am not sure.' is 1 s of tone; a sender that fell behind catches up by up to MAX_LAG_S.
    assert 1.0 - MAX_LAG_S - 0.1 < playing_s < 2.5, "stopped when its last frame left"
    assert rms_dbfs(np.concatenate(peer.heard)) > -35, "the listener heard the reply"
    await peer.pc.close()
    await drained(quick_server)


async def test_offers_in_which_the_agent_could_not_be_heard_are_refused(quick_server) -> None:
    async with ClientSession() as http:
        for audio, said in (("inactive", "inactive"), ("sendonly", "sendonly"), (None, "no audio")):
            peer = Peer(audio)
            async with http.post(calls_url(quick_server), data=await peer.offer(), headers={**SDP, **AUTH}) as response:
                assert response.status == 400
                error = (await response.json())["error"]
            assert error["type"] == "invalid_request_error" and error["code"] == "invalid_offer"
            assert said in error["message"], error
            await peer.pc.close()
    assert not quick_server.connections


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
    # The reply plays in real time (response.done came when it was written): the track says when its last frame left.
    stopped = await peer.until("output_audio_buffer.stopped", 60)
    assert stopped["response_id"] == (await peer.until("response.done"))["response"]["id"]
    await asyncio.sleep(0.3)  # the last frames' way to the peer
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
