"""Speech over a reply on the real embedded models, fed in real time as a microphone would, the reply played on a
real-time timeline (:class:`~realtime.respond.VirtualSpeaker`): a backchannel pauses the reply, which resumes and
finishes whole; noise does not interrupt it; a real interruption stops it within 300 ms of its onset, cuts the history
to what was heard and is answered. The speech over the reply starts once a second of it has played, however slow the
machine is. Over a real websocket: silence after a reply prompts the user once, then the server ends the call."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from benchmarks.noise import background
from realtime.events import AssistantTextDelta, AudioPaused, AudioResumed, ReplyDone, ReplyTruncated
from realtime.latency import now
from realtime.server import RealtimeServer, ServerOptions
from realtime.session import SessionConfig
from tests.conftest import silence
from tests.fakes import Listened, RecordingSpeaker
from tests.test_agent import cough
from tests.test_server import stream

pytestmark = [pytest.mark.slow, pytest.mark.timing]
RATE = 16_000
FRAME = RATE // 50
STOP_S = 0.3
"""The reply's audio stops within this long of the onset of speech over it."""
CONFIG = SessionConfig(max_answer_tokens=48)
"""A reply of ten seconds or so."""
STORY = "Please tell me a story about a brave little dragon."


class Live(Listened):
    """A session on the real models, fed in real time."""

    def __init__(self, models) -> None:
        super().__init__(models, CONFIG)
        self.speaker = self.session.sink
        assert isinstance(self.speaker, RecordingSpeaker)

    async def push(self, audio: np.ndarray) -> tuple[float, float]:
        """Feed ``audio`` (16 kHz) in 20 ms frames, paced in real time; returns when it began and ended."""
        start = now()
        for index, offset in enumerate(range(0, len(audio), FRAME)):
            await asyncio.sleep(max(0.0, start + index * FRAME / RATE - now()))
            await self.session.push_audio(audio[offset : offset + FRAME])
        return start, now()

    async def silent_until(self, condition: Callable[[], bool], timeout: float = 300.0) -> None:
        deadline = now() + timeout
        while not condition():
            assert now() < deadline, "timed out"
            await self.push(silence(0.1))

    def played_s(self) -> float:
        """How long reply audio has been playing (0 before its first sample)."""
        chunks = self.speaker._chunks  # noqa: SLF001
        return max(0.0, now() - self.speaker._started - chunks[0][0] / self.speaker.rate) if chunks else 0.0  # noqa: SLF001

    def loud(self, start: float, end: float) -> bool:
        """Reply audio on the timeline between two clock times."""
        timeline, rate, origin = self.speaker.timeline(), self.speaker.rate, self.speaker._started  # noqa: SLF001
        return bool(np.abs(timeline[int((start - origin) * rate) : int((end - origin) * rate)]).max(initial=0.0) > 0.01)

    def of(self, kind: type) -> list:
        return [item for item in self.items if isinstance(item, kind)]

    def said(self, turn_id: str) -> str:
        return "".join(item.text for item in self.of(AssistantTextDelta) if item.turn_id == turn_id).strip()


async def over_the_reply(models, say, question: str, overlap: np.ndarray, replies: int = 1) -> tuple[Live, float, float]:
    """Ask ``question``; once a second of the reply has played, ``overlap``; then wait for ``replies`` replies to end and
    play out. Returns the session, the overlap's onset (its first audible sample: flite leads some words with 0.2 s of
    near silence) and its end."""
    async with Live(models) as live:
        await live.push(np.concatenate([silence(0.3), say(question)]))
        await live.silent_until(lambda: live.played_s() >= 1.0)
        start, end = await live.push(overlap)
        await live.silent_until(lambda: len(live.of(ReplyDone)) >= replies and live.session.idle)
    return live, start + np.flatnonzero(np.abs(overlap) > 0.01)[0] / RATE, end


def assert_finished_whole(live: Live) -> None:
    [done] = live.of(ReplyDone)
    assert done.status == "completed" and not live.session.stats["interrupted"]
    messages = [(m.role, m.text) for m in live.session.conversation.messages]
    assert messages[-1] == ("assistant", live.said(done.turn_id)), "the history holds the whole reply"


async def test_mm_hmm_over_the_reply_pauses_it_and_it_resumes_and_finishes(models, say) -> None:
    live, onset, end = await over_the_reply(models, say, STORY, say("Mm-hmm."))
    assert_finished_whole(live)
    assert live.session.stats["backchannels"] == 1 and len(live.of(AudioPaused)) == len(live.of(AudioResumed)) == 1
    assert live.loud(onset - 1.0, onset), "the reply was playing"
    assert not live.loud(onset + STOP_S, end), "paused while the user hummed"
    assert live.loud(end, end + 60.0), "and resumed"


async def test_a_noise_burst_and_a_cough_over_the_reply_do_not_interrupt_it(models, say) -> None:
    burst = 0.3 * background(RATE // 2, seed=4) * np.exp(-np.arange(RATE // 2) / (0.15 * RATE))
    noise = np.concatenate([burst.astype(np.float32), silence(0.4), cough(), silence(0.3), cough()])
    live, onset, end = await over_the_reply(models, say, STORY, noise)
    assert_finished_whole(live)
    assert live.loud(onset + STOP_S, end), "the reply plays on through the noise"


async def test_a_real_interruption_stops_the_reply_at_once_and_is_answered(models, say) -> None:
    # a long reply: a short one ("The capital of France is Paris.") may have played to its end before the
    # interruption is confirmed at the user's first pause, and then there is nothing left to cut
    live, onset, end = await over_the_reply(models, say, STORY, say("Wait, stop, what about Spain?"), replies=2)
    first, second = live.of(ReplyDone)
    truncated = live.of(ReplyTruncated)  # a reply written whole and still playing is cut after its response.done
    assert (first.status == "interrupted" or truncated) and live.session.stats["interrupted"] == 1
    assert live.loud(onset - 1.0, onset), "the reply was playing"
    assert not live.loud(onset + STOP_S, end), f"stopped within {STOP_S * 1000:.0f} ms of the onset"
    said, heard = live.said(first.turn_id).split(), (truncated[0].text if truncated else first.text).split()
    assert 0 < len(heard) < len(said) and said[: len(heard)] == heard, "cut to what was heard"
    messages = [(m.role, m.text) for m in live.session.conversation.messages]
    assert messages[1] == ("assistant", " ".join(heard)) and "spain" in messages[2][1].lower()
    assert second.status == "completed" and second.text and messages[3] == ("assistant", second.text)


async def test_silence_after_a_reply_prompts_once_then_the_server_hangs_up(models, say) -> None:
    server = await RealtimeServer(models, ServerOptions(port=0)).start()
    try:
        async with connect(f"ws://127.0.0.1:{server.port}/v1/realtime?model=embedded") as ws:
            await ws.send(json.dumps({"type": "session.update", "session": {"max_output_tokens": 24, "audio": {"input": {
                "turn_detection": {"type": "server_vad", "idle_timeout_ms": 3000, "idle_hangup_ms": 4000}}}}}))
            silent = asyncio.create_task(stream(ws, np.concatenate([silence(0.3), say("What is the capital of France?"),
                                                                    silence(600.0)])))
            kinds: list[str] = []
            with pytest.raises(ConnectionClosed) as closed:
                async with asyncio.timeout(400):
                    while True:
                        kinds.append(json.loads(await ws.recv())["type"])
            silent.cancel()
    finally:
        await server.stop()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000, "the server ended the call"
    assert kinds.count("input_audio_buffer.timeout_triggered") == 1 and kinds.count("response.done") == 2
    prompt = kinds[kinds.index("input_audio_buffer.timeout_triggered") :]
    assert "response.output_audio.delta" in prompt, "the prompt was spoken"
