"""Semantic end of turn (endpointing): during a pause, is the user's turn finished?

Under ``semantic_vad`` (:meth:`realtime.policy.PolicyConfig.semantic`) a pause is judged as soon as it may end the
turn. Two signals, because neither is enough alone (measured on synthetic speech: Smart Turn judged 17/20 complete
turns complete but only 7/20 cut-off ones incomplete; the wording rule 18/20 and 11/20): how the speech *sounds*
(Smart Turn v3.2 on the utterance's audio, :mod:`vad.smart_turn`; complete at a probability of 0.5 or more, the
model's own decision boundary) and how it *reads* (:func:`~realtime.asr.ends_open` on the final transcript that
the speculative reply makes anyway: "What is the capital of" does not end a question; punctuation is not required,
Whisper leaves it out of some finished questions). The turn is complete
when both say so; the policy then ends it after a short silence, any other waits the long one. A session without
the audio model (tests, a failed load) judges on the wording alone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import numpy as np

from realtime.asr import ends_open

if TYPE_CHECKING:
    from realtime.session.context import SessionContext
    from realtime.session.turn import Turn

COMPLETE_PROBABILITY = 0.5
"""Smart Turn's probability from which a turn sounds complete (pipecat's own decision boundary)."""

Judged = Callable[["Turn | None", "float | None", bool], Awaitable[None]]
"""Called with the paused turn (None when no reply speculates), Smart Turn's probability (None without the model, or
when the wording already said unfinished) and the judgment."""


class Endpointer:
    """Judges each pause of ``session``'s user and hands the judgment to ``judged``."""

    def __init__(self, session: SessionContext, judged: Judged) -> None:
        self._session = session
        self._judged = judged
        self._pause = 0
        """Counts pauses and resumptions: a judgment applies only to the pause it was made for."""

    def paused(self, turn: Turn | None) -> None:
        """The user paused (``turn``: the reply speculating on it, if any): judge the pause, under ``semantic_vad``."""
        self._pause += 1
        if self._session.config.policy.complete_silence_ms is None:
            return
        job = self._judge(self._pause, turn, self._session.utterance.audio())
        if turn is not None:
            turn.spawn(job, "endpointing")  # ends with the turn (the user went on: it is discarded)
        else:
            self._session.spawn(job, "endpointing")

    def resumed(self) -> None:
        """The user went on: a judgment still in progress no longer applies."""
        self._pause += 1

    async def _judge(self, pause: int, turn: Turn | None, audio: np.ndarray) -> None:
        """The wording first (the transcript is being made for the reply anyway), then, only for a turn that reads
        finished, the audio model: on two cores it would otherwise slow the transcript on the reply's path."""
        complete = True
        if turn is not None:
            if turn.user_text is None:  # an early reply already has its words
                await turn.transcribed.wait()
            complete = not ends_open(turn.user_text)
        detector = self._session.models.turn_detector
        probability = None
        if complete and detector is not None:
            probability = await detector.probability_async(audio)
            complete = probability >= COMPLETE_PROBABILITY
        if pause == self._pause:
            await self._judged(turn, probability, complete)
