"""Talk to a ``realtime serve`` process over its websocket as a microphone would, and measure at the client.

:func:`start_server` runs the server in its own process on a free loopback port. :func:`exchange`
connects, optionally sets the reasoning budget (``session.reasoning``), streams a spoken question in
real time as 20 ms PCM16 24 kHz ``input_audio_buffer.append`` events and keeps streaming silence (or,
for a barge-in, new speech while the reply plays) until the reply is over. Everything is stamped on the
client's monotonic clock: the first-packet delay runs from sending the frame that holds the true last
speech sample to receiving the first ``response.output_audio.delta``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect

from audio.samples import PIPELINE_RATE, resample, to_pcm16
from benchmarks.playout import simulate

WIRE_RATE = 24_000
FRAME_S = 0.02
FRAME = int(WIRE_RATE * FRAME_S)

AGENT = (sys.executable, "-m", "realtime.cli", "serve")
NAIVE = (sys.executable, "-m", "realtime.cli", "serve", "--pipeline", "naive")
"""The naive cascade behind the same websocket server: the baseline of every comparison."""
LLM_SERVER = (sys.executable, "-m", "realtime.cli", "llm-server")
"""The embedded model on llama.cpp's OpenAI-compatible HTTP server (its URL is the API root, ``.../v1``)."""


@dataclass
class Server:
    """A server process and its websocket URL."""

    process: subprocess.Popen[str]
    url: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def launch(command: Sequence[str] = AGENT, *extra: str) -> subprocess.Popen[str]:
    """Start a server on a free loopback port (it prints ``listening on URL`` once its models are warm)."""
    return subprocess.Popen([*command, "--port", "0", *extra], stdout=subprocess.PIPE, text=True)


def ready(process: subprocess.Popen[str]) -> Server:
    """Wait for a launched server to listen."""
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("listening on "):
            return Server(process, line.split()[-1])
    raise RuntimeError(f"{process.args!r} exited before listening")


@contextlib.contextmanager
def running(*commands: Sequence[str], extra: Sequence[str] = ()) -> Iterator[list[Server]]:
    """Start servers side by side (their models load in parallel), stop them on exit."""
    processes = [launch(command, *extra) for command in commands]
    try:
        yield [ready(process) for process in processes]
    finally:
        for process in processes:
            Server(process, "").stop()


@dataclass(frozen=True)
class BargeIn:
    """New user speech streamed ``after_s`` after the first reply audio arrived."""

    audio: np.ndarray
    """16 kHz float32, its own silence after it included."""
    onset_s: float
    """The true start of speech within ``audio``."""
    after_s: float = 0.5


@dataclass
class Exchange:
    """One spoken turn as the client saw it; times in seconds on the client's clock."""

    speech_end: float
    first_audio: float | None = None
    chunks: list[tuple[float, float]] = field(default_factory=list)
    """(arrival, duration) of each audio delta of the reply."""
    reply: list[bytes] = field(default_factory=list)
    latency: dict[str, Any] = field(default_factory=dict)
    status: str | None = None
    barge_onset: float | None = None
    arrivals: dict[str, float] = field(default_factory=dict)
    """First arrival of each server event type (with a barge-in: once it is scheduled)."""

    @property
    def first_packet_delay_ms(self) -> float | None:
        return None if self.first_audio is None else round((self.first_audio - self.speech_end) * 1000, 1)

    def reply_audio(self) -> np.ndarray:
        """The reply, float32 at 16 kHz."""
        samples = np.frombuffer(b"".join(self.reply), "<i2").astype(np.float32) / 32768.0
        return resample(samples, WIRE_RATE, PIPELINE_RATE) if len(samples) else samples

    def record(self) -> dict[str, Any]:
        """The client delay, the server's stage record and the playout of the reply (no audio)."""
        playout = simulate(self.chunks)
        return {
            "first_packet_delay_ms": self.first_packet_delay_ms,
            "server_first_packet_delay_ms": self.latency.get("first_packet_delay_ms"),
            "stages_ms": self.latency.get("stages_ms", {}),
            "status": self.status,
            "reply_s": round(sum(d for _, d in self.chunks), 3),
            "underruns": playout.underruns,
            "underrun_ms": round(playout.underrun_s * 1000, 1),
        }

    def barge_in(self) -> dict[str, Any]:
        """From the true onset of the interrupting speech to: the server's ``output_audio_buffer.cleared``,
        its ``conversation.item.truncated`` (a reply already written, still playing), the reply's
        ``response.done`` (one cut while being written), the last reply audio received, and the end of what
        a client that flushes on ``cleared`` played (negative: that came before the onset)."""
        onset = self.barge_onset
        cleared = self.arrivals.get("output_audio_buffer.cleared")
        played = simulate(self.chunks, flush_at=cleared)

        def since(t: float | None) -> float | None:
            return None if t is None or onset is None else round((t - onset) * 1000, 1)

        return {
            "interrupted": cleared is not None,
            "onset_to_cleared_ms": since(cleared),
            "onset_to_truncated_ms": since(self.arrivals.get("conversation.item.truncated")),
            "onset_to_done_ms": since(self.arrivals.get("response.done")),
            "status": self.status,
            "onset_to_last_audio_ms": since(self.chunks[-1][0] if self.chunks else None),
            "onset_to_silence_ms": since(played.ended),
            "first_packet_delay_ms": self.first_packet_delay_ms,
        }


class _Feed:
    """The frames the client sends: the question, then silence, or new speech spliced in at a frame."""

    def __init__(self, audio16k: np.ndarray) -> None:
        self.wire, self.offset, self.sent = resample(audio16k, PIPELINE_RATE, WIRE_RATE), 0, 0

    def frame(self, index: int) -> np.ndarray:
        at = (index - self.offset) * FRAME
        chunk = self.wire[at : at + FRAME] if at >= 0 else self.wire[:0]
        return chunk if len(chunk) == FRAME else np.concatenate([chunk, np.zeros(FRAME - len(chunk), np.float32)])

    def splice(self, index: int, audio16k: np.ndarray) -> None:
        self.wire, self.offset = resample(audio16k, PIPELINE_RATE, WIRE_RATE), index


async def _configure(ws: ClientConnection, reasoning_budget: int | None) -> None:
    """Ask for the latency and reasoning events (an extension) and set the reasoning budget."""
    await ws.recv()  # session.created
    session: dict[str, object] = {"extensions": ["thinking", "latency"]}
    if reasoning_budget is not None:
        session["reasoning"] = {"budget_tokens": reasoning_budget}
    await ws.send(json.dumps({"type": "session.update", "session": session}))
    while json.loads(await ws.recv())["type"] != "session.updated":
        pass


async def exchange(
    url: str,
    audio16k: np.ndarray,
    speech_end_s: float,
    *,
    reasoning_budget: int | None = None,
    barge_in: BargeIn | None = None,
    timeout_s: float = 45.0,
    grace_s: float = 0.5,
) -> Exchange:
    """Stream one spoken question (16 kHz float32, true end of speech at ``speech_end_s``) and collect
    the first reply: until ``response.latency``, or with ``barge_in``, until ``grace_s`` after the
    server cleared the reply's audio (or 8 s after the onset if it never does)."""
    feed = _Feed(audio16k)
    async with connect(url, max_size=None) as ws:
        await _configure(ws, reasoning_budget)
        start = time.monotonic()
        result = Exchange(speech_end=start + speech_end_s)

        async def send() -> None:
            while True:
                await asyncio.sleep(max(0.0, start + feed.sent * FRAME_S - time.monotonic()))
                pcm = base64.b64encode(to_pcm16(feed.frame(feed.sent))).decode()
                await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": pcm}))
                feed.sent += 1

        sender = asyncio.create_task(send())
        deadline, response_id = start + timeout_s, None
        try:
            while (left := deadline - time.monotonic()) > 0:
                try:
                    event = json.loads(await asyncio.wait_for(ws.recv(), left))
                except TimeoutError:
                    break
                arrived, kind = time.monotonic(), event["type"]
                if barge_in is None or result.barge_onset is not None:
                    result.arrivals.setdefault(kind, arrived)
                if kind == "response.output_audio.delta":
                    response_id = response_id or event.get("response_id")  # the first reply's audio only
                if kind == "response.output_audio.delta" and event.get("response_id") == response_id:
                    data = base64.b64decode(event["delta"])
                    result.reply.append(data)
                    result.chunks.append((arrived, len(data) / 2 / WIRE_RATE))
                    if result.first_audio is None:
                        result.first_audio = arrived
                        if barge_in is not None:
                            at = feed.sent + math.ceil(barge_in.after_s / FRAME_S)
                            feed.splice(at, barge_in.audio)
                            result.barge_onset = start + at * FRAME_S + barge_in.onset_s
                            deadline = min(deadline, result.barge_onset + 8.0)
                elif kind == "response.done" and result.status is None:
                    result.status = event["response"]["status"]
                elif kind == "response.latency" and not result.latency:
                    result.latency = event["latency"]
                    if barge_in is None:
                        break
                elif kind == "output_audio_buffer.cleared" and barge_in is not None and result.barge_onset is not None:
                    deadline = min(deadline, arrived + grace_s)
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
    return result
