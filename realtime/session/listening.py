"""The listening stage: listen while thinking.

While the user speaks, a partial transcript is made every ``partial_interval_ms`` of speech (one at a time); the
words two partials agree on are handed to the brain to prefill (:meth:`~realtime.brain.BrainSession.hear_partial`).
With ``answer_early``, a partial that reads as a complete utterance starts an early reply while the user is still
speaking; at the first pause the final transcript verifies it (:meth:`Listener.verify`): the same words confirm it,
other words replace it with a reply to them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from audio import PIPELINE_RATE
from realtime.asr import looks_complete, same_words, stable_prefix
from realtime.events import UserTranscriptFinal, UserTranscriptPartial
from realtime.session.turn import Turn

if TYPE_CHECKING:
    from realtime.session.context import SessionContext
    from realtime.session.turns import TurnKeeper


class Listener:
    """The listening stage of ``session`` (it reads the session's utterance, policy and live turn)."""

    def __init__(self, session: SessionContext, turns: TurnKeeper) -> None:
        self._session = session
        self._turns = turns
        self._busy = False
        self._partial_at = 0
        self._partials = ("", "")

    def reset(self, onset: int) -> None:
        """A new utterance began at sample ``onset``."""
        self._partials = ("", "")
        self._partial_at = onset

    def maybe_partial(self) -> None:
        """Start a partial transcript if enough new speech arrived and none is running (and no reply is under way,
        but for an early one not yet verified: its words are checked against each partial)."""
        session = self._session
        interval = session.config.partial_interval_ms * PIPELINE_RATE // 1000
        turn = self._turns.live
        early = turn is not None and turn.early and turn.verification is None
        if self._busy or session.utterance.samples - self._partial_at < interval or (turn is not None and not early):
            return
        self._partial_at = session.utterance.samples
        self._busy = True
        session.spawn(self._partial(session.utterance.audio(), session.user_item_id), "partial")

    async def _partial(self, audio: np.ndarray, item_id: str) -> None:
        """One partial transcript and what follows from it; the next one starts only once this one, its prefill
        included, is over (on two cores, partials must not crowd out the reply)."""
        try:
            await self._hear_partial(audio, item_id)
        finally:
            self._busy = False

    async def _hear_partial(self, audio: np.ndarray, item_id: str) -> None:
        session = self._session
        transcript = await session.models.listening_asr.transcribe_async(audio)
        if not transcript.is_speech or not session.user_speaking or item_id != session.user_item_id:
            return
        self._partials = (self._partials[1], transcript.text)
        session.put(UserTranscriptPartial(item_id, transcript.text))
        turn = self._turns.live
        speaking = not session.paused  # during a pause, the pause's own speculation decides
        if speaking and turn is not None and turn.early and turn.verification is None and not same_words(turn.user_text, transcript.text):
            await self._turns.discard(turn)  # the user said more than the early reply answers
        if speaking and self._turns.live is None and self._may_answer_early(transcript.text):
            (await self._turns.begin(None, respond=True, text=transcript.text)).early = True
            session.stats["early"] += 1
            return
        stable = stable_prefix(*self._partials)
        if stable and self._turns.live is None:
            await session.brain.hear_partial(stable)

    def _may_answer_early(self, text: str) -> bool:
        """Whether to start answering a partial transcript before the user has even paused."""
        config = self._session.config
        return config.answer_early and config.auto_respond and not self._session.brain.hears_audio and looks_complete(text)

    def start_verification(self, turn: Turn, speech_end: int) -> None:
        """The user paused (or ended the turn) during the early ``turn``: verify it on the utterance so far."""
        session = self._session
        turn.record.mark("speech_end", session.utterance.arrival(speech_end))
        turn.record.mark("speculation_start")
        turn.verification = turn.spawn(self._verify(turn, speech_end, session.utterance.audio()), "verify")

    async def _verify(self, turn: Turn, speech_end: int, audio: np.ndarray) -> None:
        session = self._session
        try:
            transcript = await session.models.asr.transcribe_async(audio)
        except Exception as exc:  # noqa: BLE001 - the early reply is dropped, the client told, the session goes on
            turn.fail_with(exc)
            if turn is self._turns.live and turn.speculative:
                await self._turns.discard(turn)
                session.error("reply_failed", f"the reply failed: {exc}")
            return
        turn.record.mark("final_transcript")
        text = transcript.text if transcript.is_speech else ""
        if turn is not self._turns.live or not turn.speculative:
            return
        commit, item_id, ended = turn.commit_when_verified, turn.user_item_id, turn.record.stamps.get("end_of_turn")
        if same_words(text, turn.user_text):
            session.stats["early_confirmed"] += 1
            turn.user_text = text
        else:
            await self._turns.discard(turn)
            turn = await self._turns.begin(speech_end, respond=True, text=text)
            turn.user_item_id = item_id
            turn.record.mark("final_transcript")
        turn.emit_first(UserTranscriptFinal(turn.id, item_id or "", text))
        if commit:
            turn.record.mark("end_of_turn", ended)
            turn.commit()
