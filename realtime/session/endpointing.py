"""Semantic end of turn (endpointing): during a pause, is the user's turn finished?

Under ``semantic_vad`` (:meth:`realtime.policy.PolicyConfig.semantic`) a pause is judged as soon as it may end the
turn, on how the user's words *read*: :func:`~realtime.asr.ends_open` on the final transcript that the speculative
reply makes anyway ("What is the capital of" does not end a question; no punctuation is required, Whisper leaves it
out of some finished questions). Optionally also on how they *sound*: Smart Turn v3.2 on the utterance's audio
(:mod:`vad.smart_turn`; finished at a probability of 0.5 or more, the model's own decision boundary), asked only when
the wording reads finished. It is opt-in (:meth:`~realtime.models.Models.hear_turn_ends`): on the benchmark's
synthetic voices it judged 10 of 30 finished questions unfinished (each then waits the long silence) and 22 of 30
cut-off ones finished. A turn judged finished ends after the eagerness's short silence and once its speculative reply
has begun to answer (:attr:`~realtime.session.turn.Turn.answering`: until then nothing could be heard anyway, so a user
who goes on within that time is not cut off); any other waits the long one. Without a speculating reply (no
transcript) and without the audio model, a pause is not judged: it waits the long silence.
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
        detector = self._session.models.turn_detector
        if turn is None and detector is None:
            return  # nothing to judge by (no reply speculates, so no transcript): the pause waits the long silence
        complete = True
        if turn is not None:
            if turn.user_text is None:  # an early reply already has its words
                await turn.transcribed.wait()
            complete = not ends_open(turn.user_text)
        probability = None
        if complete and detector is not None:
            probability = await detector.probability_async(audio)
            complete = probability >= COMPLETE_PROBABILITY
        if pause == self._pause:
            await self._judged(turn, probability, complete)
