"""A turn from the user's audio to the reply's words: the final transcript, then the brain's reasoning and answer,
the answer cut into clauses for the speaking stage as it is written (think while speaking)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator

import numpy as np

from realtime.asr import WhisperTranscriber
from realtime.brain import BrainSession, ReplyRequest
from realtime.conversation import new_item_id
from realtime.events import ReasoningDelta, ReasoningDone, ReplyStarted, UserTranscriptFinal
from realtime.reasoning import Piece
from realtime.session.config import SessionConfig
from realtime.session.speaking import Clauses, Speaker
from realtime.session.turn import Turn
from tts import ClauseSegmenter, RepetitionGuard

MAX_QUEUED_CLAUSES = 16
"""Answer clauses written ahead of the speech (the decoder waits beyond that)."""


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
        turn.emit(UserTranscriptFinal(turn.id, turn.user_item_id or "", text))
        return text

    async def answer(self, turn: Turn, config: SessionConfig) -> None:
        """Stream the reply: reasoning as events, the answer clause by clause into speech (or, with
        ``stream_speech`` off, the whole answer once written). Returns when the last clause has been spoken."""
        turn.item_id = new_item_id()
        turn.emit(ReplyStarted(turn.id, turn.generation, turn.item_id))
        clauses: Clauses = asyncio.Queue(maxsize=MAX_QUEUED_CLAUSES)
        speaking = turn.spawn(self.speaker.speak(turn, clauses, rate=config.output_rate, stream=config.stream_speech), "speak")
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
                    await clauses.put(clause)
                else:
                    held.append(clause)
            return True

        async with contextlib.aclosing(self._think(turn, config)) as pieces:
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
        await speaking

    async def _think(self, turn: Turn, config: SessionConfig) -> AsyncGenerator[Piece, None]:
        """Reasoning and answer text: the turn's script, or the brain's reply."""
        if turn.script is not None:
            yield Piece("answer", turn.script)
            return
        request = ReplyRequest(
            turn.user_text, max_tokens=config.max_answer_tokens, reasoning_budget=config.reasoning_budget,
            temperature=config.temperature, mode=config.reasoning_mode,
        )
        async with contextlib.aclosing(self._brain.reply(request)) as pieces:
            async for piece in pieces:
                yield piece
