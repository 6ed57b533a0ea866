"""One turn: the user's words and, when asked for, the reply to them. A turn owns its tasks, holds its output while
it is speculative, keeps its error, and knows which words were heard.

A turn's **phase** (speculative, committed, done) is kept apart from its **outcome** (how it ended). Every change
of either is one row of :data:`TRANSITIONS`, and only :meth:`Turn.commit`, :meth:`Turn.end` and :meth:`Turn.stop`
make one; a step the table does not allow raises :class:`~realtime.errors.TurnStateError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

from realtime.conversation import Message
from realtime.errors import TurnStateError
from realtime.events import Interruptible, OutputItem, ToolCallStarted
from realtime.latency import LatencyRecord
from realtime.session.config import ResponseOptions

log = logging.getLogger(__name__)


class Phase(Enum):
    SPECULATIVE = "speculative"
    """Started at a pause that may end the user's turn (or on an early partial transcript); output is held back."""
    COMMITTED = "committed"
    """The user's turn ended (or the client asked for a reply): output flows."""
    DONE = "done"
    """Over; :attr:`Turn.outcome` says how."""


class Outcome(Enum):
    COMPLETED = "completed"
    INTERRUPTED = "interrupted"
    """Barge-in (or the session closed): stopped, its history cut to what was heard."""
    CANCELLED = "cancelled"
    """Stopped by the client (``response.cancel``), its history cut to what was heard."""
    FAILED = "failed"
    """A model or the synthesiser failed; :attr:`Turn.error` holds the first failure."""
    DISCARDED = "discarded"
    """Dropped without a sound: the user went on speaking, or it was noise with no words."""


Step = Literal["commit"] | Outcome

TRANSITIONS: dict[tuple[Phase, Step], Phase] = {
    (Phase.SPECULATIVE, "commit"): Phase.COMMITTED,
    (Phase.SPECULATIVE, Outcome.DISCARDED): Phase.DONE,
    (Phase.SPECULATIVE, Outcome.INTERRUPTED): Phase.DONE,
    (Phase.COMMITTED, Outcome.COMPLETED): Phase.DONE,
    (Phase.COMMITTED, Outcome.INTERRUPTED): Phase.DONE,
    (Phase.COMMITTED, Outcome.CANCELLED): Phase.DONE,
    (Phase.COMMITTED, Outcome.FAILED): Phase.DONE,
    (Phase.COMMITTED, Outcome.DISCARDED): Phase.DONE,
}
"""Every allowed step: (phase, step) -> the next phase. A speculative turn cannot complete, fail or be cancelled
(it has not been heard yet: the session only commits or drops it); a done turn takes no step at all."""


@dataclass
class SpokenClause:
    text: str
    samples: int
    """Samples of reply audio (at the session's output rate) that speak this clause."""


ANSWERING = (Interruptible, ToolCallStarted)
"""Output items that show the reply has begun to answer (reply audio and text are :class:`Interruptible`)."""


class Turn:
    """A turn in progress. ``emit`` is where its output goes once committed (the session's output queue)."""

    def __init__(
        self, turn_id: str, generation: int, record: LatencyRecord, emit: Callable[[OutputItem], None], *, respond: bool = True
    ) -> None:
        self.id = turn_id
        self.generation = generation
        """Increases with every turn of a session: output of an interrupted generation is dropped at the sink."""
        self.record = record
        self.respond = respond
        """Reply once the user's words are known (off: only transcribe them)."""
        self.user_item_id: str | None = None
        """The user message this turn hears (None: a reply to the history as it is)."""
        self.user_text: str | None = None
        """What the user said: None until transcribed (or when not hearing), "" for no speech."""
        self.item_id: str | None = None
        """The assistant message, once the reply started."""
        self.script: str | None = None
        """Words to speak instead of asking a model (a client's "say this")."""
        self.early = False
        """Started on a partial transcript while the user was still speaking; confirmed by the final one."""
        self.verification: asyncio.Task[None] | None = None
        """The final transcript checking an early turn (one of this turn's tasks)."""
        self.commit_when_verified = False
        """The user's turn ended before the final transcript confirmed this early reply."""
        self.spoken: list[SpokenClause] = []
        self.options = ResponseOptions()
        """What the client asked of this reply beyond the session's settings."""
        self.context: list[Message] | None = None
        """The items the reply answers instead of the conversation's history (a response's ``input``)."""
        self.held_outputs: list[tuple[Message, str | None]] = []
        """Outputs of this turn's calls sent by the client before the turn closed (with their client event ids)."""
        self.judge: Callable[[Turn], Awaitable[bool]] | None = None
        """For a turn begun on speech over a reply: told the final transcript, says whether the speech interrupts the
        reply (False: a backchannel or noise; the turn then leaves no reply and no message)."""
        self.calls_first = False
        """The reply began a call before it wrote any words (its items are in that order)."""
        self.user_audio_ms = 0
        """How long the user's audio this turn heard was (ms; 0 for a typed or no user message)."""
        self.calls: list[Message] = []
        """The function calls the reply wrote, in order (``text``: the arguments as written so far)."""
        self.error: BaseException | None = None
        """The first failure of any of this turn's tasks, kept for inspection and logged once (never swallowed); a
        failure of the reply itself also ends the turn ``failed`` and tells the client."""
        self.transcribed = asyncio.Event()
        """Set once the final transcript of the user's audio is in ``user_text``."""
        self.decided = asyncio.Event()
        """Set once the turn is committed or over."""
        self.finished = asyncio.Event()
        """Set once the turn is over and its tasks have ended."""
        self.answering = asyncio.Event()
        """Set once the reply has something for the user to hear or read (audio, text, a function call), held or sent,
        or the turn has nothing more to say (a failure, no reply to noise) or is over: a semantic end of turn waits for
        it (:mod:`~realtime.session.endpointing`)."""
        self._phase = Phase.SPECULATIVE
        self._outcome: Outcome | None = None
        self._emit = emit
        self._held: list[OutputItem] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    # ---- state --------------------------------------------------------------------------------------

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def outcome(self) -> Outcome | None:
        """How the turn ended; None while it is not over."""
        return self._outcome

    @property
    def live(self) -> bool:
        return self._phase is not Phase.DONE

    @property
    def speculative(self) -> bool:
        return self._phase is Phase.SPECULATIVE

    @property
    def committed(self) -> bool:
        return self._phase is Phase.COMMITTED

    def _step(self, step: Step) -> None:
        phase = TRANSITIONS.get((self._phase, step))
        if phase is None:
            name = step if isinstance(step, str) else step.value
            raise TurnStateError(f"turn {self.id}: cannot {name} a turn that is {self._describe()}")
        self._phase = phase
        if isinstance(step, Outcome):
            self._outcome = step
        self.decided.set()

    def _describe(self) -> str:
        return self._phase.value if self._outcome is None else f"{self._phase.value} ({self._outcome.value})"

    def commit(self) -> None:
        """The user's turn ended: send everything held, in order, and everything emitted from now on.

        Raises :class:`~realtime.errors.TurnStateError` unless the turn is speculative."""
        self._step("commit")
        held, self._held = self._held, []
        for item in held:
            self._emit(item)

    def end(self, outcome: Outcome) -> None:
        """The turn ran to its end (``completed``, ``failed``, or ``discarded`` as noise). Its own tasks may still be
        running (the caller is one of them); :attr:`finished` is set. Raises on a step the table does not allow."""
        self._step(outcome)
        self._held.clear()
        self.answering.set()
        self.finished.set()

    async def stop(self, outcome: Outcome) -> None:
        """Stop the turn from outside as ``outcome``: cancel and await every task it owns (but the caller's own),
        drop anything held. Raises :class:`~realtime.errors.TurnStateError` on a step the table does not allow."""
        self._step(outcome)
        self._held.clear()
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):  # a failure is already kept by _task_done
                await task
        self.answering.set()
        self.finished.set()

    # ---- tasks and output ---------------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run ``coro`` as one of this turn's tasks: :meth:`stop` cancels it; a failure is kept in :attr:`error`."""
        task = asyncio.create_task(coro, name=f"{self.id}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            self.fail_with(exc)

    def fail_with(self, exc: BaseException) -> None:
        """Keep ``exc`` as the turn's error (the first one wins) and log it once."""
        if self.error is None:
            self.error = exc
            log.error("turn %s failed", self.id, exc_info=exc)

    def emit(self, item: OutputItem) -> None:
        """Send ``item`` now if committed, hold it if speculative, drop it if the turn is over."""
        if isinstance(item, ANSWERING) and self._phase is not Phase.DONE:
            self.answering.set()
        if self._phase is Phase.COMMITTED:
            self._emit(item)
        elif self._phase is Phase.SPECULATIVE:
            self._held.append(item)

    def emit_first(self, item: OutputItem) -> None:
        """Like :meth:`emit`, but ahead of everything held (a transcript that arrives after the reply began)."""
        if self._phase is Phase.SPECULATIVE:
            self._held.insert(0, item)
        else:
            self.emit(item)

    def heard_text(self, heard_samples: int) -> str:
        """The words the user heard, given how many reply samples were played (whole clauses, then the played share
        of the words of the clause being spoken)."""
        words: list[str] = []
        remaining = heard_samples
        for clause in self.spoken:
            if remaining >= clause.samples:
                words += clause.text.split()
                remaining -= clause.samples
                continue
            clause_words = clause.text.split()
            words += clause_words[: int(len(clause_words) * remaining / max(clause.samples, 1))]
            break
        return " ".join(words)

    @property
    def produced_samples(self) -> int:
        """Reply audio produced so far (at the session's output rate)."""
        return sum(clause.samples for clause in self.spoken)
