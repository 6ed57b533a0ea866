"""The cascade's brain: a text decoder (llama.cpp in this process, or a served chat model) that reads the transcript.

It never hears audio: the session's ASR writes the user's words. Listen while thinking is done on text: the
history is prefilled into the decoder's cache whenever it changes, and, while the user speaks, the words of the
partial transcripts that are stable, so the reply's prompt only computes its tail. A reasoning budget runs two
streams: a formulation stream writes the reasoning (the assistant's turn opened with ``<think>``), then an
articulation stream, given that reasoning as a private note, writes the answer (small instruction models do not
continue sensibly after ``</think>``; see :meth:`~realtime.conversation.Conversation.answer_prompt`).

The history is the session's :class:`~realtime.conversation.Conversation`, read at every prompt: the session keeps
it (the user's words, the answer as heard), so :meth:`CascadeSession.finish_turn` has nothing to keep.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing

import numpy as np

from realtime.brain import ReplyPiece, ReplyRequest
from realtime.conversation import STOP_SEQUENCES, Conversation, Message
from realtime.decoder import Hold, TextDecoder, never
from realtime.errors import BrainStateError
from realtime.reasoning import THINK_CLOSE, Piece, ThinkSplitter
from realtime.tools import ToolCallSplitter, ToolUse

log = logging.getLogger(__name__)


class CascadeBrain:
    """A :class:`~realtime.brain.Brain` on a text decoder shared by every session (``LlamaCppDecoder`` or
    ``RemoteTextDecoder``)."""

    def __init__(self, decoder: TextDecoder) -> None:
        self.decoder = decoder

    def open(self, conversation: Conversation, *, block_seconds: float = 2.0, background: Hold = never) -> CascadeSession:
        """A session's brain on ``conversation`` (read, never changed); its prefills hold while ``background`` says so.
        ``block_seconds`` is for audio brains and is ignored here."""
        return CascadeSession(self.decoder, conversation, background)


class CascadeSession:
    """One session's :class:`~realtime.brain.BrainSession` on the cascade's decoder."""

    hears_audio = False
    calls_tools = True

    def __init__(self, decoder: TextDecoder, conversation: Conversation, background: Hold = never) -> None:
        self._decoder = decoder
        self._conversation = conversation
        self._background = background
        """True while the prefills should hold (:meth:`~realtime.priority.Lane.background_waits`)."""
        self._prefilled = ""
        """The partial words last prefilled (a partial that adds nothing is not sent again)."""
        self._lane = asyncio.Lock()
        """One prefill at a time: a second one at once would take another of the decoder's cache slots and compute the
        shared history there again (after the history's start moved, a full prefill each, competing for the CPU)."""
        self._asked = 0
        """Prefills and replies asked for so far: a prefill still waiting for the lane when a newer one is asked for is
        skipped (the newer prompt extends or replaces it)."""
        self._replying = False
        self._epoch = 0
        """Bumped by every rewind, finish and close: a reply streams only in its own epoch."""
        self._closed = False

    async def hear(self, samples: np.ndarray) -> None:
        """Ignored (the transcript is the input). Raises :class:`~realtime.errors.BrainStateError` once closed."""
        self._check_open()

    async def hear_partial(self, text: str) -> None:
        """Prefill the history and the user's turn as far as ``text`` (stable partial words). Ignored when empty,
        unchanged since the last call, while a reply is in flight or once closed; a failure is logged."""
        if not text or text == self._prefilled or self._replying or self._closed:
            return
        self._prefilled = text
        await self._prefill(self._conversation.user_prefix(text))

    def _with_tools(self, conversation: Conversation, tools: ToolUse) -> tuple[Conversation, ToolUse]:
        """The reply's conversation with the tools its prompt shows, and the tools it may call.

        Every change of the prompt's head (the system message, where the tools are shown) makes llama.cpp prefill the
        whole history again, on the reply's critical path (``benchmarks.soak``: a forced call 5-17 s late in a 64-turn
        conversation), so the head changes only where the model must read the tools. A forced call is written by the
        grammar (:func:`~realtime.tools.call_grammar`): the embedded 0.5B filled the arguments right in 7 of 7 calls
        without reading the tools. A function's result is answered in words with the conversation's own head and no
        call allowed (the 0.5B would call again). A model shown tools it may not call answers worse (with
        ``tool_choice: none`` the 0.5B wrote calls as text for 12 of 24 corpus questions), so "none" shows none."""
        if not self._decoder.tools_in_prompt:
            return conversation.view(tools=()), tools
        if tools.choice == "auto" and conversation.answers_results():
            return conversation, dataclasses.replace(tools, choice="none")
        return (conversation if tools.forced else conversation.view(tools=tools.offered)), tools

    async def reply(self, request: ReplyRequest) -> AsyncGenerator[ReplyPiece, None]:
        """Stream the reply to ``request.user_text`` (None: to the history as it stands): with a reasoning budget,
        ``reasoning`` pieces from the formulation stream, then ``answer`` pieces from the articulation stream.

        The checks run when the iteration starts. Raises :class:`~realtime.errors.BrainStateError` when a reply is
        in flight or the session is closed, ``ValueError`` for a mode other than ``budget`` (the paced modes need
        the audio LLM in this process), :class:`~realtime.decoder.DecoderError` when the decoder fails. The stream
        ends early once the reply is rewound or the session closed.
        """
        self._check_open()
        if request.mode != "budget":
            raise ValueError(
                f"reasoning mode {request.mode!r} needs the audio LLM in this process; the cascade takes 'budget'"
            )
        if self._replying:
            raise BrainStateError("a reply is in flight: rewind() or finish_turn() first")
        self._replying = True
        self._epoch += 1
        epoch = self._epoch
        self._asked += 1
        async with self._lane:  # the prefill in flight holds most of this prompt: the reply waits for it, not redoes it
            pass
        if epoch != self._epoch:
            return
        user_text, tools = request.user_text, request.tools
        conversation = self._conversation.view(instructions=request.instructions, messages=request.context)
        conversation, tools = self._with_tools(conversation, tools)
        prompt = conversation.reply_prompt(user_text)
        if request.reasoning_budget > 0:
            thoughts: list[str] = []
            reasoning = self._decoder.generate(
                conversation.reasoning_prompt(user_text), max_tokens=request.reasoning_budget,
                stop=(THINK_CLOSE, *STOP_SEQUENCES), temperature=request.temperature, hold=request.hold,
            )
            async with aclosing(reasoning):
                async for text in reasoning:
                    if epoch != self._epoch:
                        return
                    thoughts.append(text)
                    yield Piece("reasoning", text)
            prompt = conversation.answer_prompt(user_text, "".join(thoughts))
        splitter, calls = ThinkSplitter(thinking=False), ToolCallSplitter()
        answer = self._decoder.generate(
            prompt, max_tokens=request.max_tokens, stop=STOP_SEQUENCES, temperature=request.temperature, tools=tools,
            hold=request.hold,
        )
        async with aclosing(answer):
            async for text in answer:
                if epoch != self._epoch:
                    return
                for part in calls.push(text):
                    if isinstance(part, str):
                        for piece in splitter.push(part):
                            yield piece
                    elif tools.offered:  # a call of a tool the model was not offered is dropped
                        yield part
        for part in calls.flush():
            for piece in splitter.push(part):
                yield piece
        for piece in splitter.flush():
            yield piece

    def add_item(self, message: Message, audio: np.ndarray | None = None) -> None:
        """Nothing to keep: the prompts are built from the session's conversation, which holds the item."""

    def rewind(self) -> None:
        """Discard the reply in flight (its stream ends at its next piece); nothing happens when none is in flight.
        The words already prefilled stay in the decoder's cache, ready for the user's longer turn."""
        if self._replying:
            self._replying = False
            self._epoch += 1

    async def finish_turn(self, heard_answer: str) -> None:
        """End the turn. The session's conversation is the history, so nothing is kept here (``heard_answer`` is
        for the session to record). Raises :class:`~realtime.errors.BrainStateError` when no reply is in flight or
        the session is closed."""
        self._check_open()
        if not self._replying:
            raise BrainStateError("no reply to finish: reply() first")
        self._replying = False
        self._epoch += 1

    async def prefill(self) -> None:
        """Prefill the history as it stands (call it after every change, when nobody speaks); the partial words
        start over. Ignored once closed; a failure is logged."""
        if self._closed:
            return
        self._prefilled = ""
        await self._prefill(self._conversation.history_prompt())

    def close(self) -> None:
        """Stop the reply in flight (at its next piece). Idempotent."""
        self._closed = True
        self._replying = False
        self._epoch += 1

    def _check_open(self) -> None:
        if self._closed:
            raise BrainStateError("the brain session is closed")

    async def _prefill(self, prompt: str) -> None:
        self._asked += 1
        asked = self._asked
        async with self._lane:
            if asked != self._asked or self._closed:
                return
            try:
                await self._decoder.prefill(prompt, hold=self._background)
            except Exception:  # noqa: BLE001 - a failed prefill only costs latency
                log.exception("prefill failed")
