"""Speech over a reply: the reply pauses at once, and the speech is judged before it interrupts.

The turn-taking policy says when a sound begins over a reply (``OVERLAP``: the reply's audio pauses at the sink, within
one VAD window), when it was too short to be speech (``OVERLAP_ENDED``: it resumes) and when the speech has lasted
``min_interruption_ms`` (``BARGE_IN``: its words so far are recognised at once, :meth:`Overlaps.lasted`, and real words
confirm the interruption; a long hum does not). Otherwise the speech is judged by the words of the turn it becomes
(:meth:`Overlaps.judge`, on the turn's final transcript, at its first pause): a backchannel ("mm-hmm", "yeah") or noise
(no words) resumes the reply where it paused, nothing lost, and leaves no reply and no message; real words confirm the
interruption: the reply is cut to what was heard and the turn is answered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from audio import PIPELINE_RATE
from realtime.policy import content_words, interrupts
from realtime.session.turn import Turn

if TYPE_CHECKING:
    from realtime.session.context import SessionContext
    from realtime.session.output import Router
    from realtime.session.turns import TurnKeeper


class Overlaps:
    """The speech over ``session``'s replies (``turns``), paused and resumed on ``router``."""

    def __init__(self, session: SessionContext, turns: TurnKeeper, router: Router) -> None:
        self._session = session
        self._turns = turns
        self._router = router
        self._reply: Turn | None = None
        """The reply the user's speech is over, until the speech is judged or the interruption confirmed."""
        self._dismissed = False
        """The speech was judged a backchannel: the reply plays on while the utterance ends."""
        self._onset = 0
        """The sample the speech over the reply began at."""

    @property
    def pending(self) -> bool:
        """Speech over a reply awaits its judgment (a turn begun now is judged: :meth:`judge`)."""
        return self._reply is not None and not self._dismissed

    def started(self, onset: int) -> None:
        """A sound began over the reply at sample ``onset`` (or speech went on after a backchannel): pause the reply
        now."""
        reply = self._turns.current_reply()
        if reply is None:
            return
        self._reply, self._dismissed, self._onset = reply, False, onset
        self._router.pause(reply.id, reply.generation)

    def ended(self) -> None:
        """The sound was too short to be speech: the reply plays on."""
        self._reply = None
        self._router.resume()

    def resumed(self, onset: int) -> None:
        """The user went on speaking (from sample ``onset``) after a pause: speech judged a backchannel so far pauses
        the reply again."""
        if self._dismissed:
            self.started(onset)

    def finished(self) -> None:
        """The user's turn ended; speech judged a backchannel is over (a turn still being judged keeps its reply)."""
        if self._dismissed:
            self._reply, self._dismissed = None, False

    async def lasted(self) -> None:
        """The speech over the reply has lasted ``min_interruption_ms``: it interrupts if its words so far do (a
        "mm-hmm" drawn out past the limit does not; it is judged again at its pause)."""
        reply, session = self._reply, self._session
        transcript = await session.models.asr.transcribe_async(session.utterance.audio())
        if self._reply is reply and not self._dismissed and transcript.is_speech and interrupts(transcript.text, session.config.policy):
            await self.confirm()

    async def confirm(self) -> None:
        """The speech interrupts: stop the reply it is over (and those before it), cut to what the sink played before the
        pause. That reply, not whatever is newest: by the time the words are judged, the turn they began may itself be a
        committed reply."""
        reply = self._reply if self._reply is not None else self._turns.current_reply()
        self._reply, self._dismissed = None, False
        if reply is not None and self._turns.replying(reply):
            await self._turns.interrupt(reply)

    async def judge(self, turn: Turn, speech_end: int | None = None) -> bool:
        """Whether ``turn``'s speech, begun over a reply and paused at sample ``speech_end`` (None: it is not known,
        the speech counts as long), is to be answered (its final transcript is in ``user_text``). Words that interrupt
        (:func:`~realtime.policy.interrupts`) confirm the interruption (at once, on a task of the session's: the turn waits for the reply
        to stop): True. Fewer words than interrupt ("Germany?" said after the reply began) resume the reply and are
        answered after it, nothing lost: True. A backchannel or noise resumes the reply, and the turn is to leave no
        reply and no message: False."""
        if self._reply is None:  # confirmed already, or the reply is over
            return True
        policy = self._session.config.policy
        text = turn.user_text or ""
        speech_ms = None if speech_end is None else (speech_end - self._onset) * 1000 / PIPELINE_RATE
        if interrupts(text, policy, speech_ms):
            self._session.spawn(self.confirm(), "interrupt")
            return True
        answered_after = content_words(text, policy.backchannels) > 0
        self._session.stats["answered_after_reply" if answered_after else "backchannels"] += 1
        self._dismissed = True
        self._router.resume()
        return answered_after
