"""The speaking stage: answer clauses in, reply audio out, each clause's words shown as its audio starts.

Two strategies: clause by clause (one synthesis per clause, its first audio as soon as the clause is written), or,
with a text-streaming synthesiser (CosyVoice2), one synthesis for the whole answer fed clause by clause
(bi-streaming), its audio credited to the words at a speaking rate (:mod:`~realtime.session.crediting`).
Audio is resampled once, from the synthesiser's rate to the output rate the reply began with (the sink's).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import numpy as np

from audio import StreamResampler
from realtime.events import AssistantTextDelta, AudioOut
from realtime.priority import Lane
from realtime.session.crediting import WordRateCredit
from realtime.session.turn import SpokenClause, Turn
from tts import Synthesizer, TextStreamingSynthesizer

Clauses = asyncio.Queue[str | None]
"""Answer clauses in the order they are written; None ends the answer."""

_NO_AUDIO = np.zeros(0, np.float32)


class Speaker:
    """Speaks turns' clauses with ``tts``. ``room`` is awaited before each piece of audio (the output queue is
    bounded); on ``lane`` (the session's, in the process's :class:`~realtime.priority.FirstAudioFirst`) a playing
    reply holds back its next clause while another session's turn waits for its first audio."""

    def __init__(self, tts: Synthesizer, room: Callable[[], Awaitable[None]], lane: Lane) -> None:
        self._tts = tts
        self._room = room
        self._lane = lane

    async def speak(self, turn: Turn, clauses: Clauses, *, rate: int, stream: bool = True) -> None:
        """Speak until the ``None`` that ends ``clauses``, at ``rate`` Hz (the sink's rate when the reply began);
        ``turn.spoken`` records each clause and its samples. ``stream`` chooses bi-streaming when the synthesiser
        offers it."""
        if isinstance(self._tts, TextStreamingSynthesizer) and stream:
            await self._speak_text_stream(turn, clauses, self._tts, rate)
        else:
            await self._speak_clauses(turn, clauses, rate)

    async def write(self, turn: Turn, clauses: Clauses, *, rate: int, stream: bool = True) -> None:
        """Show the clauses as text, with no audio (a reply that is not spoken); ``rate`` and ``stream`` are there to
        take :meth:`speak`'s place."""
        while (text := await clauses.get()) is not None:
            clause = SpokenClause(text, 0)
            turn.spoken.append(clause)
            self._lane.started(turn.id)  # its first words are its first output
            self._show(turn, clause)

    async def _emit(self, turn: Turn, samples: np.ndarray) -> None:
        turn.record.mark("first_tts_audio")
        self._lane.started(turn.id)
        await self._room()
        turn.emit(AudioOut(turn.id, turn.generation, samples))

    def _show(self, turn: Turn, clause: SpokenClause) -> None:
        turn.emit(AssistantTextDelta(turn.id, turn.generation, clause.text + " "))

    async def _speak_clauses(self, turn: Turn, clauses: Clauses, rate: int) -> None:
        while (text := await clauses.get()) is not None:
            if turn.spoken:
                await self._lane.give_way(lambda: _lead_s(turn, rate))
            resampler = StreamResampler(self._tts.sample_rate, rate)
            clause = SpokenClause(text, 0)
            async for chunk in self._tts.stream(text, trim_lead=not turn.spoken):
                out = resampler.process(chunk)
                if not turn.spoken or turn.spoken[-1] is not clause:
                    turn.spoken.append(clause)
                    self._show(turn, clause)
                clause.samples += len(out)
                await self._emit(turn, out)
            tail = resampler.process(_NO_AUDIO, last=True)
            if len(tail) and turn.spoken and turn.spoken[-1] is clause:
                clause.samples += len(tail)
                await self._emit(turn, tail)

    async def _speak_text_stream(self, turn: Turn, clauses: Clauses, tts: TextStreamingSynthesizer, rate: int) -> None:
        credit = WordRateCredit(rate, turn.spoken, lambda clause: self._show(turn, clause))

        async def texts() -> AsyncIterator[str]:
            while (text := await clauses.get()) is not None:
                credit.hand_over(text)
                yield text + " "

        resampler = StreamResampler(tts.sample_rate, rate)
        async with contextlib.aclosing(tts.stream_text(texts())) as chunks:
            async for chunk in chunks:
                if len(out := resampler.process(chunk)):
                    credit.credit(len(out))
                    await self._emit(turn, out)
        if len(tail := resampler.process(_NO_AUDIO, last=True)):
            credit.credit(len(tail))
            await self._emit(turn, tail)
        credit.finish()


def _lead_s(turn: Turn, rate: int) -> float:
    """Seconds of ``turn``'s audio (at ``rate`` Hz) not yet played, on a listener that plays it in real time from its
    first piece (a pause over the reply is not counted: the lead is then smaller than it is)."""
    started = turn.record.stamps.get("first_tts_audio")
    if started is None:
        return 0.0
    return sum(c.samples for c in turn.spoken) / rate - (turn.record.clock() - started)
