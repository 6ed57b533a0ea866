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
from pathlib import Path
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


def launch(command: Sequence[str] = AGENT, *extra: str, tree: str | Path | None = None) -> subprocess.Popen[str]:
    """Start a server on a free loopback port (it prints ``listening on URL`` once its models are warm); ``tree``: run
    the code of that checkout (e.g. a git worktree of an older commit; ``python -m`` imports from the working
    directory first) with this environment's packages."""
    return subprocess.Popen([*command, "--port", "0", *extra], stdout=subprocess.PIPE, text=True, cwd=tree)


def ready(process: subprocess.Popen[str]) -> Server:
    """Wait for a launched server to listen."""
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("listening on "):
            return Server(process, line.split()[-1])
    raise RuntimeError(f"{process.args!r} exited before listening")


@contextlib.contextmanager
def running(*commands: Sequence[str], extra: Sequence[str] = (), trees: Sequence[str | Path | None] = ()) -> Iterator[list[Server]]:
    """Start servers side by side (their models load in parallel), stop them on exit; ``trees``: the checkout each
    command runs (:func:`launch`), this one where None or missing."""
    processes = [launch(command, *extra, tree=trees[i] if i < len(trees) else None) for i, command in enumerate(commands)]
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


Stamped = tuple[float, str, dict[str, Any]]
"""(arrival on the client's clock, event type, the event's placing fields: :data:`KEPT`)."""
KEPT = ("audio_start_ms", "audio_end_ms", "item_id", "response_id", "transcript", "status", "message")
"""What a timeline keeps of an event (``status``: a ``response.done``'s; ``message``: an ``error``'s)."""
FINISHES = ("reply", "reply_after_end", "listen")


def _stamp(arrived: float, event: dict[str, Any]) -> Stamped:
    kept = {k: event[k] for k in KEPT if k in event}
    if isinstance(event.get("response"), dict):
        kept.setdefault("response_id", event["response"].get("id"))
        if "status" in event["response"]:
            kept["status"] = event["response"]["status"]
    if isinstance(event.get("error"), dict):
        kept["message"] = event["error"].get("message")
    return arrived, event["type"], kept


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
    timeline: list[Stamped] = field(default_factory=list)
    """Every server event but deltas (only a reply's first audio delta), in arrival order, with the fields that place it."""
    session: dict[str, Any] = field(default_factory=dict)
    """The settings the server answered ``session.update`` with."""
    refused: str | None = None
    """The server's error message when it refused the settings (nothing was streamed then)."""

    @property
    def first_packet_delay_ms(self) -> float | None:
        return None if self.first_audio is None else round((self.first_audio - self.speech_end) * 1000, 1)

    def transcripts(self) -> tuple[str | None, str | None]:
        """The server's transcript of the user's question (the last one before the reply) and the text of the reply
        whose audio was collected (its ``response.output_audio_transcript.done``); None where it sent none."""
        reply_id = next((i.get("response_id") for _, k, i in self.timeline if k == "response.output_audio.delta"), None)
        question = written = None
        for _, kind, info in self.timeline:
            if kind == "conversation.item.input_audio_transcription.completed" and written is None:
                question = info.get("transcript")
            elif kind == "response.output_audio_transcript.done" and info.get("response_id") == reply_id:
                written = info.get("transcript")
        return question, written

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


async def _configure(
    ws: ClientConnection, reasoning_budget: int | None, turn_detection: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Ask for the latency and reasoning events (an extension), set the reasoning budget and the turn detection;
    return the server's answer: ``session.updated``, or the ``error`` that refused the settings."""
    await ws.recv()  # session.created
    session: dict[str, object] = {"extensions": ["thinking", "latency"]}
    if reasoning_budget is not None:
        session["reasoning"] = {"budget_tokens": reasoning_budget}
    if turn_detection is not None:
        session["turn_detection"] = turn_detection
    await ws.send(json.dumps({"type": "session.update", "session": session}))
    while (answer := json.loads(await ws.recv()))["type"] not in ("session.updated", "error"):
        pass
    return answer


async def exchange(
    url: str,
    audio16k: np.ndarray,
    speech_end_s: float,
    *,
    reasoning_budget: int | None = None,
    barge_in: BargeIn | None = None,
    timeout_s: float = 45.0,
    grace_s: float = 0.5,
    turn_detection: dict[str, Any] | None = None,
    finish: str = "reply",
) -> Exchange:
    """Stream one spoken question (16 kHz float32, true end of speech at ``speech_end_s``) and collect
    the first reply: until ``response.latency``, or with ``barge_in``, until ``grace_s`` after the
    server cleared the reply's audio (or 8 s after the onset if it never does).

    ``turn_detection`` goes into the ``session.update`` as it is; a server that refuses it answers an ``error``, and
    the exchange ends at once with :attr:`Exchange.refused` set. ``finish`` (without a barge-in): ``"reply"`` ends at
    the first ``response.latency``; ``"reply_after_end"`` at the first one of a reply not cancelled that arrives after
    the true end (a turn cut at a pause goes on to the reply to the rest of it); ``"listen"`` streams for
    ``timeout_s`` whatever comes (a long recording)."""
    if finish not in FINISHES:
        raise ValueError(f"finish is one of {FINISHES}, not {finish!r}")
    feed = _Feed(audio16k)
    async with connect(url, max_size=None) as ws:
        answer = await _configure(ws, reasoning_budget, turn_detection)
        start = time.monotonic()
        result = Exchange(speech_end=start + speech_end_s)
        if answer["type"] == "error":
            result.refused = str(answer.get("error", {}).get("message", answer))
            return result
        result.session = answer.get("session", {})

        async def send() -> None:
            while True:
                await asyncio.sleep(max(0.0, start + feed.sent * FRAME_S - time.monotonic()))
                pcm = base64.b64encode(to_pcm16(feed.frame(feed.sent))).decode()
                await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": pcm}))
                feed.sent += 1

        sender = asyncio.create_task(send())
        deadline, response_id = start + timeout_s, None
        voiced: set[str | None] = set()  # the replies whose first audio the timeline holds
        try:
            while (left := deadline - time.monotonic()) > 0:
                try:
                    event = json.loads(await asyncio.wait_for(ws.recv(), left))
                except TimeoutError:
                    break
                arrived, kind = time.monotonic(), event["type"]
                if barge_in is None or result.barge_onset is not None:
                    result.arrivals.setdefault(kind, arrived)
                if not kind.endswith(".delta") or (kind == "response.output_audio.delta" and event.get("response_id") not in voiced):
                    result.timeline.append(_stamp(arrived, event))
                    voiced.add(event.get("response_id") if kind == "response.output_audio.delta" else None)
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
                elif kind == "response.latency" and finish == "reply_after_end" and barge_in is None:
                    statuses = {i.get("response_id"): i.get("status") for _, k, i in result.timeline if k == "response.done"}
                    if arrived >= result.speech_end and statuses.get(event.get("response_id")) != "cancelled":
                        result.latency = event["latency"]
                        break
                elif kind == "response.latency" and not result.latency and finish == "reply":
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
