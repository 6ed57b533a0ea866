"""A turn from the user's audio to the reply's words: the final transcript, then the brain's reasoning and answer,
the answer cut into clauses for the speaking stage as it is written (think while speaking)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator

import numpy as np

from audio.samples import PIPELINE_RATE
from realtime.asr import WhisperTranscriber
from realtime.brain import BrainSession, ReplyPiece, ReplyRequest
from realtime.conversation import Message, new_item_id
from realtime.decoder import Hold
from realtime.events import ReasoningDelta, ReasoningDone, ReplyStarted, ToolCallDelta, ToolCallDone, ToolCallStarted, UserTranscriptFinal
from realtime.reasoning import Piece
from realtime.session.config import SessionConfig
from realtime.session.speaking import Clauses, Speaker
from realtime.session.turn import Turn
from realtime.tools import CallPiece
from tts import ClauseSegmenter, RepetitionGuard

MAX_QUEUED_CLAUSES = 2
"""Answer clauses written ahead of their synthesis; beyond that the writer waits, and the embedded decoder holds. The
synthesis takes a clause in a fraction of the time the decoder writes one, so the queue fills only while the speech
is paused or the reply gives way to another session's first audio (:mod:`realtime.priority`)."""


class Replier:
    """Transcribes a turn and writes its reply with ``brain``; ``speaker`` speaks it."""

    def __init__(self, asr: WhisperTranscriber, brain: BrainSession, speaker: Speaker) -> None:
        self._asr = asr
        self._brain = brain
        self.speaker = speaker

    async def transcribe(self, turn: Turn, audio: np.ndarray) -> str:
        """The final transcript of ``audio`` (16 kHz float32 mono): emitted, and returned ("" for no speech)."""
        transcript = await self._asr.transcribe_async(audio)
        turn.record.mark("final_transcript")
        text = transcript.text if transcript.is_speech else ""
        turn.user_audio_ms = len(audio) * 1000 // PIPELINE_RATE
        turn.user_text = text
        turn.transcribed.set()
        turn.emit(UserTranscriptFinal(turn.id, turn.user_item_id or "", text, len(audio) / PIPELINE_RATE))
        return text

    async def answer(self, turn: Turn, config: SessionConfig, brain: BrainSession | None = None) -> None:
        """Stream the reply: reasoning as events, tool calls as items, the answer clause by clause into speech (or,
        with ``stream_speech`` off, the whole answer once written; text only when the reply is not spoken). Returns
        when the last clause has been spoken. ``brain``: another brain session than the session's own (an
        out-of-band reply's)."""
        spoken = self.begin(turn, config)
        clauses: Clauses = asyncio.Queue(maxsize=MAX_QUEUED_CLAUSES)
        speak = self.speaker.speak if spoken else self.speaker.write
        speaking = turn.spawn(speak(turn, clauses, rate=config.output_rate, stream=config.stream_speech), "speak")

        def hold() -> bool:
            """The reply's next words are not needed yet: its synthesis is clauses behind (the speech is paused, or
            the reply gives way to another session's first audio: :mod:`realtime.priority`), or its first clause is
            being synthesised (on two cores the first audio comes sooner with the CPU to itself)."""
            stamps = turn.record.stamps
            return clauses.full() or (spoken and "first_clause" in stamps and "first_tts_audio" not in stamps)

        try:
            await self._write(turn, config, brain or self._brain, clauses, speaking, hold)
        except Exception:
            await _last_clause(clauses, speaking)
            raise
        finally:
            speaking.cancel()  # a stopped reply's speech ends with it (a finished one has ended already)

    def begin(self, turn: Turn, config: SessionConfig) -> bool:
        """The reply begins: it gets its assistant item and the client is told. Returns whether it is spoken."""
        options = turn.options
        spoken = config.audio_output if options.audio_output is None else options.audio_output
        turn.item_id = new_item_id()
        turn.emit(ReplyStarted(turn.id, turn.generation, turn.item_id, spoken, options.metadata, options.out_of_band))
        return spoken

    async def _write(
        self, turn: Turn, config: SessionConfig, brain: BrainSession, clauses: Clauses, speaking: asyncio.Task[None], hold: Hold
    ) -> None:
        """Write the reply into ``clauses`` for the ``speaking`` stage and wait for its speech to end. Raises what the
        brain raises, or what the speaking stage raised (it then takes no more clauses)."""
        segmenter = ClauseSegmenter()
        guard = RepetitionGuard()
        held: list[str] = []
        reasoning: list[str] = []

        async def say(new_clauses: list[str]) -> bool:
            """Queue clauses for speech (or hold them, for the naive cascade); False once the model loops."""
            for clause in new_clauses:
                if guard.repeats(clause):
                    return False
                if config.stream_speech:
                    turn.record.mark("first_clause")
                    await _hand_over(clauses, clause, speaking)
                else:
                    held.append(clause)
            return True

        async with contextlib.aclosing(self._think(turn, config, brain, hold)) as pieces:
            async for piece in pieces:
                turn.record.mark("first_token")
                if isinstance(piece, CallPiece):
                    _call(turn, piece)
                    continue
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
            turn.record.mark("first_clause")
            await _hand_over(clauses, " ".join(held), speaking)
        await _hand_over(clauses, None, speaking)
        await speaking

    async def _think(self, turn: Turn, config: SessionConfig, brain: BrainSession, hold: Hold) -> AsyncGenerator[ReplyPiece, None]:
        """Reasoning, answer text and tool calls: the turn's script, or the brain's reply."""
        if turn.script is not None:
            yield Piece("answer", turn.script)
            return
        options = turn.options
        request = ReplyRequest(
            turn.user_text, max_tokens=options.max_answer_tokens or config.max_answer_tokens,
            reasoning_budget=config.reasoning_budget, temperature=config.temperature, mode=config.reasoning_mode,
            instructions=options.instructions, tools=options.tools or config.tools, context=turn.context, hold=hold,
        )
        async with contextlib.aclosing(brain.reply(request)) as pieces:
            async for piece in pieces:
                yield piece


async def _hand_over(clauses: Clauses, clause: str | None, speaking: asyncio.Task[None]) -> None:
    """Queue ``clause`` for the ``speaking`` stage, waiting while the queue is full. Raises the stage's error once it
    has failed (a synthesiser that raised takes no more clauses: the reply fails instead of waiting for it forever)."""
    putting = asyncio.ensure_future(clauses.put(clause))
    try:
        await asyncio.wait({putting, speaking}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        putting.cancel()
    if speaking.done() and not speaking.cancelled() and (error := speaking.exception()) is not None:
        raise error


async def _last_clause(clauses: Clauses, speaking: asyncio.Task[None]) -> None:
    """The reply failed: its speech ends with the clause being spoken (its words and its audio then agree), the
    clauses queued after it are dropped. Returns once the speaking stage ended (or had failed itself)."""
    while not clauses.empty():
        clauses.get_nowait()
    clauses.put_nowait(None)
    await asyncio.wait({speaking})


def _call(turn: Turn, piece: CallPiece) -> None:
    """A piece of a tool call becomes the call's item and its events."""
    call = next((c for c in turn.calls if c.call_id == piece.call_id), None)
    if call is None:
        call = Message("assistant", "", kind="function_call", call_id=piece.call_id, name=piece.name)
        turn.calls_first = turn.calls_first or turn.record.stamps.get("first_answer_token") is None
        turn.calls.append(call)
        turn.emit(ToolCallStarted(turn.id, turn.generation, call.id, piece.call_id, piece.name))
    elif piece.done:
        call.text = piece.arguments
        turn.emit(ToolCallDone(turn.id, turn.generation, call.id, piece.call_id, piece.name, piece.arguments))
    elif piece.arguments:
        turn.emit(ToolCallDelta(turn.id, turn.generation, call.id, piece.arguments))
