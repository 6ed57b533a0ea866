"""What the session's stages see of the session: its state and the few things they may ask of it.

The listening stage, the history and the turn keeper are given the session as a :class:`SessionContext` (and, where
they need them, each other, explicitly), so they depend on this narrow view, not on the orchestrator that implements
it (:class:`~realtime.session.orchestrator.VoiceSession`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from realtime.brain import BrainSession
from realtime.conversation import Conversation
from realtime.events import OutputItem
from realtime.latency import LatencyRecord
from realtime.priority import Lane
from realtime.session.config import SessionConfig
from realtime.session.output import AudioSink, Router
from realtime.session.utterance import UtteranceBuffer

if TYPE_CHECKING:
    from realtime.models import Models
    from realtime.session.replying import Replier


class SessionContext(Protocol):
    models: Models
    config: SessionConfig
    sink: AudioSink
    router: Router
    clock: Callable[[], float]
    conversation: Conversation
    brain: BrainSession
    utterance: UtteranceBuffer
    user_item_id: str
    """The user message the current (or next) utterance becomes."""
    records: list[LatencyRecord]
    stats: Counter[str]
    replier: Replier
    lane: Lane
    """The session's place among the sessions sharing its models (:mod:`realtime.priority`)."""

    @property
    def closed(self) -> bool: ...

    @property
    def user_speaking(self) -> bool: ...

    @property
    def paused(self) -> bool: ...

    @property
    def playing(self) -> bool: ...

    def sample_time(self, sample: int) -> float | None: ...

    def put(self, item: OutputItem) -> None: ...

    def error(self, code: str, message: str, event_id: str | None = None) -> None: ...

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]: ...
