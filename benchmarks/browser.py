"""A real browser talking to the page: headless Debian Chromium driven by Playwright, its microphone a WAV.

Everything runs inside a loopback-only network namespace (:func:`in_loopback_namespace`, root only),
server and browser alike, so not one packet can leave the machine. The page records, on its own audio
clock, what its microphone hears and what it plays (:data:`PROBE`), and hands both back with every event
it received, its transcript and a screenshot. The server side is tapped too: each session's input
audio as it arrived, so the first-packet delay can be measured from the true end of speech.

The WAV plays on Chromium's own clock from the moment the microphone opens. What must happen at a point of
the call rather than at a time (talking over a reply once it plays, however late a loaded machine starts
it) is a :class:`Cue`: a second clip the microphone says once events of a type have arrived and the page
has played so many seconds of sound since the first (:data:`MIXER`). The WAV still goes through Chromium's capture and its
audio processing; the cue's clip is mixed in after it, as clean as it was synthesised.

Run one call (the browser tests do, in a namespace); OUT_DIR gets call.json (events, the page's
conversation, delays, server records), speaker.wav and microphone.wav (the page's recording),
reply.wav (what it played after the question, 16 kHz), server-heard-N.wav (each session's input) and
page.png:

    python -m benchmarks.browser QUESTION.wav OUT_DIR [--until EVENT ...] [--phone] [--reasoning 16]
        [--then-say CLIP.wav --after EVENT[#COUNT][:PLAYED_S]]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
from playwright.async_api import Browser, Page, Playwright, ViewportSize, async_playwright

from audio.samples import PIPELINE_RATE, read_audio, resample, to_pcm16, write_wav
from realtime.connection import RealtimeConnection
from realtime.models import Models
from realtime.respond import speech_segments
from realtime.server import RealtimeServer, ServerOptions
from realtime.webrtc import ReplyTrack

CHROMIUM = "/usr/bin/chromium"
DESKTOP: ViewportSize = {"width": 960, "height": 1000}
PHONE: ViewportSize = {"width": 390, "height": 844}

# Records the page's microphone (channel 0) and what it plays (channel 1) on one clock, with the time
# (performance.now) at which each block was recorded, so events can be placed on the recording.
PROBE = """() => new Promise((resolve) => {
  const attach = () => {
    const agent = window.voiceAgent;
    if (!agent.speaker || !agent.microphone) return setTimeout(attach, 20);
    const context = agent.audioContext, merger = context.createChannelMerger(2);
    const recorder = context.createScriptProcessor(1024, 2, 1);
    agent.microphone.connect(merger, 0, 0);
    agent.speaker.connect(merger, 0, 1);
    merger.connect(recorder);
    recorder.connect(context.destination);
    const probe = (window.probe = { rate: context.sampleRate, blocks: [[], []], times: [], origin: performance.timeOrigin });
    recorder.onaudioprocess = (event) => {
      probe.times.push(performance.now());
      for (const c of [0, 1]) probe.blocks[c].push(new Float32Array(event.inputBuffer.getChannelData(c)));
      event.outputBuffer.getChannelData(0).fill(0);
    };
    resolve();
  };
  attach();
})"""

# Run in the page before its own script (with the cue's clip: {rate, pcm: base64 16-bit PCM}): the page's
# microphone becomes the captured one (Chromium's fake device, with the audio processing the page asks for)
# mixed in a WebAudio graph with the clip, which window.cue.say() starts; cue.saidAt is when (performance.now).
MIXER = """(clip) => {
  const devices = navigator.mediaDevices, capture = devices.getUserMedia.bind(devices);
  const cue = (window.cue = { saidAt: null, say: null });
  devices.getUserMedia = async (constraints) => {
    const captured = await capture(constraints);
    const context = new AudioContext(), mixed = context.createMediaStreamDestination();
    context.createMediaStreamSource(captured).connect(mixed);
    const pcm = new Int16Array(Uint8Array.from(atob(clip.pcm), (c) => c.charCodeAt(0)).buffer);
    const buffer = new AudioBuffer({ length: pcm.length, sampleRate: clip.rate });
    buffer.getChannelData(0).set(Float32Array.from(pcm, (x) => x / 32768));
    cue.say = () => {
      const source = new AudioBufferSourceNode(context, { buffer });
      source.connect(mixed);
      source.start();
      cue.saidAt = performance.now();
    };
    return mixed.stream;
  };
}"""

# How many events of this type have arrived, and the seconds of sound the page has played since the first.
PROGRESS = """(type) => {
  const arrived = window.voiceAgent.events.filter((e) => e.event.type === type), p = window.probe;
  let played = 0;
  for (let i = p.times.length - 1; arrived.length && i >= 0 && p.times[i] >= arrived[0].at; i--) {
    if (p.blocks[1][i].some((x) => Math.abs(x) >= 0.01)) played += p.blocks[1][i].length / p.rate;
  }
  return [arrived.length, played];
}"""

COLLECT = """async () => {
  const probe = window.probe;
  const stats = [];
  if (window.voiceAgent.pc && window.voiceAgent.pc.connectionState !== "closed") {
    (await window.voiceAgent.pc.getStats()).forEach((s) => {
      if (["inbound-rtp", "outbound-rtp", "media-playout", "media-source"].includes(s.type)) stats.push(s);
    });
  }
  const pcm = (blocks) => {
    const total = blocks.reduce((n, b) => n + b.length, 0), out = new Int16Array(total);
    let offset = 0;
    for (const block of blocks) for (const x of block) out[offset++] = Math.max(-1, Math.min(1, x)) * 32767;
    const bytes = new Uint8Array(out.buffer);
    let text = "";
    for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(text);
  };
  return {
    rate: probe.rate, block: probe.blocks[0][0]?.length ?? 0, times: probe.times, origin: probe.origin, stats,
    microphone: pcm(probe.blocks[0]), speaker: pcm(probe.blocks[1]),
    events: window.voiceAgent.events, said: window.cue?.saidAt ?? null,
    status: document.getElementById("status-text").textContent,
    turns: [...document.querySelectorAll(".turn")].map((t) => ({
      role: t.classList.contains("user") ? "user" : "agent",
      text: t.querySelector(".text").textContent,
      unheard: t.querySelector(".unheard")?.textContent ?? "",
      reasoning: t.querySelector(".thought")?.textContent ?? "",
      latency: t.querySelector(".delay")?.textContent ?? "",
    })),
  };
}"""


def in_loopback_namespace(argv: list[str]) -> list[str]:
    """``argv`` run in a new network namespace whose only interface is loopback (needs root)."""
    return ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *argv]


def chromium_args(microphone: Path | None, *, allowed: bool = True) -> list[str]:
    """Headless Chromium whose microphone is the WAV ``microphone`` (looped; None: no microphone at all),
    which the page may use without asking (``allowed``; otherwise asking is refused), with no background
    traffic (Playwright gives it a fresh profile)."""
    args = [
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--allow-loopback-in-peer-connection",
    ]
    if allowed:
        args.append("--use-fake-ui-for-media-stream")
    if microphone is not None:
        args += ["--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={microphone}"]
    return args


async def launch(playwright: Playwright, args: list[str]) -> Browser:
    """Debian's Chromium (Playwright never downloads one), with no sound server to find devices on."""
    no_sound_server: dict[str, str | float | bool] = {**os.environ, "PULSE_SERVER": "unix:/nonexistent"}
    return await playwright.chromium.launch(executable_path=CHROMIUM, args=args, env=no_sound_server)


@dataclass
class PageCall:
    """What the page heard, played, received and showed during one call."""

    rate: int
    microphone: np.ndarray
    speaker: np.ndarray
    """float32 mono at ``rate``: what the microphone heard and what the page played, sample-aligned."""
    events: list[dict[str, Any]]
    """Every server event, with ``at_s``: where on the recording it arrived."""
    turns: list[dict[str, str]]
    """The conversation as the page shows it."""
    status: str
    clock: tuple[np.ndarray, np.ndarray] = (np.zeros(0), np.zeros(0))
    """(seconds into the recording, wall-clock seconds): when the page's probe got each block, to place the
    recording on this machine's clock (``time.time``; the page and the server share it)."""
    stats: list[dict[str, Any]] = field(default_factory=list)
    """The page's RTP and playout statistics (``RTCPeerConnection.getStats``) at the end of the call."""
    said_at_s: float | None = None
    """Where on the recording the microphone began saying the :class:`Cue`'s clip (None: no cue, or never)."""

    def first_reply_delay_ms(self) -> float | None:
        """End of the first thing the microphone heard to the first sound the page played after it."""
        _, replies, end = self._reply_segments
        return None if not replies or end is None else round((replies[0][0] - end) * 1000 / PIPELINE_RATE, 1)

    def speech_end_and_first_reply(self) -> tuple[float | None, float | None]:
        """When (wall clock, s) the page's probe got the end of the first speech its microphone heard, and the
        first reply sound the page played after it (the probe's own buffering is in both, so the difference is
        exact, each time late by the same few tens of ms)."""
        _, replies, end = self._reply_segments
        positions, walls = self.clock
        if end is None or not len(positions):
            return None, None
        at = lambda sample: float(np.interp(sample / PIPELINE_RATE, positions, walls))  # noqa: E731
        return at(end), (at(replies[0][0]) if replies else None)

    def stat(self, type_: str, name: str, **match: str) -> float | None:
        """A number from the page's statistics of type ``type_`` (and these fields), the first that has it."""
        for entry in self.stats:
            if entry.get("type") == type_ and all(entry.get(k) == v for k, v in match.items()) and name in entry:
                return float(entry[name])
        return None

    def reply_audio(self) -> np.ndarray:
        """What the page played after that (16 kHz), cut to where it holds sound (long silence makes Whisper
        repeat itself)."""
        played, replies, _ = self._reply_segments
        margin = PIPELINE_RATE // 2
        return played[max(0, replies[0][0] - margin) : replies[-1][1] + margin] if replies else played[:0]

    @functools.cached_property
    def _reply_segments(self) -> tuple[np.ndarray, list[tuple[int, int]], int | None]:
        """The played audio at 16 kHz, where it holds sound after the end of the first speech the microphone
        heard, and that end (in samples; None if it heard none); found once (the detector takes a while over
        a long call on a loaded machine)."""
        spoken = speech_segments(resample(self.microphone, self.rate, PIPELINE_RATE))
        played = resample(self.speaker, self.rate, PIPELINE_RATE)
        if not spoken:
            return played, [], None
        end = spoken[0][1]
        return played, [(start, stop) for start, stop in speech_segments(played) if start > end], end


class CueMissed(RuntimeError):
    """The call never reached the point at which its :class:`Cue` was to be said."""


@dataclass(frozen=True)
class Cue:
    """A clip the microphone says at a point of the call: once ``count`` events of type ``after`` have arrived
    and the page has played ``played_s`` seconds of sound since the first; :class:`CueMissed` if that has not
    happened ``within_s`` seconds after the call started."""

    clip: np.ndarray
    """float32 mono at ``rate``."""
    rate: int
    after: str
    count: int = 1
    played_s: float = 0.0
    within_s: float = 120.0

    @classmethod
    def parse(cls, wav: Path, after: str) -> Cue:
        """The cue for ``--then-say WAV --after EVENT[#COUNT][:PLAYED_S]``."""
        spec, _, played = after.partition(":")
        event, _, count = spec.partition("#")
        return cls(read_audio(wav, PIPELINE_RATE), PIPELINE_RATE, event, int(count or 1), float(played or 0.0))

    def init_script(self) -> str:
        """:data:`MIXER` with this clip, for ``Page.add_init_script``."""
        pcm = base64.b64encode(to_pcm16(self.clip)).decode()
        return f"({MIXER})({json.dumps({'rate': self.rate, 'pcm': pcm})})"

    async def say_when_due(self, page: Page) -> None:
        """Wait until the call reaches the cue's point, then say its clip."""
        started = time.monotonic()
        while True:
            arrived, played = await page.evaluate(PROGRESS, self.after)
            if arrived >= self.count and played >= self.played_s:
                break
            if time.monotonic() - started > self.within_s:
                raise CueMissed(await self._missed(page, arrived, played))
            await asyncio.sleep(0.05)
        await page.evaluate("window.cue.say()")

    async def _missed(self, page: Page, arrived: int, played: float) -> str:
        """Why the call did not reach the cue's point, and what it got instead."""
        within = f"within {self.within_s:.0f} s of the call starting"
        if arrived:
            why = (f"the reply never got far enough: {arrived} of {self.count} {self.after} and {played:.1f} of "
                   f"{self.played_s:.1f} s of sound played {within}")
        else:
            why = f"the reply never started: no {self.after} {within}"
        types = [e["event"]["type"] for e in await page.evaluate("window.voiceAgent.events")]
        return f"{why}, so the clip was never said (events: {', '.join(dict.fromkeys(types))})"


@dataclass
class TappedSession:
    """A server session and its input audio (16 kHz) as it arrived."""

    connection: RealtimeConnection
    heard: list[np.ndarray] = field(default_factory=list)

    def first_packet_delays(self) -> list[dict[str, Any]]:
        """Each reply's latency record, measured from the true end of speech (found in the input as
        ``realtime respond`` finds it) to its first RTP packet and to each stage."""
        session = self.connection.session
        audio = np.concatenate(self.heard) if self.heard else np.zeros(0, np.float32)
        ends = [t for t in (session.sample_time(end) for _, end in speech_segments(audio)) if t is not None]
        sink = self.connection.audio_sink
        sent = sink.first_packets if isinstance(sink, ReplyTrack) else {}
        records = []
        for record in session.records:
            vad_end = record.stamps.get("speech_end")
            if vad_end is not None and ends:
                record.true_speech_end = min(ends, key=lambda t: abs(t - vad_end))
            first = sent.get(record.turn_id)
            reference = record.reference
            delay = None if first is None or reference is None else round((first - reference) * 1000, 1)
            records.append({**record.as_dict(), "first_rtp_packet_ms": delay})
        return records

    def wall_clock_stamps(self, encodes: EncoderTrace | None = None) -> list[dict[str, float]]:
        """Each reply's stages on the wall clock (``time.time``, s), after :meth:`first_packet_delays` found
        the true end of speech: ``true_speech_end`` (it reached the session), the session's stages,
        ``first_frame`` (the track handed the reply's first frame to aiortc's sender) and, from ``encodes``,
        ``first_packet`` (the sender's Opus encoder returned that frame's packet, sent at once)."""
        to_wall = time.time() - time.monotonic()
        sink = self.connection.audio_sink
        sent = sink.first_packets if isinstance(sink, ReplyTrack) else {}
        traces = []
        for record in self.connection.session.records:
            stamps = dict(record.stamps)
            if record.true_speech_end is not None:
                stamps["true_speech_end"] = record.true_speech_end
            if record.turn_id in sent:
                stamps["first_frame"] = sent[record.turn_id]
                if encodes is not None and (packet := encodes.first_audible_after(sent[record.turn_id])) is not None:
                    stamps["first_packet"] = packet
            traces.append({stage: at + to_wall for stage, at in stamps.items()})
        return traces


class EncoderTrace:
    """While entered, times every call of aiortc's Opus encoder (it runs in the event loop's default executor)
    and whether its frame held any sound: when a reply's first packet really left, and how long frames
    waited for the executor."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, float, float, bool]] = []
        """(handed to the executor, encoding began, encoding ended, audible), monotonic seconds."""
        self.departures: list[float] = []
        """When each encoded frame went to the RTP packetiser (monotonic)."""
        self._original: Any = None

    def __enter__(self) -> EncoderTrace:
        from aiortc.codecs import opus
        from aiortc.rtcrtpsender import RTCRtpSender

        self._original = (opus.OpusEncoder.encode, RTCRtpSender._next_encoded_frame)  # noqa: SLF001
        encode, next_frame = self._original
        handed: list[float] = []
        calls, departures = self.calls, self.departures

        def timed(encoder: Any, frame: Any, force_keyframe: bool = False) -> Any:
            began = time.monotonic()
            result = encode(encoder, frame, force_keyframe)
            audible = bool(np.any(frame.to_ndarray()))
            calls.append((handed.pop(0) if handed else began, began, time.monotonic(), audible))
            return result

        async def next_timed(sender: Any, codec: Any) -> Any:
            # the track's recv() ends, then the frame waits for the executor: note when it was handed over
            original_recv = sender.track.recv if sender.track is not None else None
            if original_recv is None:
                return await next_frame(sender, codec)

            async def recv() -> Any:
                frame = await original_recv()
                if isinstance(frame, av.AudioFrame):  # (a packet was encoded in the track)
                    handed.append(time.monotonic())
                return frame

            sender.track.recv = recv
            try:
                encoded = await next_frame(sender, codec)
                departures.append(time.monotonic())
                return encoded
            finally:
                del sender.track.recv

        opus.OpusEncoder.encode = timed  # type: ignore[method-assign,assignment]
        RTCRtpSender._next_encoded_frame = next_timed  # type: ignore[method-assign,assignment]  # noqa: SLF001
        return self

    def __exit__(self, *exc: object) -> None:
        from aiortc.codecs import opus
        from aiortc.rtcrtpsender import RTCRtpSender

        opus.OpusEncoder.encode, RTCRtpSender._next_encoded_frame = self._original  # type: ignore[method-assign]  # noqa: SLF001

    def first_audible_after(self, at: float) -> float | None:
        """When the encoder finished the first audible frame handed over at or after ``at`` (monotonic)."""
        return next((end for handed, _, end, audible in self.calls if audible and handed >= at - 1e-6), None)

    def gaps_ms(self) -> dict[str, float]:
        """The gaps between frames leaving for the packetiser (20 ms when steady): their p50, p99 and the longest,
        the jitter the browser's jitter buffer must absorb."""
        if len(self.departures) < 2:
            return {}
        gaps = np.diff(np.asarray(self.departures)) * 1000
        return {"p50": round(float(np.percentile(gaps, 50)), 1), "p99": round(float(np.percentile(gaps, 99)), 1),
                "max": round(float(gaps.max()), 1)}

    def executor_waits_ms(self) -> list[float]:
        """How long each frame waited for a free executor thread."""
        return [round((began - handed) * 1000, 2) for handed, began, _, _ in self.calls]


@contextlib.asynccontextmanager
async def tapped_server(
    models: Models, options: ServerOptions | None = None
) -> AsyncIterator[tuple[RealtimeServer, list[TappedSession]]]:
    """A server on a free loopback port whose every session's input is recorded."""
    sessions: list[TappedSession] = []

    @contextlib.asynccontextmanager
    async def tap(connection: RealtimeConnection) -> AsyncIterator[None]:
        tapped = TappedSession(connection)
        sessions.append(tapped)
        push = connection.session.push_audio

        async def recording(samples: np.ndarray) -> None:
            tapped.heard.append(np.array(samples, np.float32).reshape(-1))
            await push(samples)

        connection.session.push_audio = recording  # type: ignore[method-assign]
        yield

    server = RealtimeServer(models, options or ServerOptions(port=0), session_scope=tap)
    await server.start()
    try:
        yield server, sessions
    finally:
        await server.stop()


async def talk(
    url: str,
    wav: Path,
    until: Callable[[list[dict[str, Any]]], bool],
    *,
    screenshot: Path | None = None,
    viewport: ViewportSize = DESKTOP,
    timeout_s: float = 120.0,
    quiet_s: float = 1.5,
    reasoning: int = 0,
    page_gone: Callable[[], Awaitable[None]] | None = None,
    cue: Cue | None = None,
) -> PageCall:
    """Open the page with ``wav`` as the microphone, choose the ``reasoning`` budget (one the page
    offers), press the button, say the ``cue`` when it is due (it bounds that wait itself), wait until the
    events satisfy ``until`` and the page has played nothing for ``quiet_s`` (within ``timeout_s``), then
    collect what happened and close the page; ``page_gone`` runs then, while the browser is still up."""
    async with async_playwright() as playwright:
        browser = await launch(playwright, chromium_args(wav))
        try:
            page = await browser.new_page(viewport=viewport, device_scale_factor=2 if viewport == PHONE else 1)
            if cue is not None:
                await page.add_init_script(cue.init_script())
            await page.goto(url)
            await page.click(".settings summary")  # as a user would: open the settings, choose, close them
            await page.select_option("#reasoning", str(reasoning))
            await page.click(".settings summary")
            await page.click("#talk")
            await page.evaluate(PROBE)
            if cue is not None:
                await cue.say_when_due(page)
            async with asyncio.timeout(timeout_s):
                while not until([e["event"] for e in await page.evaluate("window.voiceAgent.events")]):
                    await asyncio.sleep(0.2)
                await _quiet(page, quiet_s)
            result = await page.evaluate(COLLECT)
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                await page.screenshot(path=str(screenshot), full_page=True)
            await page.close()
            if page_gone is not None:
                await page_gone()
        finally:
            await browser.close()
    return _page_call(result)


async def _quiet(page: Page, seconds: float) -> None:
    """Until the page has played nothing audible for ``seconds``, counted from now at the earliest (the
    reply's audio may still be on its way when its last event arrives)."""
    since = await page.evaluate("window.probe.blocks[1].length")
    while not await page.evaluate(
        """([since, seconds]) => {
          const p = window.probe, count = Math.ceil(seconds * p.rate / 1024);
          const recent = p.blocks[1].slice(Math.max(since, p.blocks[1].length - count));
          return recent.length >= count && recent.every((b) => b.every((x) => Math.abs(x) < 0.01));
        }""",
        [since, seconds],
    ):
        await asyncio.sleep(0.2)


def _page_call(result: dict[str, Any]) -> PageCall:
    def pcm(text: str) -> np.ndarray:
        return np.frombuffer(base64.b64decode(text), "<i2").astype(np.float32) / 32768.0

    rate, block, times = result["rate"], result["block"], np.asarray(result["times"])
    # A block recorded at times[i] (ms) holds samples [i * block, (i + 1) * block): map each event onto that.
    positions = (np.arange(len(times)) + 1) * block / rate
    events = []
    for entry in result["events"]:
        at_s = float(np.interp(entry["at"], times, positions)) if len(times) else 0.0
        events.append({**entry["event"], "at_s": round(at_s, 3)})
    clock = (positions, (result["origin"] + times) / 1000) if len(times) else (np.zeros(0), np.zeros(0))
    said = result.get("said")
    said_at_s = None if said is None or not len(times) else round(float(np.interp(said, times, positions)), 3)
    return PageCall(rate, pcm(result["microphone"]), pcm(result["speaker"]), events, result["turns"], result["status"],
                    clock, result.get("stats", []), said_at_s)


def seen(*kinds: str) -> Callable[[list[dict[str, Any]]], bool]:
    """True once events of these types have arrived, in this order (others between them)."""

    def check(events: list[dict[str, Any]]) -> bool:
        types = iter(e["type"] for e in events)
        return all(kind in types for kind in kinds)

    return check


async def _one_call(wav: Path, out: Path, until: list[str], phone: bool, reasoning: int, cue: Cue | None) -> None:
    from realtime.models import Models

    models = Models.load_embedded()
    await models.warm_up()
    async with tapped_server(models) as (server, sessions):
        freed_after_s = None

        async def page_gone() -> None:
            nonlocal freed_after_s
            closed = time.monotonic()
            while server.connections and time.monotonic() - closed < 30:
                await asyncio.sleep(0.05)
            freed_after_s = None if server.connections else round(time.monotonic() - closed, 2)

        call = await talk(server.url, wav, seen(*until), screenshot=out / "page.png", viewport=PHONE if phone else DESKTOP,
                          reasoning=reasoning, page_gone=page_gone, cue=cue)
        write_wav(out / "speaker.wav", call.speaker, call.rate)
        write_wav(out / "reply.wav", call.reply_audio(), PIPELINE_RATE)
        write_wav(out / "microphone.wav", call.microphone, call.rate)
        for index, session in enumerate(sessions):
            heard = np.concatenate(session.heard or [np.zeros(0, np.float32)])
            write_wav(out / f"server-heard-{index}.wav", heard, PIPELINE_RATE)
        summary = {
            "rate": call.rate,
            "events": call.events,
            "turns": call.turns,
            "status": call.status,
            "page_first_reply_delay_ms": call.first_reply_delay_ms(),
            "then_said_at_s": call.said_at_s,
            "server_records": [record for s in sessions for record in s.first_packet_delays()],
            "sessions": len(sessions),
            "freed_after_s": freed_after_s,
        }
        (out / "call.json").write_text(json.dumps(summary, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("wav", type=Path, help="the microphone (looped by Chromium)")
    parser.add_argument("out", type=Path, help="directory for what the call left")
    parser.add_argument("--until", nargs="+", default=["response.latency"], metavar="EVENT",
                        help="event types that end the call once they arrived in this order and the page is quiet")
    parser.add_argument("--phone", action="store_true", help="a phone-sized page")
    parser.add_argument("--reasoning", type=int, default=0, help="the page's reasoning budget (0, 16 or 64)")
    parser.add_argument("--then-say", type=Path, metavar="CLIP", help="a clip the microphone says at a point of the call")
    parser.add_argument("--after", metavar="EVENT[#COUNT][:PLAYED_S]",
                        help="that point: once COUNT (1) EVENTs arrived and the page has played PLAYED_S (0) seconds "
                             "of sound since the first")
    args = parser.parse_args()
    if (args.then_say is None) != (args.after is None):
        parser.error("--then-say and --after go together")
    cue = None if args.then_say is None else Cue.parse(args.then_say, args.after)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(_one_call(args.wav.resolve(), args.out, args.until, args.phone, args.reasoning, cue))
    except CueMissed as missed:
        sys.exit(str(missed))


if __name__ == "__main__":
    main()
