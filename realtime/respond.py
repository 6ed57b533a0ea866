"""``realtime respond``: stream an audio file through a session as a microphone would, write the reply.

Frames of 20 ms are pushed at the pace of real time (or as fast as possible with ``fast``), followed
by silence, in real time, until the agent is done. A virtual speaker lays every reply chunk on the timeline at the
moment it arrives (so the output file is what a listener would have heard, barge-ins included), and
each turn's latency record is measured from the true end of speech found in the input itself.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from audio.samples import PIPELINE_RATE, frames, read_audio, write_wav
from realtime.events import (
    AssistantTextDelta,
    AudioOut,
    ErrorEvent,
    OutputItem,
    ReasoningDone,
    ReplyDone,
    ReplyTruncated,
    UserTranscriptFinal,
)
from realtime.latency import now
from realtime.models import Models
from realtime.session import SessionConfig
from realtime.session.orchestrator import VoiceSession
from realtime.session.output import Playback, PlayedCounter

FRAME_MS = 20
_FRAME_S = FRAME_MS / 1000


def speech_segments(samples: np.ndarray, rate: int = PIPELINE_RATE, *, merge_gap_s: float = 0.3) -> list[tuple[int, int]]:
    """Where a clean recording holds sound: 10 ms frames within 35 dB of its loudest, gaps under 0.3 s merged."""
    hop = rate // 100
    count = len(samples) // hop
    if count == 0:
        return []
    power = np.square(samples[: count * hop].reshape(count, hop), dtype=np.float64).mean(axis=1)
    level = 10 * np.log10(np.maximum(power, 1e-12))
    loud = level > max(level.max() - 35.0, -60.0)
    segments: list[list[int]] = []
    for index in np.flatnonzero(loud):
        start, end = int(index) * hop, (int(index) + 1) * hop
        if segments and start - segments[-1][1] <= merge_gap_s * rate:
            segments[-1][1] = end
        else:
            segments.append([start, end])
    return [(s, e) for s, e in segments]


class VirtualSpeaker:
    """The ``respond`` command's :class:`~realtime.session.output.AudioSink`: plays reply audio onto a timeline, in
    real time from its arrival, or back to back when ``realtime`` is off (then everything counts as played)."""

    def __init__(self, rate: int, *, realtime: bool, clock: Callable[[], float] = now) -> None:
        self.rate = rate
        self.realtime = realtime
        self._clock = clock
        self._started = clock()
        self._chunks: list[tuple[int, int, np.ndarray]] = []
        """(position on the timeline, generation, samples)."""
        self._cursor = 0

    def _now(self) -> int:
        return int((self._clock() - self._started) * self.rate)

    async def play(self, item: AudioOut) -> None:
        position = max(self._cursor, self._now()) if self.realtime else self._cursor
        self._chunks.append((position, item.generation, item.samples))
        self._cursor = position + len(item.samples)

    def clear(self) -> Playback:
        """Drop whatever has not been played yet (the device buffer is flushed); report what was played."""
        cut = self._now() if self.realtime else self._cursor
        played = PlayedCounter()
        kept = []
        for position, generation, samples in self._chunks:
            if position < cut:
                kept.append((position, generation, samples[: cut - position]))
                played.add(generation, min(len(samples), cut - position))
        self._chunks = kept
        self._cursor = min(self._cursor, cut)
        return played.report()

    @property
    def playing(self) -> bool:
        return self.realtime and self._now() < self._cursor

    async def flush(self) -> None:
        if self.realtime:
            await asyncio.sleep(max(0.0, (self._cursor - self._now()) / self.rate))

    def timeline(self, min_samples: int = 0) -> np.ndarray:
        length = max([min_samples] + [p + len(s) for p, _, s in self._chunks])
        out = np.zeros(length, dtype=np.float32)
        for position, _, samples in self._chunks:
            out[position : position + len(samples)] += samples
        return out


@dataclass
class RespondResult:
    turns: list[dict[str, object]]
    """One record per reply: latency stages, what was said, how it ended."""
    stats: dict[str, int]
    """The session's counts (speculations, discarded, committed, interrupted, no_speech, ...)."""
    conversation: list[tuple[str, str]]
    """The history as the agent keeps it (role, text)."""


@dataclass
class TurnReport:
    turn_id: str
    user_text: str = ""
    reply_text: str = ""
    """What the user heard (cut at a barge-in)."""
    said: str = ""
    """Every word the reply handed to the speaker (ahead of what was heard after a barge-in)."""
    reasoning: str = ""
    status: str = ""
    truncated_to: str | None = None
    errors: list[str] = field(default_factory=list)


async def respond(
    input_path: str | Path,
    output_path: str | Path,
    models: Models,
    *,
    config: SessionConfig | None = None,
    fast: bool = False,
    max_wait_s: float = 60.0,
) -> RespondResult:
    """Run ``input_path`` through a session, write the reply audio, return what happened."""
    audio = read_audio(input_path, PIPELINE_RATE)
    config = config or SessionConfig()
    speaker = VirtualSpeaker(config.output_rate, realtime=not fast)
    session = VoiceSession(models, config, speaker)
    reports: dict[str, TurnReport] = {}
    consumer = asyncio.create_task(session.route(_reporter(reports)))
    start = now()
    pushed = 0
    try:
        for frame in frames(audio, PIPELINE_RATE, FRAME_MS):
            pushed += 1
            # fast: do not wait, but let the session's tasks run between frames
            await asyncio.sleep(0 if fast else max(0.0, start + pushed * _FRAME_S - now()))
            await session.push_audio(frame)
        # Silence after the input, paced in real time so the session's replies can play out.
        silence = np.zeros(PIPELINE_RATE * FRAME_MS // 1000, dtype=np.float32)
        tail_start, tail_frames = now(), 0
        while now() < tail_start + max_wait_s:
            tail_frames += 1
            await asyncio.sleep(max(0.0, tail_start + tail_frames * _FRAME_S - now()))
            await session.push_audio(silence)
            if tail_frames * _FRAME_S > 1.0 and session.idle:
                break
        await session.wait_idle(max_wait_s)
        await asyncio.sleep(0.05)
    finally:
        await session.close()
        consumer.cancel()
    heard_for = 0 if fast else len(audio) * session.config.output_rate // PIPELINE_RATE
    write_wav(output_path, speaker.timeline(heard_for), session.config.output_rate)
    return RespondResult(
        turns=_turn_records(session, audio, reports),
        stats=dict(session.stats),
        conversation=[(m.role, m.text) for m in session.conversation.messages],
    )


def _reporter(reports: dict[str, TurnReport]) -> Callable[[OutputItem], Awaitable[None]]:
    """What the ``respond`` command keeps of each output item (audio goes to the speaker)."""

    async def report(item: OutputItem) -> None:
        if isinstance(item, AssistantTextDelta):
            entry = reports.setdefault(item.turn_id, TurnReport(item.turn_id))
            entry.said += item.text
        elif isinstance(item, UserTranscriptFinal):
            reports.setdefault(item.turn_id, TurnReport(item.turn_id)).user_text = item.text
        elif isinstance(item, ReasoningDone):
            reports.setdefault(item.turn_id, TurnReport(item.turn_id)).reasoning = item.text
        elif isinstance(item, ReplyDone):
            entry = reports.setdefault(item.turn_id, TurnReport(item.turn_id))
            entry.reply_text, entry.status = item.text, item.status
            reports[item.item_id] = entry
        elif isinstance(item, ReplyTruncated) and item.item_id in reports:
            reports[item.item_id].truncated_to = item.text
        elif isinstance(item, ErrorEvent):
            reports.setdefault("session", TurnReport("session")).errors.append(item.message)

    return report


def _turn_records(session: VoiceSession, audio: np.ndarray, reports: dict[str, TurnReport]) -> list[dict[str, object]]:
    """Latency records measured from the true end of speech (from the input) plus what was said."""
    true_ends = [end for _, end in speech_segments(audio)]
    records = []
    for record in session.records:
        vad_end = record.stamps.get("speech_end")
        candidates = [t for t in (session.sample_time(end) for end in true_ends) if t is not None]
        if vad_end is not None and candidates:
            record.true_speech_end = min(candidates, key=lambda t: abs(t - vad_end))
        report = reports.get(record.turn_id, TurnReport(record.turn_id))
        records.append(
            {
                **record.as_dict(),
                "user_text": report.user_text,
                "reply_text": report.reply_text,
                "said": report.said.strip(),
                "reasoning": report.reasoning,
                "status": report.status,
                "truncated_to": report.truncated_to,
            }
        )
    return records


def write_records(path: str | Path, records: list[dict[str, object]]) -> None:
    Path(path).write_text(json.dumps({"turns": records}, indent=2) + "\n")
