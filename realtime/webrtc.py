"""WebRTC transport (aiortc): a browser talks to a session over one peer connection.

- Microphone: the remote audio track (aiortc decodes Opus to stereo 48 kHz s16 frames) is down-mixed,
  resampled once to 16 kHz (:class:`InboundAudio`) and pushed into the session. aiortc's audio jitter
  buffer holds each packet until four more have come (80 ms of 20 ms packets, every one of them, the end of
  speech included); a call's buffer releases a packet as soon as the next one has come (:func:`prompt_audio`).
- Speaker: :class:`ReplyTrack` sends the reply as 20 ms 48 kHz frames paced in real time (silence when
  idle). When the call sends Opus (as browsers choose), each frame is encoded by aiortc's own Opus encoder
  as it leaves (:class:`OpusTrack`): aiortc's sender would encode it in the event loop's default executor,
  behind the models' work, and frames that leave late make the browser's jitter buffer grow (it then holds
  every reply longer). The session speaks at 48 kHz, so
  speech is resampled once, from the synthesiser's rate; an interruption flushes queued audio at once, and
  audio of an interrupted reply is never sent.
- Events: the ``oai-events`` data channel (OpenAI's name; the browser opens it) carries the protocol
  events both ways through :class:`~realtime.connection.RealtimeConnection`, except audio deltas. The
  track itself adds what only it knows (as OpenAI does on WebRTC): ``output_audio_buffer.started`` when
  the first frame of a response's audio leaves, ``output_audio_buffer.stopped`` when its last frame has
  left and the response is done (after ``response.done``). An interrupted response gets the protocol's
  ``output_audio_buffer.cleared`` instead of ``stopped``.
- Directions: the offer's audio must let the browser hear the agent: ``sendrecv`` (talk), or ``recvonly``
  (listen; the agent is then driven by data channel events). An offer without audio, or whose audio is
  ``sendonly`` or ``inactive``, is refused (HTTP 400).
- ICE: no STUN or TURN server unless configured (aiortc's default is a public STUN host). The answer
  holds every server candidate (no trickle ICE); the browser's own candidates need not be in the offer
  (OpenAI's examples post it before gathering; an offer whose candidates were stripped is taken as one
  still gathering): its checks reveal its address (peer-reflexive candidates). aioice never gathers
  127.0.0.1, so a browser on this machine with only loopback to use (inside a network namespace that
  has nothing but ``lo``, or a machine with no network) could not connect: a 127.0.0.1 host candidate
  is added to the answer when the offer holds a loopback candidate, or holds none and came from this
  machine. A browser on another machine does neither, so deployments are unaffected.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
from collections import deque
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any
from urllib.parse import unquote

import av
import numpy as np
from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceGatherer,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCSessionDescription,
)
from aiortc.codecs.opus import OpusEncoder
from aiortc.jitterbuffer import JitterBuffer
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import SessionDescription

from audio.errors import AgentError
from audio.samples import PIPELINE_RATE, StreamResampler, downmix, to_pcm16
from realtime.connection import RealtimeConnection
from realtime.events import AudioOut
from realtime.latency import now
from realtime.models import Models
from realtime.session import SessionConfig
from realtime.session.output import Playback, PlayedCounter

log = logging.getLogger(__name__)

CHANNEL = "oai-events"
RATE = 48_000
"""The rate the session speaks at over WebRTC (Opus' native rate)."""
FRAME_SAMPLES = RATE // 50
"""20 ms, one Opus packet."""
MAX_LAG_S = 0.2
"""A sender this far behind real time (a stalled event loop) starts again from now instead of bursting."""
LOOPBACK = "127.0.0.1"
MAX_UNSENT = 256
"""Server events kept for a data channel that has not opened yet (a client may never open one)."""
RESPONSE_PREFIX = "resp_"
"""A reply's response id is its turn id behind this prefix (as the protocol names responses)."""
AUDIO_PREFETCH = 0
"""Packets aiortc's audio jitter buffer waits for beyond the one it releases (aiortc's own default: 4, i.e. 80 ms):
0 releases a packet once the next has come (20 ms). Reordering is rare on a browser's path and one packet late is
no worse to the VAD than one lost."""
HEARD_DIRECTIONS = ("sendrecv", "recvonly")
"""Directions of the offer's audio (the browser's view) in which the browser hears the agent."""

PlaybackListener = Callable[[str, str], None]
"""Told ``(kind, turn_id)`` when the reply track starts (``"started"``) or stops (``"stopped"``) playing a reply's audio."""


class SignallingError(AgentError, ValueError):
    """An offer that cannot be answered; ``status`` is the HTTP status that says so."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def parse_ice_server(url: str) -> RTCIceServer:
    """``stun:HOST:PORT``, or ``turn:USER:PASSWORD@HOST:PORT`` (credentials before ``@``, percent-encoded)."""
    scheme, _, rest = url.partition(":")
    if scheme not in ("stun", "stuns", "turn", "turns") or not rest:
        raise ValueError(f"not a STUN or TURN server: {url!r} (expected stun:HOST:PORT or turn:USER:PASSWORD@HOST:PORT)")
    credentials, at, address = rest.rpartition("@")
    if not at:
        return RTCIceServer(urls=url)
    username, _, password = credentials.partition(":")
    return RTCIceServer(urls=f"{scheme}:{address}", username=unquote(username), credential=unquote(password))


class InboundAudio:
    """Remote audio frames (any layout and rate) to the pipeline's 16 kHz float32 mono, as a stream."""

    def __init__(self) -> None:
        self._resampler: StreamResampler | None = None

    def convert(self, frame: av.AudioFrame) -> np.ndarray:
        if self._resampler is None or self._resampler.from_rate != frame.sample_rate:
            self._resampler = StreamResampler(frame.sample_rate, PIPELINE_RATE)
        return self._resampler.process(downmix(frame))


class ReplyTrack(MediaStreamTrack):
    """The outgoing audio track: queued reply audio in 20 ms 48 kHz frames, paced in real time.

    It is the session's :class:`~realtime.session.output.AudioSink`: :meth:`play` queues a session's
    ``AudioOut`` (at :attr:`rate`), :meth:`clear` drops everything queued and reports how many samples of
    which reply were handed to the sender (exactly what the peer got), and each frame skips audio that
    :attr:`is_stale` says belongs to an interrupted reply, so not one packet of it leaves late.

    :attr:`on_playback` is told when a reply's first frame leaves (``started``) and when its last frame has
    left after :meth:`finish` said no more of its audio will come (``stopped``); a gap while the synthesis
    catches up stops nothing. :meth:`clear` ends the reply without ``stopped``.
    """

    kind = "audio"
    rate = RATE

    def __init__(self) -> None:
        super().__init__()
        self.is_stale: Callable[[AudioOut], bool] = lambda item: False
        self.first_packets: dict[str, float] = {}
        """Turn id -> when the first frame of its audio was handed to the sender (monotonic clock)."""
        self.on_playback: PlaybackListener = lambda kind, turn_id: None
        self._playing: str | None = None
        """The turn whose audio is playing (told ``started``, not yet ``stopped``)."""
        self._finished: set[str] = set()
        """Turns, queued or playing, whose audio is all queued."""
        self._queue: deque[AudioOut] = deque()
        self._offset = 0
        """Samples of ``_queue[0]`` already sent."""
        self._start: float | None = None
        self._pts = 0
        self._played = PlayedCounter()

    async def play(self, item: AudioOut) -> None:
        self._queue.append(item)

    def clear(self) -> Playback:
        self._queue.clear()
        self._offset = 0
        self._playing = None
        self._finished.clear()
        return self._played.report()

    def finish(self, turn_id: str) -> None:
        """No more audio of ``turn_id`` will be queued (its response is done): ``stopped`` follows its last frame."""
        if turn_id == self._playing or any(item.turn_id == turn_id for item in self._queue):
            self._finished.add(turn_id)
            self._stop_if_drained()

    @property
    def playing(self) -> bool:
        return bool(self._queue)

    async def flush(self) -> None:
        while self._queue and self.readyState == "live":
            await asyncio.sleep(FRAME_SAMPLES / RATE)

    @property
    def queued_samples(self) -> int:
        return sum(len(item.samples) for item in self._queue) - self._offset

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        await self._pace()
        pcm = np.frombuffer(to_pcm16(self._next_frame()), "<i2").reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = Fraction(1, RATE)
        self._pts += FRAME_SAMPLES
        return frame

    async def _pace(self) -> None:
        """Wait until this frame is due: frame n leaves n x 20 ms after the first."""
        if self._start is None:
            self._start = now()
            return
        delay = self._start + self._pts / RATE - now()
        if delay < -MAX_LAG_S:
            self._start -= delay
        elif delay > 0:
            await asyncio.sleep(delay)

    def _next_frame(self) -> np.ndarray:
        """The next 20 ms: queued audio that is not stale, silence where there is none."""
        frame = np.zeros(FRAME_SAMPLES, np.float32)
        filled = 0
        while filled < FRAME_SAMPLES and self._queue:
            item = self._queue[0]
            if self.is_stale(item):
                self._drop_first()
                continue
            piece = item.samples[self._offset : self._offset + FRAME_SAMPLES - filled]
            if len(piece):
                self._start_playing(item.turn_id)
                self._played.add(item.generation, len(piece))
            frame[filled : filled + len(piece)] = piece
            filled += len(piece)
            self._offset += len(piece)
            if self._offset >= len(item.samples):
                self._drop_first()
        self._stop_if_drained()
        return frame

    def _drop_first(self) -> None:
        self._queue.popleft()
        self._offset = 0

    def _start_playing(self, turn_id: str) -> None:
        """A frame of ``turn_id``'s audio leaves now: the first one starts it (and stops the reply before, if any)."""
        if turn_id == self._playing:
            return
        if self._playing is not None:
            self._stop()
        self.first_packets.setdefault(turn_id, now())
        self._playing = turn_id
        self.on_playback("started", turn_id)

    def _stop_if_drained(self) -> None:
        """Stop the playing reply once its audio is all queued and none of it is left (a reply's audio is queued in one run)."""
        turn_id = self._playing
        if turn_id in self._finished and not (self._queue and self._queue[0].turn_id == turn_id):
            self._stop()

    def _stop(self) -> None:
        turn_id = self._playing
        assert turn_id is not None, "no reply is playing"
        self._playing = None
        self._finished.discard(turn_id)
        self.on_playback("stopped", turn_id)


def prompt_audio(receiver: RTCRtpReceiver, prefetch: int = AUDIO_PREFETCH) -> bool:
    """Make ``receiver``'s audio jitter buffer (aiortc's :class:`JitterBuffer`, of the same capacity) release each
    packet after ``prefetch`` more have come, before any has; False where this aiortc keeps its buffer elsewhere
    (it is set when the receiver is made, with no setting to change it: hence its private name)."""
    name = "_RTCRtpReceiver__jitter_buffer"
    buffer = getattr(receiver, name, None)
    if not isinstance(buffer, JitterBuffer) or getattr(buffer, "_is_video", True):
        return False
    setattr(receiver, name, JitterBuffer(capacity=buffer.capacity, prefetch=prefetch))
    return True


class OpusTrack(MediaStreamTrack):
    """``source``'s audio frames as Opus packets, encoded by aiortc's own encoder (its settings) the moment each
    frame is due. aiortc's sender packs such packets as they are; given frames, it would encode them in the
    event loop's default executor, shared with the models, where a frame can wait tens of ms (the jitter that
    makes a browser's jitter buffer grow). One encode of 20 ms takes well under a millisecond."""

    kind = "audio"

    def __init__(self, source: ReplyTrack) -> None:
        super().__init__()
        self.source = source
        self._encoder = OpusEncoder()
        self._packets: deque[av.Packet] = deque()

    async def recv(self) -> av.Packet:
        while not self._packets:
            payloads, timestamp = self._encoder.encode(await self.source.recv())
            for index, payload in enumerate(payloads):
                packet = av.Packet(payload)
                packet.pts = timestamp + index * FRAME_SAMPLES
                packet.time_base = Fraction(1, RATE)
                self._packets.append(packet)
        return self._packets.popleft()

    def stop(self) -> None:
        super().stop()
        self.source.stop()


def _ice_gatherers(pc: RTCPeerConnection) -> list[RTCIceGatherer]:
    transports = [t.sender.transport for t in pc.getTransceivers()] + ([pc.sctp.transport] if pc.sctp else [])
    unique = {id(t.transport.iceGatherer): t.transport.iceGatherer for t in transports}
    return list(unique.values())


async def gather_with_loopback(pc: RTCPeerConnection) -> None:
    """Gather ``pc``'s ICE candidates now (before its local description is set), plus a 127.0.0.1 host
    candidate, which aioice skips. aiortc offers no public way to add a local candidate, hence the
    gatherer's aioice connection is used directly."""
    for gatherer in _ice_gatherers(pc):
        await gatherer.gather()
        ice = gatherer._connection  # noqa: SLF001 - no public way to add a candidate (see above)
        if not any(candidate.host == LOOPBACK for candidate in ice.local_candidates):
            candidates = await ice.get_component_candidates(component=1, addresses=[LOOPBACK])
            ice._local_candidates += candidates  # noqa: SLF001 - as above


def candidate_addresses(sdp: str) -> list[str]:
    """The connection addresses of a session description's ICE candidates (IP addresses or mDNS names)."""
    return [fields[4] for fields in (line.split() for line in sdp.splitlines()) if len(fields) > 4 and fields[0].startswith("a=candidate:")]


def offers_loopback(sdp: str) -> bool:
    """Whether a session description holds a loopback ICE candidate."""
    for address in candidate_addresses(sdp):
        with contextlib.suppress(ValueError):  # an mDNS name (*.local) is no address
            if ipaddress.ip_address(address).is_loopback:
                return True
    return False


def awaiting_candidates(sdp: str) -> str:
    """``sdp`` without its end-of-candidates marks when it holds no candidate (a client that stripped them). The peer's
    checks are then the only way to learn its address, and aioice fails at once on an ended, empty candidate list."""
    if candidate_addresses(sdp):
        return sdp
    return "".join(line for line in sdp.splitlines(keepends=True) if not line.startswith("a=end-of-candidates"))


def audio_direction(sdp: str) -> str | None:
    """The direction of a session description's first audio section, from its sender's view (None: no audio)."""
    audio = next((media for media in SessionDescription.parse(sdp).media if media.kind == "audio"), None)
    return None if audio is None else audio.direction or "sendrecv"


def audio_codec(sdp: str) -> str | None:
    """The MIME type (lower case) of the codec a session description's first audio section sends with."""
    audio = next((media for media in SessionDescription.parse(sdp).media if media.kind == "audio"), None)
    return None if audio is None or not audio.rtp.codecs else audio.rtp.codecs[0].mimeType.lower()


class WebRtcCall:
    """One browser call: a peer connection bound to a :class:`RealtimeConnection`.

    :meth:`answer` the offer, then run :meth:`serve` inside ``async with call.connection`` for the life
    of the call, and :meth:`close` at the end.
    """

    def __init__(
        self, models: Models, *, config: SessionConfig | None = None, beta: bool = False, ice_servers: Sequence[RTCIceServer] = ()
    ) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=list(ice_servers)))
        self.track = ReplyTrack()
        self.connection = RealtimeConnection(models, self._send, config=config, beta=beta, audio_sink=self.track)
        self.track.is_stale = self.connection.session.is_stale
        self.track.on_playback = self._on_playback
        self._remote: MediaStreamTrack | None = None
        """The browser's microphone (None: the browser only listens)."""
        self._own_events = 0
        """Events this call has made itself (not the protocol), for their ids."""
        self._channel: RTCDataChannel | None = None
        self._unsent: list[str] = []
        self._messages: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        """Client events in order; None once the call is over."""
        self.pc.on("datachannel", self._on_channel)
        self.pc.on("connectionstatechange", self._on_state)

    @property
    def id(self) -> str:
        return self.connection.id

    async def answer(self, offer: str, *, local_peer: bool = False) -> str:
        """The SDP answer to the browser's offer (every candidate included: no trickle ICE). ``local_peer``: the offer
        came from this machine, so a 127.0.0.1 candidate is added if the offer holds no candidate (see the module)."""
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=awaiting_candidates(offer), type="offer"))
        except Exception as exc:  # noqa: BLE001 - aiortc's parser and checks raise assorted errors for a bad offer
            raise SignallingError(f"not a usable SDP offer: {exc}") from exc
        audio = next((t for t in self.pc.getTransceivers() if t.kind == "audio"), None)
        direction = audio_direction(offer)
        if audio is None or direction is None:
            raise SignallingError("the offer has no audio section (m=audio): a call needs audio the browser hears")
        if direction not in HEARD_DIRECTIONS:
            raise SignallingError(f"the offer's audio is {direction}, so the agent could not be heard: "
                                  "offer sendrecv to talk, or recvonly to listen")
        self._remote = audio.receiver.track
        if not prompt_audio(audio.receiver):
            log.warning("call %s: aiortc's audio jitter buffer not found; the microphone lags 80 ms", self.id)
        sender = self.pc.addTrack(self.track)
        if offers_loopback(offer) or (local_peer and not candidate_addresses(offer)):
            await gather_with_loopback(self.pc)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        if audio_codec(self.pc.localDescription.sdp) == "audio/opus":  # (another codec: aiortc encodes it)
            sender.replaceTrack(OpusTrack(self.track))
        return self.pc.localDescription.sdp

    async def serve(self, session: dict[str, Any] | None = None, connect_timeout_s: float = 30.0) -> None:
        """Carry the call until the peer hangs up or goes away (or never connects); ``session`` is applied
        first, as a ``session.update``."""
        deadline = asyncio.get_running_loop().call_later(connect_timeout_s, self._end_unless_connected)
        hearing = None if self._remote is None else asyncio.create_task(self._hear(self._remote), name=f"{self.id}:microphone")
        try:
            if session is not None:
                await self.connection.handle(json.dumps({"type": "session.update", "session": session}))
            while (message := await self._messages.get()) is not None:
                await self.connection.handle(message)
        finally:
            deadline.cancel()
            if hearing is not None:
                hearing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await hearing

    def end(self) -> None:
        """End the call (a hang-up): :meth:`serve` returns."""
        self._messages.put_nowait(None)

    async def close(self) -> None:
        self.end()
        self.track.stop()
        await self.pc.close()

    async def _hear(self, remote: MediaStreamTrack) -> None:
        """The remote audio into the session until the track ends; a failure ends the call."""
        inbound = InboundAudio()
        try:
            while True:
                frame = await remote.recv()
                if not isinstance(frame, av.AudioFrame):  # an audio track yields audio frames; anything else is skipped
                    continue
                samples = inbound.convert(frame)
                if len(samples):  # the resampler releases its output in blocks
                    await self.connection.session.push_audio(samples)
        except MediaStreamError:
            return
        except Exception:
            log.exception("call %s: the microphone failed", self.id)
            self.end()

    async def _send(self, event: dict[str, Any]) -> None:
        self._deliver(json.dumps(event))
        if event["type"] == "response.done":  # the response's audio is all in the track now (one ordered output queue)
            self.track.finish(event["response"]["id"].removeprefix(RESPONSE_PREFIX))

    def _on_playback(self, kind: str, turn_id: str) -> None:
        """Tell the browser that the track started or stopped playing a response's audio."""
        self._own_events += 1
        event_id = f"event_rtc_{self._own_events:06d}"
        self._deliver(json.dumps({"type": f"output_audio_buffer.{kind}", "event_id": event_id, "response_id": RESPONSE_PREFIX + turn_id}))

    def _deliver(self, message: str) -> None:
        if self._channel is not None and self._channel.readyState == "open":
            self._channel.send(message)
        elif self._channel is None and len(self._unsent) < MAX_UNSENT:
            self._unsent.append(message)  # session.created comes before the browser's channel opens

    def _on_channel(self, channel: RTCDataChannel) -> None:
        if channel.label != CHANNEL or self._channel is not None:
            log.info("call %s: ignoring data channel %r", self.id, channel.label)
            return
        self._channel = channel
        channel.on("message", self._messages.put_nowait)
        channel.on("close", self.end)
        for message in self._unsent:
            channel.send(message)
        self._unsent.clear()

    def _on_state(self) -> None:
        if self.pc.connectionState in ("failed", "closed"):
            self.end()

    def _end_unless_connected(self) -> None:
        if self.pc.connectionState != "connected":
            log.info("call %s: the peer did not connect", self.id)
            self.end()
