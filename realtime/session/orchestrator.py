"""A voice session: the stages wired together, and the one place where turns begin, end and are replaced.

Audio in (16 kHz float32, any chunk size) -> VAD windows -> the turn-taking policy. While the user speaks, the
listening stage makes partial transcripts and prefills the brain. At the first pause that may end the turn a reply
begins speculatively, its output held back; when the policy confirms the end of the turn it is committed and
flows, and if the user goes on instead it is discarded without a sound. Speech over a reply pauses it at the sink and
is judged (:mod:`~realtime.session.overlaps`): a backchannel or noise resumes it; an interruption cancels its tasks,
the sink is cleared and reports what was played, and the history keeps only what was heard.

Calling contract: feed audio with :meth:`VoiceSession.push_audio` and run :meth:`VoiceSession.route` (the output
router) for as long as the session lives; the client's commands are the other public coroutines; :meth:`close` once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

import numpy as np

from audio import PIPELINE_RATE
from realtime.conversation import Conversation, Message, new_item_id
from realtime.errors import SessionClosedError
from realtime.events import (
    ErrorEvent,
    InputCleared,
    InputCommitted,
    Interruptible,
    ItemRetrieved,
    OutputItem,
    SettingsChanged,
    SpeechStarted,
    SpeechStopped,
)
from realtime.latency import LatencyRecord, now
from realtime.models import Models
from realtime.policy import Decision, Event, TurnPolicy
from realtime.priority import USER_SPEECH
from realtime.session.config import ResponseOptions, SessionConfig
from realtime.session.endpointing import Endpointer
from realtime.session.history import History
from realtime.session.idle import IdleWatch
from realtime.session.listening import Listener
from realtime.session.output import AudioSink, OutputQueue, Router
from realtime.session.overlaps import Overlaps
from realtime.session.replying import Replier
from realtime.session.speaking import Speaker
from realtime.session.turn import Outcome, Turn
from realtime.session.turns import TurnKeeper
from realtime.session.utterance import UtteranceBuffer
from vad import VadWindow, VoiceActivityDetector

log = logging.getLogger(__name__)


class Vad(Protocol):
    """What the session needs of a voice activity detector (:class:`vad.VoiceActivityDetector`)."""

    def push(self, samples: np.ndarray) -> list[VadWindow]:
        """Score the next chunk (float32 mono, 16 kHz, any length): one window per 512 samples completed."""


class VoiceSession:
    """One conversation on shared ``models``, playing on ``sink``. ``vad`` and ``clock`` are injectable for tests."""

    def __init__(
        self, models: Models, config: SessionConfig | None, sink: AudioSink, *,
        vad: Vad | None = None, clock: Callable[[], float] = now,
    ) -> None:
        self.models = models
        self.config = config or SessionConfig()
        self.sink = sink
        self.clock = clock
        self.output = OutputQueue()
        self.router = Router(self.output, sink, self.is_stale)
        self.observers: list[Callable[[OutputItem], None]] = []
        """Called with every output item as it is queued (an event bus such as MQTT listens here)."""
        self.conversation = Conversation(
            instructions=self.config.instructions, truncation=self.config.truncation, tools=self.config.tools.offered
        )
        self.records: list[LatencyRecord] = []
        self.stats: Counter[str] = Counter()
        """Counts of what happened: speculations, discarded, committed, interrupted, no_speech, failed, ..."""
        self.utterance = UtteranceBuffer(prefix_padding_ms=self.config.prefix_padding_ms, max_utterance_s=self.config.max_utterance_s)
        self.user_item_id = new_item_id()
        """The user message the current (or next) utterance becomes."""
        self.lane = models.priority.lane()
        """This session's place among the sessions sharing ``models`` (:mod:`realtime.priority`)."""
        self.brain = models.brain.open(
            self.conversation, block_seconds=self.config.audio_block_seconds, background=self.lane.background_waits
        )
        self._vad = vad if vad is not None else VoiceActivityDetector()
        self._policy = TurnPolicy(self.config.policy)
        self.replier = Replier(models.asr, self.brain, Speaker(models.tts, self.output.room, self.lane))
        self.history = History(self)
        self.turns = TurnKeeper(self, self.history)
        self._overlaps = Overlaps(self, self.turns, self.router)
        self.idle_watch = IdleWatch(self)
        """Silence after a reply: the idle prompt, and the end of the call (:attr:`IdleWatch.hung_up`)."""
        self._listener = Listener(self, self.turns)
        self._endpointer = Endpointer(self, self._end_of_turn_judged)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self.history.prefill()

    # ---- state the stages read ----------------------------------------------------------------------------

    @property
    def live_turn(self) -> Turn | None:
        return self.turns.live

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def user_speaking(self) -> bool:
        return self._policy.user_speaking

    @property
    def paused(self) -> bool:
        return self._policy.paused

    @property
    def playing(self) -> bool:
        """Reply audio is queued, being heard, or paused (speech over it)."""
        return self.output.audio > 0 or self.sink.playing or self.router.holding

    @property
    def agent_active(self) -> bool:
        """A committed reply is being produced or is still playing."""
        turn = self.turns.live
        return (turn is not None and turn.respond and turn.committed) or self.playing

    @property
    def idle(self) -> bool:
        """Nobody is speaking and no reply is being produced or played."""
        return self.turns.live is None and not self._policy.user_speaking and not self.playing

    def sample_time(self, sample: int) -> float | None:
        """When input sample ``sample`` reached the session (on its clock), if it has."""
        return self.utterance.arrival(sample)

    def is_stale(self, item: OutputItem) -> bool:
        """True for reply output (:class:`~realtime.events.Interruptible`) of a reply interrupted after it was queued."""
        return isinstance(item, Interruptible) and item.generation < self.turns.stale_below

    # ---- input ---------------------------------------------------------------------------------------------

    async def push_audio(self, samples: np.ndarray) -> None:
        """Hear the next chunk of the user's audio (16 kHz float32 mono, any length).

        Raises :class:`~realtime.errors.SessionClosedError` once the session is closed."""
        if self._closed:
            raise SessionClosedError("the session is closed")
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        if not self.config.turn_detection:
            self.utterance.open_empty()
        was_open = self.utterance.open
        self.utterance.push(samples, self.clock())
        if was_open:
            self._hear(samples)
        if not self.config.turn_detection:
            return
        for window in self._vad.push(samples):
            active = self.agent_active and self.config.interrupt_response and self._reply_interruptible()
            for event in self._policy.window(window.start, window.end, window.probability, agent_active=active):
                await self._decide(event)
        self.idle_watch.heard(self.utterance.samples)
        # Not in a silence (the final transcript may be about to start), unless a partial may still answer early.
        if self._policy.user_speaking and (not self._policy.in_silence or self.config.answer_early) and self.config.listen_while_thinking:
            self._listener.maybe_partial()

    def _reply_interruptible(self) -> bool:
        """The reply in progress (if any) may be paused and interrupted by speech over it."""
        reply = self.turns.current_reply()
        return reply is None or reply.options.interruptible

    def _hear(self, samples: np.ndarray) -> None:
        """An audio brain hears the utterance's audio as it arrives (tasks start in order: the audio stays in order)."""
        if len(samples) and self.brain.hears_audio:
            self.spawn(self.brain.hear(samples), "hear")

    async def _decide(self, event: Event) -> None:
        decision, turn = event.decision, self.turns.live
        if decision is Decision.OVERLAP:
            self._overlaps.started(event.sample)
        elif decision is Decision.OVERLAP_ENDED:
            self._overlaps.ended()
        elif decision is Decision.BARGE_IN and self._overlaps.pending:  # judged by its words so far, the reply paused
            self.spawn(self._overlaps.lasted(), "overlap")
        elif decision is Decision.BARGE_IN:  # min_interruption_ms None: speech over a reply interrupts at once
            await self._overlaps.confirm()
        elif decision is Decision.SPEECH_STARTED:
            self.lane.waiting(USER_SPEECH)  # other sessions' long replies give way until this turn's first audio
            self._hear(self.utterance.begin(event.sample))
            self._listener.reset(event.sample)
            self.put(SpeechStarted(event.sample, self.user_item_id))
        elif decision is Decision.PAUSED:
            if turn is not None and turn.early and turn.verification is None and turn.speculative:
                self._listener.start_verification(turn, event.sample)
            elif self.config.speculate and (turn is None or self._overlaps.pending):  # speech over a reply: judge it now
                turn = await self._begin(event.sample)
            self._endpointer.paused(turn if turn is not None and turn.speculative else None)
        elif decision is Decision.RESUMED:
            self._endpointer.resumed()
            if turn is not None and turn.speculative:
                await self.turns.discard(turn)
            self._overlaps.resumed(event.sample)
        elif decision is Decision.END_OF_TURN:
            self.lane.started(USER_SPEECH)  # the turn itself waits now, if it is answered
            if self.utterance.open:
                await self._end_of_turn(event.sample)
                self._overlaps.finished()

    async def _begin(self, speech_end: int) -> Turn:
        """A turn on the user's utterance so far; on speech over a reply, its words decide whether it interrupts."""
        turn = await self.turns.begin(speech_end, respond=self.config.auto_respond)
        if self._overlaps.pending:
            turn.judge = functools.partial(self._overlaps.judge, speech_end=speech_end)
        return turn

    async def _end_of_turn_judged(self, turn: Turn | None, probability: float | None, complete: bool) -> None:
        """The pause was judged (semantic end of turn): recorded on the speculating ``turn``, handed to the policy. A
        turn judged complete ends only once its speculative reply has begun to answer (:attr:`Turn.answering`): it
        could not be heard sooner anyway, and a user who goes on meanwhile was not cut off (the judgment is one of the
        turn's tasks, dropped with it). Not an early reply (begun while the user spoke): the final transcript may
        replace it with a turn that has no judgment of its own."""
        if turn is not None:
            turn.record.mark("end_of_turn_signal")
            turn.record.end_of_turn_probability, turn.record.end_of_turn_complete = probability, complete
            if complete and turn.respond and not turn.early:
                await turn.answering.wait()
                if not turn.speculative:
                    return  # the long silence ended the turn meanwhile: this judgment belongs to no pause now
        for event in self._policy.judge(complete):
            await self._decide(event)

    async def _end_of_turn(self, sample: int) -> None:
        turn = self.turns.live
        if turn is None or not turn.speculative or turn.user_item_id != self.user_item_id:
            turn = await self._begin(sample)
        turn.record.mark("end_of_turn")
        self.put(SpeechStopped(sample, turn.user_item_id or ""))
        if turn.early and turn.verification is None:  # it began during the pause: verify it on this utterance
            self._listener.start_verification(turn, sample)
        self._end_utterance(turn)
        self.stats["committed"] += 1
        if turn.early and turn.verification is not None and not turn.verification.done():
            turn.commit_when_verified = True  # the verification commits it, or the turn that replaces it
        else:
            turn.commit()

    def _end_utterance(self, turn: Turn) -> None:
        """The user's audio so far became a message: the next speech is a new one."""
        self.put(InputCommitted(turn.user_item_id or "", self.history.last_item_id()))
        self.utterance.close()
        self.user_item_id = new_item_id()

    # ---- the client's commands -----------------------------------------------------------------------------

    def configure(self, config: SessionConfig, *, announce: bool = False) -> None:
        """Apply new settings (a reply in progress finishes under the old ones). ``announce`` tells the clients with a
        :class:`~realtime.events.SettingsChanged` item (for changes that do not come from the wire protocol)."""
        if config.tools.tools and not self.brain.calls_tools and config.tools != self.config.tools:
            self.error("invalid_value", "this server's model cannot call functions: its replies ignore the tools")
        self.config = config
        self.conversation.instruct(config.instructions)
        self.conversation.truncation = config.truncation
        self.conversation.tools = config.tools.offered
        self._policy.config = config.policy
        if not (config.turn_detection and config.interrupt_response):  # nothing will judge speech over a reply now
            self._overlaps.ended()
        if not config.turn_detection:  # nothing will end the speech in progress now: other sessions need not wait for it
            self.lane.started(USER_SPEECH)
        self.utterance.prefix_padding_ms, self.utterance.max_utterance_s = config.prefix_padding_ms, config.max_utterance_s
        if announce:
            self.put(SettingsChanged())
        self.history.prefill()

    async def commit_input(self, event_id: str | None = None) -> None:
        """End the user's turn on the audio heard so far (manual turn detection); transcribe it, do not reply."""
        if len(self.utterance.audio()) < PIPELINE_RATE // 10:
            self.error("input_audio_buffer_commit_empty", "the input audio buffer holds less than 100 ms of audio", event_id)
            return
        turn = await self.turns.begin(self.utterance.samples, respond=False)
        self._end_utterance(turn)
        turn.commit()

    def clear_input(self) -> None:
        """Drop the user's uncommitted audio."""
        self.utterance.clear(keep_open=self._policy.user_speaking and self.config.turn_detection)
        self.put(InputCleared())

    async def create_response(self, options: ResponseOptions | None = None, event_id: str | None = None) -> None:
        """Reply to the conversation as it stands, or to ``options.input`` (``response.create``)."""
        options = options or ResponseOptions()
        if options.tools is not None and options.tools.offered and not self.brain.calls_tools:
            self.error("invalid_value", "this server's model cannot call functions", event_id)
            return
        turn = self.turns.live
        if not options.out_of_band and turn is not None and turn.respond and turn.committed:
            self.error("conversation_already_has_active_response", "a response is already in progress", event_id)
            return
        context = None
        if options.input is not None:
            context = [entry if isinstance(entry, Message) else self.conversation.find(entry) for entry in options.input]
            if None in context:
                missing = next(e for e, m in zip(options.input, context, strict=True) if m is None)
                self.error("item_not_found", f"no conversation item {missing!r} for the response's input", event_id)
                return
        turn = await self.turns.begin(
            self.utterance.samples, respond=True, hear=False, options=options, context=context  # type: ignore[arg-type]
        )
        turn.commit()

    def add_item(
        self, item: Message, previous_item_id: str | None = None, event_id: str | None = None, audio: np.ndarray | None = None
    ) -> None:
        """Add a client's item (``conversation.item.create``); a call's output that arrives before the turn that wrote
        the call has closed enters the history after that turn's items, when it closes. A user message's ``audio``
        (16 kHz float32) is transcribed first, and its words join the message's text."""
        if audio is not None:
            self.spawn(self._add_spoken(item, previous_item_id, event_id, audio), "transcribe item")
            return
        if item.kind == "function_call_output" and previous_item_id is None and self.turns.hold_output(item, event_id):
            return
        self.history.add(item, previous_item_id, event_id)

    async def _add_spoken(self, item: Message, previous_item_id: str | None, event_id: str | None, audio: np.ndarray) -> None:
        transcript = await self.models.asr.transcribe_async(audio)
        item.text = " ".join(t for t in (item.text, transcript.text if transcript.is_speech else "") if t)
        item.audio_ms = len(audio) * 1000 // PIPELINE_RATE
        self.history.add(item, previous_item_id, event_id, audio)

    def retrieve(self, item_id: str, event_id: str | None = None) -> None:
        """Send an item as it stands (``conversation.item.retrieve``): from the history, or from a turn in progress."""
        item = self.conversation.find(item_id) or self.turns.item_in_progress(item_id)
        if item is None:
            self.error("item_not_found", f"no conversation item {item_id!r}", event_id)
            return
        self.put(ItemRetrieved(dataclasses.replace(item), event_id))

    async def say(self, text: str, *, interruptible: bool = True) -> None:
        """Speak ``text`` as the assistant's next reply (no model writes it), after the reply in progress if any; it
        enters the history as heard. Not ``interruptible``, speech over it is answered after it (a greeting)."""
        if not any(c.isalnum() for c in text):
            self.error("invalid_value", "there is nothing to say")
            return
        options = ResponseOptions(interruptible=interruptible)
        turn = await self.turns.begin(self.utterance.samples, respond=True, hear=False, script=text, options=options)
        turn.commit()

    async def greet(self) -> None:
        """Say the session's :attr:`~SessionConfig.greeting`, if it has one (the agent speaks first)."""
        if self.config.greeting:
            await self.say(self.config.greeting, interruptible=self.config.greeting_interruptible)

    async def cancel_response(self, event_id: str | None = None) -> None:
        """Stop the reply being produced or played (``response.cancel``)."""
        turn = self.turns.current_reply()
        if turn is None:
            self.error("response_cancel_not_active", "there is no response to cancel", event_id)
            return
        await self.turns.interrupt(turn, outcome=Outcome.CANCELLED)

    async def route(self, on_event: Callable[[OutputItem], Awaitable[None]]) -> None:
        """Run the output router until cancelled: reply audio to the sink, every other item to ``on_event``."""
        await self.router.run(on_event)

    async def close(self) -> None:
        """Stop everything this session runs. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.lane.close()
        await self.turns.stop_all()
        self.brain.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def wait_idle(self, timeout: float) -> None:
        """Wait until no reply is being produced or played (used at the end of a file)."""
        deadline = self.clock() + timeout
        while self.clock() < deadline:
            turn = self.turns.live
            if turn is None and not self.playing:
                return
            if turn is not None:
                waiting: Awaitable[object] = turn.finished.wait()
            elif self.output.audio or self.router.holding:  # queued audio reaches the sink within a router step
                waiting = asyncio.sleep(0.02)
            else:
                waiting = self.sink.flush()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(waiting, max(0.0, deadline - self.clock()))

    # ---- output and tasks ----------------------------------------------------------------------------------

    def put(self, item: OutputItem) -> None:
        """Queue ``item`` for the router and show it to the observers."""
        self.output.put_nowait(item)
        for observer in self.observers:
            try:
                observer(item)
            except Exception:  # noqa: BLE001 - an observer never breaks the conversation
                log.exception("session observer failed")

    def error(self, code: str, message: str, event_id: str | None = None) -> None:
        self.put(ErrorEvent(code, message, event_id))

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run a task of the session itself (not of a turn): cancelled by :meth:`close`; a failure is logged."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("session task %s failed", task.get_name(), exc_info=exc)
