"""The one owner of a session's turns: where a turn begins, waits for the turns before it, is interrupted and closed.

The live turns are kept in the order they began (:attr:`TurnKeeper.live` is the newest). :meth:`TurnKeeper.begin` is
the one place a turn begins: a speculative live turn is discarded first; a committed one stays, and the new turn's
reply waits until every live turn begun before it has ended, so no reply is orphaned and none talks over another.
:meth:`TurnKeeper.discard` drops a speculation, :meth:`TurnKeeper.interrupt` stops a reply and the replies before it
(cutting the history to what the sink played and making their queued output stale), and
:meth:`TurnKeeper._close_turn` is the one place a turn's words enter the history.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import TYPE_CHECKING

import numpy as np

from realtime.conversation import Message
from realtime.errors import BrainStateError
from realtime.events import AudioCleared, AudioOut, ErrorEvent, ItemDeleted, OutputItem, ReplyDone, ReplyTruncated
from realtime.latency import LatencyRecord
from realtime.session.config import ResponseOptions
from realtime.session.turn import Outcome, Turn

if TYPE_CHECKING:
    from realtime.session.context import SessionContext
    from realtime.session.history import History

_turn_ids = itertools.count(1)


class TurnKeeper:
    """The turns of ``session``."""

    def __init__(self, session: SessionContext, history: History) -> None:
        self._s = session
        self._history = history
        self._live: list[Turn] = []
        """The live turns, oldest first."""
        self._beside: list[Turn] = []
        """Out-of-band replies in progress: they run beside the others, wait for none, and leave no history."""
        self._last_reply: Turn | None = None
        """The last completed reply, while its audio may still be playing (a barge-in then truncates it)."""
        self._generations = itertools.count(1)
        self.stale_below = 0
        """Reply output of generations below this one is dropped (they were interrupted)."""
        self._finishing: asyncio.Task[None] | None = None
        """The brain keeping the last finished turn (the next reply waits for it)."""

    @property
    def live(self) -> Turn | None:
        """The newest live turn (a speculation, the reply in progress, or a turn waiting for one)."""
        return self._live[-1] if self._live else None

    def reply_of(self, item_id: str) -> Turn | None:
        """A live reply, or the last one while its audio may still play, whose assistant item is ``item_id``."""
        return next((t for t in (*self._live, self._last_reply) if t is not None and t.item_id == item_id), None)

    def item_in_progress(self, item_id: str) -> Message | None:
        """The user message or the reply of a turn not yet in the history, as it stands (None when no turn has it)."""
        for turn in (*self._live, *self._beside, *([self._last_reply] if self._last_reply else [])):
            if turn.user_item_id == item_id:
                return Message("user", turn.user_text or "", item_id)
            if turn.item_id == item_id:
                return Message("assistant", " ".join(c.text for c in turn.spoken), item_id)
            if call := next((c for c in turn.calls if c.id == item_id), None):
                return call
        return None

    def hold_output(self, output: Message, event_id: str | None) -> bool:
        """Keep a function call's output for the live turn that wrote the call (True), to enter the history after the
        turn's items when it closes: a client may send it as soon as the call is done, before the reply has ended."""
        for turn in (*self._live, *self._beside):
            if any(c.call_id == output.call_id for c in turn.calls):
                turn.held_outputs.append((output, event_id))
                return True
        return False

    def current_reply(self) -> Turn | None:
        """The newest committed reply in progress, or the finished one whose audio is still playing."""
        for turn in reversed(self._live):
            if turn.respond and turn.committed:
                return turn
        if self._last_reply is not None and self._s.playing:
            return self._last_reply
        return None

    def waiting_ms(self) -> float:
        """How long the oldest committed reply still without audio has waited since the end of its user's speech (ms;
        0 when none waits): a reply's first-packet delay so far, before it is known."""
        now = self._s.clock()
        ends = [turn.record.stamps["speech_end"] for turn in self._live
                if turn.respond and turn.committed and "speech_end" in turn.record.stamps and "first_audio_out" not in turn.record.stamps]
        return max(((now - end) * 1000 for end in ends), default=0.0)

    def replying(self, turn: Turn) -> bool:
        """``turn`` is a committed reply still being produced, or the last reply, whose audio is still playing."""
        return (turn in self._live and turn.respond and turn.committed) or (turn is self._last_reply and self._s.playing)

    def _before(self, turn: Turn) -> list[Turn]:
        """The live turns begun before ``turn`` (which may be over already), newest first."""
        return [live for live in reversed(self._live) if live.generation < turn.generation]

    def _release(self, turn: Turn) -> None:
        """``turn`` is over: it is no longer live."""
        for turns in (self._live, self._beside):
            if turn in turns:
                turns.remove(turn)

    def _send(self, item: OutputItem) -> None:
        """Where a committed turn's output goes."""
        if isinstance(item, AudioOut):
            for turn in (*self._live, *self._beside):
                if turn.id == item.turn_id:
                    turn.record.mark("first_audio_out", self._s.clock())
        self._s.put(item)

    async def begin(
        self, speech_end: int | None, *, respond: bool, hear: bool = True, text: str | None = None,
        script: str | None = None, options: ResponseOptions | None = None, context: list[Message] | None = None,
    ) -> Turn:
        """The one place a turn begins. A speculative live turn is discarded; committed ones stay, and the new turn's
        reply waits for them. The new turn hears the utterance so far (``hear``), or takes its words (``text``), or
        replies to the history as it is (or to ``context``); ``speech_end`` is None while the user is still speaking.
        ``options`` are the client's for this reply; an out-of-band reply runs at once, beside the others."""
        while (previous := self.live) is not None and previous.speculative:
            await self.discard(previous)
        record = LatencyRecord(turn_id=f"turn_{next(_turn_ids)}", clock=self._s.clock)
        if speech_end is not None:
            record.mark("speech_end", self._s.sample_time(speech_end))
            record.mark("speculation_start")
        turn = Turn(record.turn_id, next(self._generations), record, self._send, respond=respond)
        turn.script, turn.context = script, context
        turn.options = options or turn.options
        (self._beside if turn.options.out_of_band else self._live).append(turn)
        self._s.stats["speculations"] += 1
        audio = None
        if text is not None:
            turn.user_item_id, turn.user_text = self._s.user_item_id, text
        elif hear:
            turn.user_item_id = self._s.user_item_id
            audio = self._s.utterance.audio()
        turn.spawn(self._run_turn(turn, audio), "turn")
        return turn

    async def _run_turn(self, turn: Turn, audio: np.ndarray | None) -> None:
        outcome = Outcome.COMPLETED
        if turn.respond:
            self._s.lane.waiting(turn.id)
        try:
            if audio is not None and self._s.brain.hears_audio:  # the audio brain hears the audio itself
                transcribing = turn.spawn(self._transcribe_for_client(turn, audio), "transcribe")
                if turn.judge is not None:  # speech over a reply: its words decide whether it is answered
                    await transcribing
            elif audio is not None:
                turn.user_text = await self._s.replier.transcribe(turn, audio)
            if turn.judge is not None and not await turn.judge(turn):
                turn.user_text = ""  # a backchannel over a reply (which resumes): no reply, no message
            if turn.options.out_of_band:
                await self._answer_beside(turn)
            elif turn.respond:  # the reply waits for every turn begun before it (a reply, a transcript)
                for earlier in self._before(turn):
                    await earlier.finished.wait()
            if turn.respond and turn.user_text != "" and not turn.options.out_of_band:
                if self._finishing is not None:  # the brain keeps the last turn before it begins the next
                    await asyncio.wait({self._finishing})
                await self._s.replier.answer(turn, self._s.config)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - one failed reply never ends the session
            outcome = Outcome.FAILED
            await self._fail(turn, exc)
        finally:
            self._s.lane.started(turn.id)
        await self._finish(turn, outcome)

    async def _fail(self, turn: Turn, exc: Exception) -> None:
        """A step of ``turn`` raised: the client is told with an ``error``. A reply that had not begun (the recogniser
        failed) begins, so that the client sees it fail (``response.done`` ``failed``), and the user's message, never
        heard, is deleted. Speech over a reply whose words could not be recognised is taken as noise: the reply plays
        on (a reply held paused for a judgment that never comes would block every later turn)."""
        turn.fail_with(exc)
        unheard = turn.user_item_id is not None and turn.user_text is None and not self._s.brain.hears_audio
        if turn.judge is not None and turn.user_text is None:
            turn.user_text = ""  # _finish then closes it as noise
            await turn.judge(turn)
        elif turn.respond and turn.item_id is None:
            self._s.replier.begin(turn, self._s.config)
        turn.emit(ErrorEvent("reply_failed", f"the reply failed: {exc}"))
        if unheard and turn.user_text is None:
            turn.emit(ItemDeleted(turn.user_item_id or ""))

    async def _answer_beside(self, turn: Turn) -> None:
        """An out-of-band reply, on a brain session of its own (the session's brain may be writing another reply)."""
        brain = self._s.models.brain.open(self._s.conversation.view())
        try:
            await self._s.replier.answer(turn, self._s.config, brain)
        finally:
            brain.close()

    async def _transcribe_for_client(self, turn: Turn, audio: np.ndarray) -> None:
        turn.user_text = await self._s.replier.transcribe(turn, audio) or None

    async def _finish(self, turn: Turn, outcome: Outcome) -> None:
        """Close a turn that ran to its end or failed, once the user's turn is confirmed."""
        turn.answering.set()  # all it will say is said or held (a failure, no reply to noise): the end of turn need not wait
        await turn.decided.wait()
        if not turn.committed:
            return
        if turn.user_text == "":  # nothing but noise: no reply, no record, no message
            self._s.stats["no_speech"] += 1
            turn.end(Outcome.DISCARDED)
            self._release(turn)
            self._s.put(ItemDeleted(turn.user_item_id or ""))
            return
        self._close_turn(turn, outcome, " ".join(c.text for c in turn.spoken))

    async def discard(self, turn: Turn) -> None:
        """The user went on speaking (or said something else): drop the speculative ``turn`` without a sound."""
        await turn.stop(Outcome.DISCARDED)
        self._release(turn)
        self._s.stats["discarded"] += 1
        if turn.item_id is not None and turn.script is None:  # its reply had begun: the brain drops it
            self._s.brain.rewind()

    async def stop_all(self) -> None:
        """Stop every live turn (the session closes)."""
        for turn in reversed([*self._live, *self._beside]):
            if turn.live:  # checked just before: one may end on its own while another is being stopped
                await turn.stop(Outcome.INTERRUPTED)
        self._live.clear()
        self._beside.clear()

    async def truncate(self, item_id: str, audio_end_ms: int, event_id: str | None = None) -> None:
        """Cut an assistant reply to the audio the client played (``conversation.item.truncate``): the client's count
        overrides the sink's estimate."""
        session = self._s
        turn = self.reply_of(item_id)
        message = session.conversation.find(item_id)
        if turn is None and (message is None or message.role != "assistant"):
            session.error("item_not_found", f"no spoken assistant item {item_id!r}", event_id)
            return
        if audio_end_ms < 0:
            session.error("invalid_value", "audio_end_ms must not be negative", event_id)
            return
        if turn is None:  # an older reply: its audio is gone, keep the share of its words that fits the audio played
            assert message is not None
            words = message.text.split()
            kept = len(words) if not message.audio_ms else min(len(words), len(words) * audio_end_ms // message.audio_ms)
            message.text = " ".join(words[:kept])
            session.put(ReplyTruncated(item_id, message.text, audio_end_ms))
            self._history.prefill()
            return
        await self.interrupt(turn, heard_samples=audio_end_ms * session.config.output_rate // 1000)

    async def interrupt(self, turn: Turn, *, outcome: Outcome = Outcome.INTERRUPTED, heard_samples: int | None = None) -> None:
        """Stop ``turn`` (barge-in, cancel, truncate) and the replies begun before it: their output is stale at once, the
        sink is cleared, and the history keeps what the sink played (or ``heard_samples``, the client's count for
        ``turn``). A completed reply whose audio is still playing is truncated instead."""
        self.stale_below = turn.generation + 1
        playback = self._s.router.clear()
        stopped = []
        for live in (turn, *[t for t in self._before(turn) if t.respond]):
            if live.live:  # checked just before: one may end on its own while another is being stopped
                await live.stop(outcome)
                stopped.append(live)
        self._s.put(AudioCleared(turn.id, turn.generation))
        for done in reversed(stopped):  # oldest first: the history keeps the order they were said in
            played = heard_samples if done is turn and heard_samples is not None else playback.of(done.generation)
            self._close_turn(done, outcome, done.heard_text(min(played, done.produced_samples)))
        if turn is self._last_reply:
            played = min(playback.of(turn.generation) if heard_samples is None else heard_samples, turn.produced_samples)
            self._s.stats[outcome.value] += 1
            self._history.truncated(turn, turn.heard_text(played), played)
            self._last_reply = None

    def _close_turn(self, turn: Turn, outcome: Outcome, heard: str) -> None:
        """Enter a finished turn into the history, the brain and the records, and tell the client."""
        if turn.live:
            turn.end(outcome)
        if turn.item_id is not None and turn.script is None and not turn.options.out_of_band:
            self._finishing = self._s.spawn(self._brain_finish(heard), "finish")
        self._history.closed(turn, heard)
        if turn.respond:
            self._s.stats[outcome.value] += 1
        if turn.item_id is not None:  # the reply started: the client saw it begin
            self._s.records.append(turn.record)
            self._s.put(ReplyDone(turn.id, turn.generation, turn.item_id, outcome.value, heard, turn.record.as_dict()))
        for output, event_id in turn.held_outputs:  # after the turn's items, which were announced before them
            self._history.add(output, None, event_id)
        self._release(turn)
        if turn.respond and not turn.options.out_of_band:
            self._last_reply = turn if outcome is Outcome.COMPLETED else None
        self._history.prefill()

    async def _brain_finish(self, heard: str) -> None:
        """The brain keeps the turn as heard (a reply cancelled before the brain began it leaves nothing to finish)."""
        with contextlib.suppress(BrainStateError):
            await self._s.brain.finish_turn(heard)
