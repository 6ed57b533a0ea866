"""One reply: a Turn owns its tasks, holds its output while it is speculative, and knows what was heard."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from enum import Enum
from typing import Any

from realtime.events import OutputItem
from realtime.latency import LatencyRecord


class TurnState(Enum):
    SPECULATIVE = "speculative"
    """Started at a pause that may end the user's turn; its output is held back."""
    COMMITTED = "committed"
    """The user's turn ended: output flows."""
    DISCARDED = "discarded"
    """The user went on speaking: the speculation is dropped without a sound."""
    INTERRUPTED = "interrupted"
    """Barge-in: stopped, its history cut to what was heard."""
    CANCELLED = "cancelled"
    """Stopped by the client (``response.cancel``), its history cut to what was heard."""
    FAILED = "failed"
    COMPLETED = "completed"


@dataclass
class SpokenClause:
    text: str
    samples: int


class Turn:
    """A reply in progress; ``emit`` is where its items go once committed."""

    def __init__(
        self, turn_id: str, generation: int, record: LatencyRecord, emit: Callable[[OutputItem], None], *, respond: bool = True
    ) -> None:
        self.id = turn_id
        self.generation = generation
        self.record = record
        self.respond = respond
        """Reply once the user's words are known (off: only transcribe them)."""
        self.state = TurnState.SPECULATIVE
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
        self.commit_when_verified = False
        """The user's turn ended before the final transcript confirmed this early reply."""
        self.spoken: list[SpokenClause] = []
        self._emit = emit
        self._held: list[OutputItem] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self.decided = asyncio.Event()
        """Set once the turn is committed or ended."""
        self.finished = asyncio.Event()

    @property
    def live(self) -> bool:
        return self.state in (TurnState.SPECULATIVE, TurnState.COMMITTED)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=f"{self.id}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def emit(self, item: OutputItem) -> None:
        """Send ``item`` now if committed, hold it if speculative, drop it if the turn is over."""
        if self.state is TurnState.COMMITTED:
            self._emit(item)
        elif self.state is TurnState.SPECULATIVE:
            self._held.append(item)

    def emit_first(self, item: OutputItem) -> None:
        """Like :meth:`emit`, but ahead of everything held (a transcript that arrives after the reply began)."""
        if self.state is TurnState.SPECULATIVE:
            self._held.insert(0, item)
        else:
            self.emit(item)

    def commit(self) -> None:
        if self.state is not TurnState.SPECULATIVE:
            return
        self.state = TurnState.COMMITTED
        self.decided.set()
        held, self._held = self._held, []
        for item in held:
            self._emit(item)

    async def stop(self, state: TurnState) -> None:
        """End the turn as ``state``: cancel and await every task it owns, drop anything held."""
        if self.live:
            self.state = state
        self.decided.set()
        self._held.clear()
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.finished.set()

    def heard_text(self, heard_samples: int) -> str:
        """The words the user heard, given how many reply samples were played."""
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
