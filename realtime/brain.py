"""One brain interface for every model that writes the replies.

A :class:`Brain` is loaded once per process and shared by every session; :meth:`Brain.open` gives one session its
own :class:`BrainSession`. Three implementations:

- the embedded cascade and a served text model (:mod:`realtime.cascade`): the brain reads the user's transcript,
  and prefills its decoder's cache with the history and the stable words of the partial transcripts;
- Step-Audio-R1 in this process (:mod:`realtime.step_audio.brain`) and on vLLM (:mod:`realtime.remote_brain`):
  the brain hears the audio itself, block by block as it arrives (:mod:`realtime.audio_blocks`).

The calling contract (the session keeps it; breaking it raises :class:`~realtime.errors.BrainStateError`):

1. While the user speaks: :meth:`BrainSession.hear` every chunk of the user's audio, in order, and
   :meth:`BrainSession.hear_partial` the words of the partial transcripts that are stable.
2. At a pause that may end the turn: :meth:`BrainSession.reply`, iterated to its end or closed early.
3. Then exactly one of: :meth:`BrainSession.rewind` (the user went on speaking: the reply is discarded and the audio
   it answered goes back to the turn in progress), or :meth:`BrainSession.finish_turn` with the words the user
   heard (the turn enters the brain's history; never the reasoning).
4. :meth:`BrainSession.prefill` whenever the history changed and nobody speaks, :meth:`BrainSession.close` once.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from realtime.decoder import Hold, never
from realtime.reasoning import Piece, ReplyMode
from realtime.tools import NO_TOOLS, CallPiece, ToolUse

if TYPE_CHECKING:
    from realtime.conversation import Conversation, Message

ReplyPiece = Piece | CallPiece
"""What a reply streams: reasoning and answer text, and the pieces of its tool calls."""


@dataclass(frozen=True)
class ReplyRequest:
    """What a reply is asked to be."""

    user_text: str | None
    """The user's words (what a text brain answers); None for a reply to the history as it stands. An audio brain
    answers the audio it heard and uses this only when it heard none (a typed message)."""
    max_tokens: int = 150
    """Most answer tokens."""
    reasoning_budget: int = 0
    """Most ``<think>`` tokens before the answer (0: answer at once)."""
    temperature: float = 0.0
    mode: ReplyMode = "budget"
    """Plain decoding within the budget, or a Mind-Paced Speaking schedule (audio LLM in this process only)."""
    instructions: str | None = None
    """This reply's instructions (None: the conversation's)."""
    tools: ToolUse = NO_TOOLS
    """The tools this reply may call, and the choice among them."""
    context: list[Message] | None = None
    """The items this reply answers instead of the conversation's history (an out-of-band reply's ``input``)."""
    hold: Hold = never
    """True while the reply's next words are not needed yet (asked from any thread): a decoder on this machine's CPU
    stops computing meanwhile (:meth:`~realtime.decoder.TextDecoder.generate`)."""


class BrainSession(Protocol):
    """One session's conversation on a brain. All methods run on the session's event loop."""

    hears_audio: bool
    """True when the brain hears the user's audio itself (the transcript then only tells the client)."""
    calls_tools: bool
    """True when the brain's replies may call functions (:class:`~realtime.tools.ToolUse`)."""

    async def hear(self, samples: np.ndarray) -> None:
        """The next chunk of the user's audio: float32 mono at 16 kHz, any length. A brain that reads text ignores it.

        Raises :class:`~realtime.errors.BrainStateError` once closed."""

    async def hear_partial(self, text: str) -> None:
        """The words of the user's turn so far that two partial transcripts agree on (for prefill); a brain that
        hears audio ignores it. A failure only costs latency: it is logged, never raised."""

    def reply(self, request: ReplyRequest) -> AsyncGenerator[ReplyPiece, None]:
        """Stream the reply: ``reasoning`` pieces, then ``answer`` pieces and tool calls (a
        :class:`~realtime.tools.CallPiece` start, argument fragments, a ``done`` piece per call). Close the iterator
        to stop generating. A brain without function calling ignores ``request.tools``.

        Raises :class:`~realtime.errors.BrainStateError` when a reply is already in flight (call :meth:`rewind` or
        :meth:`finish_turn` first) or the session is closed; a model or server failure raises
        :class:`~realtime.decoder.DecoderError`."""

    def add_item(self, message: Message, audio: np.ndarray | None = None) -> None:
        """A client's item entered the conversation (``conversation.item.create``): a brain with a history of its own
        (the audio LLMs) adds it there, hearing a user message's ``audio`` (16 kHz float32) when it has some; a brain
        that reads the session's conversation has nothing to do. Raises
        :class:`~realtime.errors.BrainStateError` once closed."""

    def rewind(self) -> None:
        """Discard the reply in flight (the user went on speaking); nothing happens when none is in flight."""

    async def finish_turn(self, heard_answer: str) -> None:
        """End the turn: the brain's history keeps the user's turn and ``heard_answer`` (nothing when empty).

        Raises :class:`~realtime.errors.BrainStateError` when no reply is in flight."""

    async def prefill(self) -> None:
        """Warm the cache with the history as it stands (after a change, at a quiet moment). Failures are logged."""

    def close(self) -> None:
        """Stop any reply and free what this session holds. Idempotent."""


class Brain(Protocol):
    """A model shared by every session."""

    def open(self, conversation: Conversation, *, block_seconds: float = 2.0, background: Hold = never) -> BrainSession:
        """A session's own conversation on this brain. ``conversation`` is the session's text history (a text brain
        builds its prompts from it; an audio brain takes its instructions and keeps its own audio history);
        ``block_seconds`` is how much audio an audio brain encodes and prefills at a time (raises ``ValueError``
        outside (0, 25]); ``background`` says, from any thread, when the session's prefills should stop computing for
        a while (:meth:`~realtime.priority.Lane.background_waits`): a brain whose model does not share this machine's
        CPU may ignore it."""
