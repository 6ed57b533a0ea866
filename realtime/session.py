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
import logging
from bisect import bisect_left
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import numpy as np

from realtime.asr import Transcript, looks_complete, same_words, stable_prefix
from realtime.audio import PIPELINE_RATE, StreamResampler
from realtime.conversation import DEFAULT_INSTRUCTIONS, STOP_SEQUENCES, Conversation, new_item_id
from realtime.events import (
    AssistantTextDelta,
    AudioCleared,
    AudioOut,
    ErrorEvent,
    InputCleared,
    InputCommitted,
    ItemAdded,
    ItemDeleted,
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
from realtime.reasoning import THINK_CLOSE, Piece, ReplyMode, ThinkSplitter
from realtime.turn import SpokenClause, Turn, TurnState
from tts import ClauseSegmenter, RepetitionGuard, TextStreamingSynthesizer
from vad import VoiceActivityDetector

log = logging.getLogger(__name__)

_turn_ids = itertools.count(1)

SECONDS_PER_WORD = 0.35
"""Estimated speaking time of a word (~170 words a minute): with bi-streaming synthesis, audio is credited to the
clauses in order at this rate, for the cut to what was heard."""


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
    answer_early: bool = False
    """Start the reply on a partial transcript that reads as a complete utterance, while the user is still
    speaking; the final transcript at the first pause confirms it (or a reply to it replaces it)."""
    stream_speech: bool = True
    """Speak each answer clause as soon as it is written (off: synthesise the whole answer first)."""
    turn_detection: bool = True
    """Voice activity ends the user's turn; off, the client commits the input itself."""
    auto_respond: bool = True
    """Reply when voice activity ends the user's turn (off: only transcribe; the client asks for replies)."""
    interrupt_response: bool = True
    """Speech over a reply interrupts it (barge-in)."""
    reasoning_mode: ReplyMode = "budget"
    """For an audio LLM brain: plain decoding within the budget, or a Mind-Paced Speaking schedule."""
    audio_block_seconds: float = 2.0
    """For an audio LLM brain: audio is encoded and prefilled in blocks this long while the user speaks."""

    @classmethod
    def naive(cls, **overrides: object) -> "SessionConfig":
        """The naive cascade: wait for the end of turn, transcribe, write the whole answer, then speak."""
        return cls(listen_while_thinking=False, speculate=False, answer_early=False, stream_speech=False, **overrides)  # type: ignore[arg-type]


class VoiceSession:
    """One conversation. Feed audio with :meth:`push_audio`; read :attr:`output` in order."""

    def __init__(self, models: Models, config: SessionConfig | None = None) -> None:
        self.models = models
        self.config = config or SessionConfig()
        self.output: asyncio.Queue[OutputItem] = asyncio.Queue()
        self.observers: list[Callable[[OutputItem], None]] = []
        """Called with every output item as it is queued (an event bus such as MQTT listens here)."""
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
        self._user_item_id = new_item_id()
        self._turn: Turn | None = None
        self._last_reply: Turn | None = None
        self._transcribing: Turn | None = None
        self._generations = itertools.count(1)
        self._stale_below = 0
        self._playout_end = 0.0
        self._partial_task: asyncio.Task[None] | None = None
        self._partial_at = 0
        self._partials = ("", "")
        self._prefilled = ""
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False
        self._listener = (
            models.audio_llm.conversation(self.config.instructions, block_seconds=self.config.audio_block_seconds)
            if models.audio_llm is not None
            else None
        )
        """The audio LLM's conversation (None for the cascade): it hears the user's audio as it arrives."""
        self._prefill_history()

    # ---- input ---------------------------------------------------------------------------------

    async def push_audio(self, samples: np.ndarray) -> None:
        """Hear the next chunk of the user's audio (16 kHz float32 mono, any length)."""
        if self._closed:
            raise RuntimeError("session is closed")
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._samples += len(samples)
        self._pushes.append((self._samples, now()))
        if not self.config.turn_detection:
            self._utterance = self._utterance or []
            self._hear(samples)
            return
        self._keep_audio(samples)
        for window in self._vad.push(samples):
            active = self.agent_active and self.config.interrupt_response
            for event in self._policy.window(window.start, window.end, window.probability, agent_active=active):
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
        return (turn is not None and turn.respond and turn.state is TurnState.COMMITTED) or now() < self._playout_end

    @property
    def idle(self) -> bool:
        """Nobody is speaking and no reply is being produced or played."""
        return self._turn is None and not self._policy.user_speaking and now() >= self._playout_end

    def is_stale(self, item: OutputItem) -> bool:
        """True for reply audio or text of a reply that was interrupted after the item was queued."""
        generation = getattr(item, "generation", None)
        return generation is not None and generation < self._stale_below and isinstance(item, (AudioOut, AssistantTextDelta))

    # ---- client control (the wire protocol's commands) --------------------------------------------

    def configure(self, config: SessionConfig) -> None:
        """Apply new settings; a reply in progress finishes under the old ones."""
        self.config = config
        self.conversation.instructions = config.instructions
        self._policy.config = config.policy
        self._prefill_history()

    async def commit_input(self, event_id: str | None = None) -> None:
        """End the user's turn on the audio heard so far (manual turn detection); transcribe it, do not reply."""
        audio = self._utterance_audio()
        if len(audio) < PIPELINE_RATE // 10:
            self._error("input_audio_buffer_commit_empty", "the input audio buffer holds less than 100 ms of audio", event_id)
            return
        if self._turn is not None and self._turn.state is TurnState.SPECULATIVE:
            await self._discard(self._turn)
        turn = self._start_turn(self._samples, respond=False)
        self._end_utterance()
        turn.commit()

    def clear_input(self) -> None:
        """Drop the user's uncommitted audio."""
        self._utterance = [] if self._policy.user_speaking and self.config.turn_detection else None
        self._preroll.clear()
        self._put(InputCleared())

    def add_message(self, role: str, text: str, item_id: str | None = None, event_id: str | None = None) -> None:
        """Add a text message to the history (as a client's ``conversation.item.create``)."""
        if role not in ("user", "assistant", "system"):
            self._error("invalid_value", f"role must be user, assistant or system, not {role!r}", event_id)
            return
        if item_id and self.conversation.find(item_id):
            self._error("invalid_value", f"an item with id {item_id!r} already exists", event_id)
            return
        previous = self.conversation.messages[-1].id if self.conversation.messages else None
        message = self.conversation.add(role, text, item_id)  # type: ignore[arg-type]
        if message is None:
            self._error("invalid_value", "the message has no text", event_id)
            return
        self._put(ItemAdded(message.id, role, message.text, previous))
        self._prefill_history()

    def delete_message(self, item_id: str, event_id: str | None = None) -> None:
        if not self.conversation.delete(item_id):
            self._error("item_not_found", f"no conversation item {item_id!r}", event_id)
            return
        self._put(ItemDeleted(item_id))
        self._prefill_history()

    async def truncate_message(self, item_id: str, audio_end_ms: int, event_id: str | None = None) -> None:
        """Cut an assistant reply to the audio the client played (``conversation.item.truncate``)."""
        turn = next((t for t in (self._turn, self._last_reply) if t is not None and t.item_id == item_id), None)
        message = self.conversation.find(item_id)
        if turn is None and (message is None or message.role != "assistant"):
            self._error("item_not_found", f"no spoken assistant item {item_id!r}", event_id)
            return
        if audio_end_ms < 0:
            self._error("invalid_value", "audio_end_ms must not be negative", event_id)
            return
        if turn is None:  # an older reply: its audio is gone, keep the proportion of words
            self._put(ReplyTruncated(item_id, message.text, audio_end_ms))  # type: ignore[union-attr]
            return
        await self._interrupt(turn, heard_samples=audio_end_ms * self.config.output_rate // 1000)

    async def create_response(self, event_id: str | None = None) -> None:
        """Reply to the conversation as it stands (``response.create``)."""
        if self._turn is not None and self._turn.respond and self._turn.state is TurnState.COMMITTED:
            self._error("conversation_already_has_active_response", "a response is already in progress", event_id)
            return
        self._start_turn(self._samples, respond=True, hear=False).commit()

    async def say(self, text: str) -> None:
        """Speak ``text`` as the assistant's next reply (no model writes it); it enters the history as heard."""
        if not any(c.isalnum() for c in text):
            self._error("invalid_value", "there is nothing to say")
            return
        turn = self._start_turn(self._samples, respond=True, hear=False)
        turn.script = text
        turn.commit()

    async def cancel_response(self, event_id: str | None = None) -> None:
        """Stop the reply being produced or played (``response.cancel``)."""
        turn = self._current_reply()
        if turn is None:
            self._error("response_cancel_not_active", "there is no response to cancel", event_id)
            return
        await self._interrupt(turn, status=TurnState.CANCELLED)

    async def close(self) -> None:
        """Stop everything this session runs."""
        self._closed = True
        for turn in (self._turn, self._transcribing):
            if turn is not None:
                await turn.stop(TurnState.INTERRUPTED)
        if self._listener is not None:
            self._listener.close()
        for task in [*self._background, self._partial_task]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def wait_idle(self, timeout: float) -> None:
        """Wait until no reply is being produced or played (used at the end of a file)."""
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

    def _error(self, code: str, message: str, event_id: str | None = None) -> None:
        self._put(ErrorEvent(code, message, event_id))

    # ---- turn-taking -----------------------------------------------------------------------------

    async def _decide(self, event: Event) -> None:
        decision = event.decision
        if decision is Decision.BARGE_IN:
            turn = self._current_reply()
            if turn is not None:
                await self._interrupt(turn)
        elif decision is Decision.SPEECH_STARTED:
            self._begin_utterance(event.sample)
            self._put(SpeechStarted(event.sample, self._user_item_id))
        elif decision is Decision.PAUSED:
            turn = self._turn
            if turn is not None and turn.early and turn.verification is None and turn.state is TurnState.SPECULATIVE:
                self._start_verification(turn, event.sample)
            elif self.config.speculate and turn is None:
                self._start_turn(event.sample, respond=self.config.auto_respond)
        elif decision is Decision.RESUMED:
            if self._turn is not None and self._turn.state is TurnState.SPECULATIVE:
                await self._discard(self._turn)
        elif decision is Decision.END_OF_TURN and self._utterance is not None:
            turn = self._turn
            if turn is None or turn.state is not TurnState.SPECULATIVE or turn.user_item_id != self._user_item_id:
                turn = self._start_turn(event.sample, respond=self.config.auto_respond)
            turn.record.mark("end_of_turn")
            self._put(SpeechStopped(event.sample, turn.user_item_id))
            if turn.early and turn.verification is None:  # it began during the pause: verify on this utterance
                self._start_verification(turn, event.sample)
            self._end_utterance()
            self.stats["committed"] += 1
            if turn.early and not turn.verification.done():  # type: ignore[union-attr]
                turn.commit_when_verified = True  # _verify commits it, or the turn that replaces it
            else:
                turn.commit()

    async def _discard(self, turn: Turn) -> None:
        """The user went on speaking (or said something else): drop the speculative reply without a sound."""
        if turn.verification is not None and turn.verification is not asyncio.current_task():
            turn.verification.cancel()
        await turn.stop(TurnState.DISCARDED)
        if turn is self._turn:
            self._turn = None
        self.stats["discarded"] += 1
        if self._listener is not None:
            self._listener.rewind_to_heard()

    def _keep_audio(self, samples: np.ndarray) -> None:
        if self._utterance is not None:
            self._hear(samples)
            return
        self._preroll.append(samples)
        keep = self.config.prefix_padding_ms * PIPELINE_RATE // 1000
        while sum(len(s) for s in self._preroll) - len(self._preroll[0]) >= keep:
            self._preroll.popleft()

    def _begin_utterance(self, onset: int) -> None:
        pad = self.config.prefix_padding_ms * PIPELINE_RATE // 1000
        buffered = np.concatenate(list(self._preroll)) if self._preroll else np.zeros(0, np.float32)
        start_in_buffer = max(0, len(buffered) - (self._samples - onset) - pad)
        self._utterance = []
        self._hear(buffered[start_in_buffer:])
        self._utterance_start = self._samples - (len(buffered) - start_in_buffer)
        self._preroll.clear()
        self._partials = ("", "")
        self._partial_at = onset

    def _hear(self, samples: np.ndarray) -> None:
        """Add audio to the user's utterance; an audio LLM brain encodes and prefills it as it arrives."""
        assert self._utterance is not None
        self._utterance.append(samples)
        if self._listener is not None and len(samples):
            self._spawn(self._listener.hear(samples))  # tasks start in order: the audio stays in order

    def _end_utterance(self) -> None:
        """The user's audio so far became a message: the next speech is a new one."""
        previous = self.conversation.messages[-1].id if self.conversation.messages else None
        assert self._turn is not None
        self._put(InputCommitted(self._turn.user_item_id or "", previous))
        self._utterance = None
        self._user_item_id = new_item_id()

    def _utterance_audio(self) -> np.ndarray:
        audio = np.concatenate(self._utterance) if self._utterance else np.zeros(0, np.float32)
        return audio[-int(self.config.max_utterance_s * PIPELINE_RATE) :]

    # ---- listen while thinking: partial transcripts and prefill ----------------------------------

    def _maybe_partial(self) -> None:
        interval = self.config.partial_interval_ms * PIPELINE_RATE // 1000
        busy = self._partial_task is not None and not self._partial_task.done()
        early = self._turn is not None and self._turn.early and self._turn.verification is None
        if busy or self._samples - self._partial_at < interval or (self._turn is not None and not early):
            return
        self._partial_at = self._samples
        self._partial_task = asyncio.create_task(self._partial(self._utterance_audio(), self._user_item_id))

    async def _partial(self, audio: np.ndarray, item_id: str) -> None:
        try:
            transcript = await self.models.asr.transcribe_async(audio)
        except Exception:  # noqa: BLE001 - a failed partial only costs latency
            log.exception("partial transcription failed")
            return
        if not transcript.is_speech or not self._policy.user_speaking or item_id != self._user_item_id:
            return
        self._partials = (self._partials[1], transcript.text)
        self._put(UserTranscriptPartial(item_id, transcript.text))
        turn = self._turn
        speaking = not self._policy.paused  # during a pause, the pause's own speculation decides
        if speaking and turn is not None and turn.early and turn.verification is None and not same_words(turn.user_text, transcript.text):
            await self._discard(turn)  # the user said more than the early reply answers
        if speaking and self._turn is None and self._may_answer_early(transcript.text):
            self._start_turn(None, respond=True, text=transcript.text).early = True
            self.stats["early"] += 1
            return
        stable = stable_prefix(*self._partials)
        if stable and stable != self._prefilled and self.models.decoder is not None and self._turn is None:
            self._prefilled = stable
            await self._prefill(self.conversation.user_prefix(stable))

    def _may_answer_early(self, text: str) -> bool:
        """Whether to start answering a partial transcript before the user has even paused."""
        config = self.config
        return config.answer_early and config.auto_respond and self._listener is None and looks_complete(text)

    def _start_verification(self, turn: Turn, speech_end: int) -> None:
        turn.record.mark("speech_end", self.sample_time(speech_end))
        turn.record.mark("speculation_start")
        turn.verification = asyncio.create_task(self._verify(turn, speech_end, self._utterance_audio()))

    async def _verify(self, turn: Turn, speech_end: int, audio: np.ndarray) -> None:
        """At the first pause, the final transcript confirms an early reply, or a reply to it replaces it."""
        transcript = await self.models.asr.transcribe_async(audio)
        turn.record.mark("final_transcript")
        text = transcript.text if transcript.is_speech else ""
        if turn is not self._turn or turn.state is not TurnState.SPECULATIVE:
            return
        commit, item_id, ended = turn.commit_when_verified, turn.user_item_id, turn.record.stamps.get("end_of_turn")
        if same_words(text, turn.user_text):
            self.stats["early_confirmed"] += 1
            turn.user_text = text
        else:
            await self._discard(turn)
            turn = self._start_turn(speech_end, respond=True, text=text)
            turn.user_item_id = item_id
            turn.record.mark("final_transcript")
        turn.emit_first(UserTranscriptFinal(turn.id, item_id or "", text))
        if commit:
            turn.record.mark("end_of_turn", ended)
            turn.commit()

    def _prefill_history(self) -> None:
        if self.config.listen_while_thinking and not self._closed and self.models.decoder is not None:
            self._prefilled = ""
            self._spawn(self._prefill(self.conversation.history_prompt()))

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

    def _start_turn(self, speech_end: int | None, *, respond: bool, hear: bool = True, text: str | None = None) -> Turn:
        """A new turn on the utterance so far (``hear``; or on its words, ``text``, when already known), or a
        reply to the history as it is. ``speech_end`` is None while the user is still speaking."""
        record = LatencyRecord(turn_id=f"turn_{next(_turn_ids)}")
        if speech_end is not None:
            record.mark("speech_end", self.sample_time(speech_end))
            record.mark("speculation_start")
        turn = Turn(record.turn_id, next(self._generations), record, self._send, respond=respond)
        earlier = self._transcribing
        self._turn = turn
        self.stats["speculations"] += 1
        if text is not None:
            hear = False
            turn.user_item_id, turn.user_text = self._user_item_id, text
        if hear:
            turn.user_item_id = self._user_item_id
            self._transcribing = turn
        turn.spawn(self._run_turn(turn, self._utterance_audio() if hear else None, earlier), "turn")
        return turn

    def _put(self, item: OutputItem) -> None:
        self.output.put_nowait(item)
        for observer in self.observers:
            try:
                observer(item)
            except Exception:  # noqa: BLE001 - an observer never breaks the conversation
                log.exception("session observer failed")

    def _send(self, item: OutputItem) -> None:
        turn = self._turn
        if isinstance(item, AudioOut):
            if turn is not None and turn.id == item.turn_id:
                turn.record.mark("first_audio_out")
            self._playout_end = max(self._playout_end, now()) + len(item.samples) / self.config.output_rate
        self._put(item)

    async def _run_turn(self, turn: Turn, audio: np.ndarray | None, earlier: Turn | None) -> None:
        status = TurnState.COMPLETED
        try:
            if audio is not None and self._listener is not None:  # the audio LLM hears the audio itself
                turn.spawn(self._transcribe(turn, audio), "transcribe")
            elif audio is not None:
                transcript = await self._transcribe(turn, audio)
                turn.user_text = transcript.text if transcript.is_speech else ""
            elif earlier is not None:  # a reply asked for while the last input is still being transcribed
                await earlier.finished.wait()
            if turn.respond and turn.user_text != "":
                await self._answer(turn)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - one failed reply never ends the session
            log.exception("turn %s failed", turn.id)
            status = TurnState.FAILED
            turn.emit(ErrorEvent("reply_failed", f"the reply failed: {exc}"))
        await self._finish(turn, status)

    async def _transcribe(self, turn: Turn, audio: np.ndarray) -> Transcript:
        transcript = await self.models.asr.transcribe_async(audio)
        turn.record.mark("final_transcript")
        text = transcript.text if transcript.is_speech else ""
        if self._listener is not None:
            turn.user_text = text or None
        turn.emit(UserTranscriptFinal(turn.id, turn.user_item_id or "", text))
        return transcript

    async def _answer(self, turn: Turn) -> None:
        """Stream the reply: reasoning as events, the answer clause by clause into speech."""
        turn.item_id = new_item_id()
        turn.emit(ReplyStarted(turn.id, turn.generation, turn.item_id))
        clauses: asyncio.Queue[str | None] = asyncio.Queue(maxsize=16)
        speaker = turn.spawn(self._speak(turn, clauses), "speak")
        segmenter = ClauseSegmenter()
        guard = RepetitionGuard()
        held: list[str] = []
        reasoning: list[str] = []

        async def say(new_clauses: list[str]) -> bool:
            """Queue clauses for speech (or hold them, for the naive cascade); False once the model loops."""
            for clause in new_clauses:
                if guard.repeats(clause):
                    return False
                if self.config.stream_speech:
                    await clauses.put(clause)
                else:
                    held.append(clause)
            return True

        async with contextlib.aclosing(self._think(turn)) as pieces:
            async for piece in pieces:
                turn.record.mark("first_token")
                if piece.channel == "reasoning":
                    reasoning.append(piece.text)
                    turn.emit(ReasoningDelta(turn.id, turn.generation, piece.text))
                    continue
                if reasoning and turn.record.stamps.get("first_answer_token") is None:
                    turn.emit(ReasoningDone(turn.id, turn.generation, "".join(reasoning).strip()))
                turn.record.mark("first_answer_token")
                if not await say(segmenter.push(piece.text)):
                    break
            else:
                await say(segmenter.flush())
        if held:
            await clauses.put(" ".join(held))
        await clauses.put(None)
        await speaker

    async def _think(self, turn: Turn) -> AsyncIterator[Piece]:
        """Reasoning and answer text: from the audio LLM, or from the cascade's decoder."""
        config = self.config
        if turn.script is not None:
            yield Piece("answer", turn.script)
            return
        if self._listener is not None:
            async for piece in self._listener.reply(
                max_tokens=config.max_answer_tokens, reasoning_budget=config.reasoning_budget,
                temperature=config.temperature, mode=config.reasoning_mode,
            ):
                yield piece
            return
        decoder = self.models.decoder
        assert decoder is not None, "the cascade needs a text decoder"
        prompt = self.conversation.reply_prompt(turn.user_text)
        if config.reasoning_budget > 0:  # formulation stream, then an articulation stream that sees it
            thoughts: list[str] = []
            async for text in decoder.generate(
                self.conversation.reasoning_prompt(turn.user_text), max_tokens=config.reasoning_budget,
                stop=(THINK_CLOSE, *STOP_SEQUENCES), temperature=config.temperature,
            ):
                thoughts.append(text)
                yield Piece("reasoning", text)
            prompt = self.conversation.answer_prompt(turn.user_text, "".join(thoughts))
        splitter = ThinkSplitter(thinking=False)
        async for text in decoder.generate(prompt, max_tokens=config.max_answer_tokens, stop=STOP_SEQUENCES, temperature=config.temperature):
            for piece in splitter.push(text):
                yield piece
        for piece in splitter.flush():
            yield piece

    async def _speak(self, turn: Turn, clauses: asyncio.Queue[str | None]) -> None:
        tts = self.models.tts
        if isinstance(tts, TextStreamingSynthesizer) and self.config.stream_speech:
            await self._speak_text_stream(turn, clauses, tts)
            return
        while (clause := await clauses.get()) is not None:
            resampler = StreamResampler(tts.sample_rate, self.config.output_rate)
            spoken = SpokenClause(clause, 0)
            async for chunk in tts.stream(clause, trim_lead=not turn.spoken):
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

    async def _speak_text_stream(self, turn: Turn, clauses: asyncio.Queue[str | None], tts: TextStreamingSynthesizer) -> None:
        """One synthesis for the whole answer (CosyVoice2's bi-streaming): each clause is handed over as soon as it
        is written. Which words a chunk of audio speaks is not known, so audio is credited to the clauses in order
        at :data:`SECONDS_PER_WORD` (the last clause handed over takes any excess); clauses left uncredited when
        the synthesis ends were spoken too."""
        handed: deque[SpokenClause] = deque()
        per_word = int(SECONDS_PER_WORD * self.config.output_rate)

        async def texts() -> AsyncIterator[str]:
            while (clause := await clauses.get()) is not None:
                handed.append(SpokenClause(clause, 0))
                yield clause + " "

        def credit(samples: int) -> None:
            while samples:
                current = turn.spoken[-1] if turn.spoken else None
                room = len(current.text.split()) * per_word - current.samples if current else 0
                if room <= 0 and handed:
                    turn.spoken.append(handed.popleft())
                    turn.emit(AssistantTextDelta(turn.id, turn.generation, turn.spoken[-1].text + " "))
                    continue
                if current is None:
                    return
                take = samples if room <= 0 else min(room, samples)
                current.samples += take
                samples -= take

        resampler = StreamResampler(tts.sample_rate, self.config.output_rate)
        async with contextlib.aclosing(tts.stream_text(texts())) as chunks:
            async for chunk in chunks:
                turn.record.mark("first_tts_audio")
                if len(out := resampler.process(chunk)):
                    credit(len(out))
                    turn.emit(AudioOut(turn.id, turn.generation, out))
        if len(tail := resampler.process(np.zeros(0, np.float32), last=True)):
            credit(len(tail))
            turn.emit(AudioOut(turn.id, turn.generation, tail))
        while handed:
            turn.spoken.append(handed.popleft())
            turn.emit(AssistantTextDelta(turn.id, turn.generation, turn.spoken[-1].text + " "))

    async def _finish(self, turn: Turn, status: TurnState) -> None:
        """Close a turn that ran to its end or failed, once the user's turn is confirmed."""
        await turn.decided.wait()
        if turn is self._transcribing:
            self._transcribing = None
        if turn.state is not TurnState.COMMITTED:
            return
        if turn.user_text == "":  # nothing but noise: no reply, no record, no message
            self.stats["no_speech"] += 1
            turn.state = TurnState.DISCARDED
            self._put(ItemDeleted(turn.user_item_id or ""))
            if turn is self._turn:
                self._turn = None
            turn.finished.set()
            return
        self._close_turn(turn, status, " ".join(c.text for c in turn.spoken))

    async def _listener_done(self, heard: str) -> None:
        """The audio LLM keeps the human audio and the answer as heard (a reply cancelled before it began
        leaves nothing to finish)."""
        with contextlib.suppress(RuntimeError):
            await self._listener.finish_turn(heard)  # type: ignore[union-attr]

    def _current_reply(self) -> Turn | None:
        """The reply being produced, or the finished one whose audio is still playing."""
        turn = self._turn
        if turn is not None and turn.respond and turn.state is TurnState.COMMITTED:
            return turn
        if self._last_reply is not None and now() < self._playout_end:
            return self._last_reply
        return None

    async def _interrupt(self, turn: Turn, *, status: TurnState = TurnState.INTERRUPTED, heard_samples: int | None = None) -> None:
        """Stop ``turn`` (barge-in, cancel or truncate): cancel its tasks, clear queued audio, cut history."""
        unheard = int(max(0.0, self._playout_end - now()) * self.config.output_rate)
        produced = sum(c.samples for c in turn.spoken)
        played = max(0, produced - unheard) if heard_samples is None else min(heard_samples, produced)
        if turn.live:
            await turn.stop(status)
        heard = turn.heard_text(played)
        self._stale_below = turn.generation + 1
        self._playout_end = 0.0
        self._put(AudioCleared(turn.id, turn.generation))
        if turn is self._last_reply:
            self.stats[status.value] += 1
            self.conversation.truncate(turn.item_id or "", heard)
            self._put(ReplyTruncated(turn.item_id or "", heard, played * 1000 // self.config.output_rate))
            self._last_reply = None
            self._prefill_history()
        else:
            self._close_turn(turn, status, heard)

    def _close_turn(self, turn: Turn, status: TurnState, heard: str) -> None:
        if self._listener is not None and turn.item_id is not None and turn.script is None:
            self._spawn(self._listener_done(heard))
        if turn.user_text:
            self.conversation.add("user", turn.user_text, turn.user_item_id)
        if turn.respond:
            self.stats[status.value] += 1
        if turn.item_id is not None:  # the reply started: the client saw it begin
            self.conversation.add("assistant", heard, turn.item_id)
            self.records.append(turn.record)
            self._put(
                ReplyDone(turn.id, turn.generation, turn.item_id, status.value, heard, turn.record.as_dict())
            )
        if turn is self._turn:
            self._turn = None
        turn.state = status
        self._last_reply = turn if turn.respond and status is TurnState.COMPLETED else None
        turn.finished.set()
        self._prefill_history()
