"""A voice session: the embedded cascade that listens while it thinks and thinks while it speaks.

Audio in (16 kHz float32, any frame size) -> VAD windows -> turn-taking policy. While the user speaks,
partial transcripts arrive every ``partial_interval_ms`` and the words two partials agree on are
prefilled into the decoder's cache. At the first pause that may end the turn a reply starts
speculatively (final transcript, reasoning, answer, speech), its output held back; when the policy
confirms the end of the turn it is committed and flows, and if the user goes on instead it is
discarded without a sound. The answer is spoken clause by clause as the decoder writes it. Speech
over a reply cancels every task of the turn, clears queued audio and cuts the history to what was heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter
import logging
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from realtime.asr import Transcript, stable_prefix
from realtime.audio import PIPELINE_RATE, StreamResampler
from realtime.conversation import STOP_SEQUENCES, Conversation, DEFAULT_INSTRUCTIONS
from realtime.events import (
    AssistantTextDelta,
    AudioCleared,
    AudioOut,
    ErrorEvent,
    OutputItem,
    ReasoningDelta,
    ReasoningDone,
    ReplyDone,
    ReplyStarted,
    ReplyTruncated,
    SpeechStarted,
    SpeechStopped,
    UserTranscriptFinal,
    UserTranscriptPartial,
)
from realtime.latency import LatencyRecord, now
from realtime.models import Models
from realtime.policy import Decision, Event, PolicyConfig, TurnPolicy
from realtime.reasoning import THINK_CLOSE, ThinkSplitter
from realtime.turn import SpokenClause, Turn, TurnState
from tts import ClauseSegmenter, speakable
from vad import VoiceActivityDetector

log = logging.getLogger(__name__)

_turn_ids = itertools.count(1)


@dataclass
class SessionConfig:
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    instructions: str = DEFAULT_INSTRUCTIONS
    reasoning_budget: int = 0
    """Tokens of ``<think>`` reasoning before the answer (0: answer at once)."""
    max_answer_tokens: int = 150
    temperature: float = 0.0
    output_rate: int = 24_000
    partial_interval_ms: int = 320
    """Speech between partial transcripts (each one also extends the decoder's prefilled prefix)."""
    prefix_padding_ms: int = 500
    """Audio before the detected onset that is kept for recognition (Silero confirms fricative onsets
    such as "St-" up to ~0.4 s late)."""
    max_utterance_s: float = 60.0
    listen_while_thinking: bool = True
    """Partial transcripts and decoder prefill while the user speaks."""
    speculate: bool = True
    """Start the reply at the first pause that may end the turn, before the end is confirmed."""
    stream_speech: bool = True
    """Speak each answer clause as soon as it is written (off: synthesise the whole answer first)."""

    @classmethod
    def naive(cls, **overrides: object) -> "SessionConfig":
        """The naive cascade: wait for the end of turn, transcribe, write the whole answer, then speak."""
        return cls(listen_while_thinking=False, speculate=False, stream_speech=False, **overrides)  # type: ignore[arg-type]


class VoiceSession:
    """One conversation. Feed audio with :meth:`push_audio`; read :attr:`output` in order."""

    def __init__(self, models: Models, config: SessionConfig | None = None) -> None:
        self.models = models
        self.config = config or SessionConfig()
        self.output: asyncio.Queue[OutputItem] = asyncio.Queue()
        self.conversation = Conversation(instructions=self.config.instructions)
        self.records: list[LatencyRecord] = []
        self.stats: Counter[str] = Counter()
        """Counts of what happened: speculations, discarded, committed, interrupted, no_speech, failed."""
        self._vad = VoiceActivityDetector()
        self._policy = TurnPolicy(self.config.policy)
        self._pushes: deque[tuple[int, float]] = deque(maxlen=50_000)
        self._samples = 0
        self._preroll: deque[np.ndarray] = deque()
        self._utterance: list[np.ndarray] | None = None
        self._utterance_start = 0
        self._turn: Turn | None = None
        self._last_reply: Turn | None = None
        self._generations = itertools.count(1)
        self._stale_below = 0
        self._playout_end = 0.0
        self._partial_task: asyncio.Task[None] | None = None
        self._partial_at = 0
        self._partials = ("", "")
        self._prefilled = ""
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False
        if self.config.listen_while_thinking:
            self._spawn(self._prefill(self.conversation.history_prompt()))

    # ---- input ---------------------------------------------------------------------------------

    async def push_audio(self, samples: np.ndarray) -> None:
        """Hear the next chunk of the user's audio (16 kHz float32 mono, any length)."""
        if self._closed:
            raise RuntimeError("session is closed")
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._samples += len(samples)
        self._pushes.append((self._samples, now()))
        self._keep_audio(samples)
        for window in self._vad.push(samples):
            for event in self._policy.window(window.start, window.end, window.probability, agent_active=self.agent_active):
                await self._decide(event)
        if self._policy.user_speaking and self.config.listen_while_thinking:
            self._maybe_partial()

    def sample_time(self, sample: int) -> float | None:
        """When input sample ``sample`` reached the session (monotonic clock), if it has."""
        index = bisect_left(self._pushes, sample, key=lambda push: push[0])
        return self._pushes[index][1] if index < len(self._pushes) else None

    @property
    def agent_active(self) -> bool:
        """A committed reply is being produced or is still playing."""
        turn = self._turn
        return (turn is not None and turn.state is TurnState.COMMITTED) or now() < self._playout_end

    @property
    def idle(self) -> bool:
        """Nobody is speaking and no reply is being produced or played."""
        return self._turn is None and not self._policy.user_speaking and now() >= self._playout_end

    def is_stale(self, item: OutputItem) -> bool:
        """True for reply audio or text of a reply that was interrupted after the item was queued."""
        generation = getattr(item, "generation", None)
        return generation is not None and generation < self._stale_below and isinstance(item, (AudioOut, AssistantTextDelta))

    async def close(self) -> None:
        """Stop everything this session runs."""
        self._closed = True
        if self._turn is not None:
            await self._turn.stop(TurnState.INTERRUPTED)
        for task in [*self._background, self._partial_task]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def wait_idle(self, timeout: float) -> None:
        """Wait until no reply is being produced (used at the end of a file)."""
        deadline = now() + timeout
        while now() < deadline:
            turn = self._turn
            if turn is None or not turn.live:
                if now() >= self._playout_end:
                    return
                await asyncio.sleep(min(0.05, self._playout_end - now()))
                continue
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(turn.finished.wait(), max(0.0, deadline - now()))

    # ---- turn-taking -----------------------------------------------------------------------------

    async def _decide(self, event: Event) -> None:
        decision = event.decision
        if decision is Decision.BARGE_IN:
            await self._interrupt()
        elif decision is Decision.SPEECH_STARTED:
            self._begin_utterance(event.sample)
            self.output.put_nowait(SpeechStarted(event.sample))
        elif decision is Decision.PAUSED:
            if self.config.speculate:
                self._speculate(event.sample)
        elif decision is Decision.RESUMED:
            if self._turn is not None and self._turn.state is TurnState.SPECULATIVE:
                await self._turn.stop(TurnState.DISCARDED)
                self._turn = None
                self.stats["discarded"] += 1
        elif decision is Decision.END_OF_TURN:
            if self._turn is None or self._turn.state is not TurnState.SPECULATIVE:
                self._speculate(event.sample)
            assert self._turn is not None
            self._turn.record.mark("end_of_turn")
            self.output.put_nowait(SpeechStopped(event.sample))
            self._utterance = None
            self._turn.commit()
            self.stats["committed"] += 1

    def _keep_audio(self, samples: np.ndarray) -> None:
        if self._utterance is not None:
            self._utterance.append(samples)
            return
        self._preroll.append(samples)
        keep = self.config.prefix_padding_ms * PIPELINE_RATE // 1000
        while sum(len(s) for s in self._preroll) - len(self._preroll[0]) >= keep:
            self._preroll.popleft()

    def _begin_utterance(self, onset: int) -> None:
        pad = self.config.prefix_padding_ms * PIPELINE_RATE // 1000
        buffered = np.concatenate(list(self._preroll)) if self._preroll else np.zeros(0, np.float32)
        start_in_buffer = max(0, len(buffered) - (self._samples - onset) - pad)
        self._utterance = [buffered[start_in_buffer:]]
        self._utterance_start = self._samples - (len(buffered) - start_in_buffer)
        self._preroll.clear()
        self._partials = ("", "")
        self._partial_at = onset

    def _utterance_audio(self) -> np.ndarray:
        audio = np.concatenate(self._utterance) if self._utterance else np.zeros(0, np.float32)
        return audio[-int(self.config.max_utterance_s * PIPELINE_RATE) :]

    # ---- listen while thinking: partial transcripts and prefill ----------------------------------

    def _maybe_partial(self) -> None:
        interval = self.config.partial_interval_ms * PIPELINE_RATE // 1000
        busy = self._partial_task is not None and not self._partial_task.done()
        if busy or self._samples - self._partial_at < interval or self._turn is not None:
            return
        self._partial_at = self._samples
        self._partial_task = asyncio.create_task(self._partial(self._utterance_audio()))

    async def _partial(self, audio: np.ndarray) -> None:
        try:
            transcript = await self.models.asr.transcribe_async(audio)
        except Exception:  # noqa: BLE001 - a failed partial only costs latency
            log.exception("partial transcription failed")
            return
        if not transcript.is_speech or not self._policy.user_speaking:
            return
        self._partials = (self._partials[1], transcript.text)
        self.output.put_nowait(UserTranscriptPartial(transcript.text))
        stable = stable_prefix(*self._partials)
        if stable and stable != self._prefilled:
            self._prefilled = stable
            await self._prefill(self.conversation.user_prefix(stable))

    async def _prefill(self, prompt: str) -> None:
        try:
            await self.models.decoder.prefill(prompt)
        except Exception:  # noqa: BLE001 - a failed prefill only costs latency
            log.exception("prefill failed")

    def _spawn(self, coro) -> None:  # noqa: ANN001 - a coroutine
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ---- replying ----------------------------------------------------------------------------------

    def _speculate(self, speech_end: int) -> None:
        generation = next(self._generations)
        record = LatencyRecord(turn_id=f"turn_{next(_turn_ids)}")
        record.mark("speech_end", self.sample_time(speech_end))
        record.mark("speculation_start")
        turn = Turn(record.turn_id, generation, record, self._send)
        self._turn = turn
        self.stats["speculations"] += 1
        turn.spawn(self._reply(turn, self._utterance_audio()), "reply")

    def _send(self, item: OutputItem) -> None:
        turn = self._turn
        if isinstance(item, AudioOut):
            if turn is not None and turn.id == item.turn_id:
                turn.record.mark("first_audio_out")
            self._playout_end = max(self._playout_end, now()) + len(item.samples) / self.config.output_rate
        self.output.put_nowait(item)

    async def _reply(self, turn: Turn, audio: np.ndarray) -> None:
        status = TurnState.COMPLETED
        try:
            transcript = await self.models.asr.transcribe_async(audio)
            turn.record.mark("final_transcript")
            if transcript.is_speech:
                await self._answer(turn, transcript)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - one failed reply never ends the session
            log.exception("reply %s failed", turn.id)
            status = TurnState.FAILED
            turn.emit(ErrorEvent("reply_failed", f"the reply failed: {exc}"))
        await self._finish(turn, status)

    async def _answer(self, turn: Turn, transcript: Transcript) -> None:
        turn.user_text = transcript.text
        turn.emit(UserTranscriptFinal(turn.id, transcript.text))
        turn.emit(ReplyStarted(turn.id, turn.generation))
        clauses: asyncio.Queue[str | None] = asyncio.Queue(maxsize=16)
        speaker = turn.spawn(self._speak(turn, clauses), "speak")
        if self.config.reasoning_budget > 0:
            reasoning = await self._reason(turn, self.conversation.reasoning_prompt(transcript.text))
            prompt = self.conversation.answer_prompt(transcript.text, reasoning)
        else:
            prompt = self.conversation.reply_prompt(transcript.text)
        splitter = ThinkSplitter(thinking=False)
        segmenter = ClauseSegmenter() if self.config.stream_speech else _WholeAnswer()
        async for piece in self.models.decoder.generate(
            prompt, max_tokens=self.config.max_answer_tokens, stop=STOP_SEQUENCES, temperature=self.config.temperature
        ):
            turn.record.mark("first_token")
            for part in splitter.push(piece):
                if part.channel == "reasoning":
                    turn.emit(ReasoningDelta(turn.id, turn.generation, part.text))
                    continue
                turn.record.mark("first_answer_token")
                for clause in segmenter.push(part.text):
                    await clauses.put(clause)
        for part in splitter.flush():
            if part.channel == "answer":
                for clause in segmenter.push(part.text):
                    await clauses.put(clause)
        for clause in segmenter.flush():
            await clauses.put(clause)
        await clauses.put(None)
        await speaker

    async def _reason(self, turn: Turn, prompt: str) -> str:
        """Think first, within the budget; returns the reasoning (streamed as events, never spoken)."""
        thoughts: list[str] = []
        async for piece in self.models.decoder.generate(
            prompt, max_tokens=self.config.reasoning_budget, stop=(THINK_CLOSE, *STOP_SEQUENCES), temperature=self.config.temperature
        ):
            turn.record.mark("first_token")
            thoughts.append(piece)
            turn.emit(ReasoningDelta(turn.id, turn.generation, piece))
        reasoning = "".join(thoughts).strip()
        turn.emit(ReasoningDone(turn.id, turn.generation, reasoning))
        return reasoning

    async def _speak(self, turn: Turn, clauses: asyncio.Queue[str | None]) -> None:
        tts = self.models.tts
        while (clause := await clauses.get()) is not None:
            resampler = StreamResampler(tts.sample_rate, self.config.output_rate)
            spoken = SpokenClause(clause, 0)
            async for chunk in tts.stream(clause):
                turn.record.mark("first_tts_audio")
                out = resampler.process(chunk)
                if not turn.spoken or turn.spoken[-1] is not spoken:
                    turn.spoken.append(spoken)
                    turn.emit(AssistantTextDelta(turn.id, turn.generation, clause + " "))
                spoken.samples += len(out)
                turn.emit(AudioOut(turn.id, turn.generation, out))
            tail = resampler.process(np.zeros(0, np.float32), last=True)
            if len(tail) and turn.spoken and turn.spoken[-1] is spoken:
                spoken.samples += len(tail)
                turn.emit(AudioOut(turn.id, turn.generation, tail))

    async def _finish(self, turn: Turn, status: TurnState) -> None:
        """Close a turn that ran to its end or failed, once the user's turn is confirmed."""
        await turn.decided.wait()
        if turn.state is not TurnState.COMMITTED:
            return
        if turn.user_text is None:  # nothing but noise: no reply, no record
            self.stats["no_speech"] += 1
            turn.state = TurnState.DISCARDED
            if turn is self._turn:
                self._turn = None
            turn.finished.set()
            return
        self._close_turn(turn, status, " ".join(c.text for c in turn.spoken))

    async def _interrupt(self) -> None:
        """Barge-in: stop the reply being produced, or the finished one still playing."""
        turn = self._turn if self._turn is not None and self._turn.state is TurnState.COMMITTED else self._last_reply
        if turn is None or (turn is self._last_reply and now() >= self._playout_end):
            return
        unheard = int(max(0.0, self._playout_end - now()) * self.config.output_rate)
        if turn.live:
            await turn.stop(TurnState.INTERRUPTED)
        heard = turn.heard_text(sum(c.samples for c in turn.spoken) - unheard)
        self._stale_below = turn.generation + 1
        self._playout_end = 0.0
        self.output.put_nowait(AudioCleared(turn.id, turn.generation))
        if turn is self._last_reply:
            self.stats["interrupted"] += 1
            self.conversation.truncate_last_reply(heard)
            self.output.put_nowait(ReplyTruncated(turn.id, turn.generation, heard))
            self._last_reply = None
        else:
            self._close_turn(turn, TurnState.INTERRUPTED, heard)

    def _close_turn(self, turn: Turn, status: TurnState, heard: str) -> None:
        self.stats[status.value] += 1
        if turn.user_text:
            self.conversation.add("user", turn.user_text)
            self.conversation.add("assistant", heard)
        self.records.append(turn.record)
        self.output.put_nowait(ReplyDone(turn.id, turn.generation, status.value, heard, turn.record.as_dict()))
        if turn is self._turn:
            self._turn = None
        turn.state = status
        self._last_reply = turn if status is TurnState.COMPLETED else None
        turn.finished.set()
        self._prefilled = ""
        if self.config.listen_while_thinking:
            self._spawn(self._prefill(self.conversation.history_prompt()))


class _WholeAnswer:
    """Segmenter stand-in for the naive cascade: the whole answer is one clause, spoken at the end."""

    def __init__(self) -> None:
        self._text: list[str] = []

    def push(self, delta: str) -> list[str]:
        self._text.append(delta)
        return []

    def flush(self) -> list[str]:
        text = speakable("".join(self._text))
        return [text] if text else []
