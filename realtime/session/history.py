"""The conversation's history: the client's item commands, what a finished turn leaves, and keeping the brain's
cache warm after every change (at a quiet moment, never on a reply's critical path)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from realtime.conversation import Message
from realtime.events import ItemAdded, ItemDeleted, ReplyTruncated
from realtime.session.turn import Turn

if TYPE_CHECKING:
    from realtime.session.context import SessionContext


class History:
    """The text history of ``session`` (:attr:`SessionContext.conversation`) and the commands that change it."""

    def __init__(self, session: SessionContext) -> None:
        self._session = session
        self._conversation = session.conversation

    def last_item_id(self) -> str | None:
        messages = self._conversation.messages
        return messages[-1].id if messages else None

    def prefill(self) -> None:
        """After every change: drop the oldest turns when the history nears its limit (in one large step, while the user
        is silent unless the limit itself is passed: :meth:`~realtime.conversation.Conversation.compact`), then let the
        brain prefill the history as it stands (with ``listen_while_thinking``), in the background."""
        session = self._session
        self._conversation.compact(quiet=not session.user_speaking)
        if session.config.listen_while_thinking and not session.closed:
            session.spawn(session.brain.prefill(), "prefill")

    def add(
        self, item: Message, previous_item_id: str | None = None, event_id: str | None = None, audio: np.ndarray | None = None
    ) -> None:
        """Add a client's item (``conversation.item.create``) after ``previous_item_id`` (None: at the end, ``root``:
        at the start); a bad one gets an ``error`` item. The brain gets it too, with a user message's ``audio`` (an audio
        LLM keeps a history of its own, where it goes at the end)."""
        session = self._session
        if self._conversation.find(item.id):
            session.error("invalid_value", f"an item with id {item.id!r} already exists", event_id)
            return
        if item.kind == "message" and not item.text.strip():
            session.error("invalid_value", "the message has no text", event_id)
            return
        try:
            self._conversation.insert(item, previous_item_id)
        except KeyError:
            session.error("item_not_found", f"no conversation item {previous_item_id!r} to add the item after", event_id)
            return
        session.put(ItemAdded(dataclasses.replace(item), self._conversation.previous_id(item.id)))
        session.brain.add_item(item, audio)
        self.prefill()

    def delete(self, item_id: str, event_id: str | None = None) -> None:
        """Delete an item (``conversation.item.delete``)."""
        if not self._conversation.delete(item_id):
            self._session.error("item_not_found", f"no conversation item {item_id!r}", event_id)
            return
        self._session.put(ItemDeleted(item_id))
        self.prefill()

    def closed(self, turn: Turn, heard: str) -> None:
        """A finished turn leaves the user's words and, if the reply began, what of it was heard and the tool calls it
        wrote whole; an out-of-band reply leaves nothing."""
        if turn.options.out_of_band:
            return
        if turn.user_text:
            self._conversation.add("user", turn.user_text, turn.user_item_id, audio_ms=turn.user_audio_ms)
        items = [call for call in turn.calls if call.text]  # the calls written whole
        if turn.item_id is not None and turn.spoken:  # the client saw the reply's message begin: it stays addressable
            audio_ms = turn.produced_samples * 1000 // self._session.config.output_rate
            said = Message("assistant", heard.strip(), turn.item_id, audio_ms=audio_ms)
            items = [*items, said] if turn.calls_first else [said, *items]
        for item in items:  # in the order the reply began them
            self._conversation.insert(item)

    def truncated(self, turn: Turn, heard: str, played: int) -> None:
        """A completed reply was cut while its audio was still playing: history keeps ``heard``."""
        session = self._session
        self._conversation.truncate(turn.item_id or "", heard)
        session.put(ReplyTruncated(turn.item_id or "", heard, played * 1000 // session.config.output_rate))
        self.prefill()
