"""Server events for conversation items and responses, in the reference's shapes (``openai.types.realtime`` for GA,
``openai.types.beta.realtime`` for the beta names).

A response's items are announced as they come: a function call when the model begins it, the assistant message with
its first words (a reply that only calls tools has no message), each with ``response.output_item.added`` and, for a
response in the conversation, ``conversation.item.added`` (beta: ``conversation.item.created``); each is closed with
``.done`` events, and ``response.done`` lists them all. The GA item lifecycle is ``conversation.item.added`` then
``conversation.item.done`` for every item, whoever made it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from realtime.conversation import Message

EventFactory = Callable[..., dict[str, Any]]
"""``(type, **fields) -> event``: the protocol's numbering and naming of server events."""

_STATUS = {
    "completed": ("completed", None),
    "interrupted": ("cancelled", "turn_detected"),
    "cancelled": ("cancelled", "client_cancelled"),
}


def item_object(message: Message, *, beta: bool, status: str = "completed", audio: bool = False) -> dict[str, Any]:
    """The reference's item for ``message`` (``audio``: a user message heard as speech, or a spoken reply)."""
    base = {"id": message.id, "object": "realtime.item", "status": status}
    if message.kind == "function_call":
        return {**base, "type": "function_call", "call_id": message.call_id, "name": message.name, "arguments": message.text}
    if message.kind == "function_call_output":
        return {**base, "type": "function_call_output", "call_id": message.call_id, "output": message.text}
    part: dict[str, Any]
    if message.role == "assistant":
        part = {"type": "audio" if beta else "output_audio", "transcript": message.text} if audio else \
            {"type": "text" if beta else "output_text", "text": message.text}
    elif audio:
        part = {"type": "input_audio", "transcript": message.text or None}
    else:
        part = {"type": "input_text", "text": message.text}
    return {**base, "type": "message", "role": message.role, "content": [part]}


@dataclass
class _Response:
    id: str
    message_id: str
    audio: bool
    metadata: dict[str, str] | None
    in_conversation: bool
    output: list[dict[str, Any]] = field(default_factory=list)
    message_index: int | None = None
    """Where the assistant message is in ``output``, once announced."""

    def where(self, item_id: str) -> dict[str, Any]:
        index = next(i for i, item in enumerate(self.output) if item["id"] == item_id)
        return {"response_id": self.id, "item_id": item_id, "output_index": index}


class ResponseEvents:
    """The responses of one connection, from ``response.created`` to ``response.done``."""

    def __init__(self, event: EventFactory, *, beta: bool) -> None:
        self._event = event
        self.beta = beta
        self._responses: dict[str, _Response] = {}
        self._last_item: str | None = None
        """The conversation's last item as the client was told (the ``previous_item_id`` of the next one)."""

    def started(self, turn_id: str, message_id: str, *, audio: bool, metadata: dict[str, str] | None,
                in_conversation: bool) -> list[dict[str, Any]]:
        response = _Response(f"resp_{turn_id}", message_id, audio, metadata, in_conversation)
        self._responses[turn_id] = response
        return [self._event("response.created", response=self._object(response, "in_progress"))]

    def message_id(self, turn_id: str) -> str | None:
        response = self._responses.get(turn_id)
        return response.message_id if response is not None else None

    def words(self, turn_id: str, text: str) -> list[dict[str, Any]]:
        """Words of the reply (the transcript of its audio, or its text)."""
        response = self._responses.get(turn_id)
        if response is None:
            return []
        kind = "response.output_audio_transcript.delta" if response.audio else "response.output_text.delta"
        return [*self._open_message(response), self._event(kind, **self._part(response), delta=text)]

    def audio(self, turn_id: str, delta: str) -> list[dict[str, Any]]:
        response = self._responses.get(turn_id)
        if response is None:
            return []
        return [*self._open_message(response), self._event("response.output_audio.delta", **self._part(response), delta=delta)]

    def call_started(self, turn_id: str, item_id: str, call_id: str, name: str) -> list[dict[str, Any]]:
        response = self._responses.get(turn_id)
        if response is None:
            return []
        call = Message("assistant", "", item_id, kind="function_call", call_id=call_id, name=name)
        return self._add(response, item_object(call, beta=self.beta, status="in_progress"))

    def call_delta(self, turn_id: str, item_id: str, delta: str) -> list[dict[str, Any]]:
        response = self._responses.get(turn_id)
        if response is None:
            return []
        where = response.where(item_id)
        call = response.output[where["output_index"]]
        return [self._event("response.function_call_arguments.delta", **where, call_id=call["call_id"], delta=delta)]

    def call_done(self, turn_id: str, item_id: str, arguments: str) -> list[dict[str, Any]]:
        response = self._responses.get(turn_id)
        if response is None:
            return []
        where = response.where(item_id)
        call = response.output[where["output_index"]]
        call.update(arguments=arguments, status="completed")
        return [
            self._event("response.function_call_arguments.done", **where, call_id=call["call_id"], name=call["name"],
                        arguments=arguments),
            *self._close(response, call),
        ]

    def done(self, turn_id: str, outcome: str, text: str) -> list[dict[str, Any]]:
        """The reply ended (``outcome``: completed, interrupted, cancelled or failed) with ``text`` heard."""
        response = self._responses.pop(turn_id, None)
        if response is None:
            return []
        status, reason = _STATUS.get(outcome, ("failed", None))
        events = self._open_message(response) if text else []
        if response.message_index is not None:
            message = response.output[response.message_index]
            heard = Message("assistant", text, response.message_id)
            message.update(item_object(heard, beta=self.beta, status="completed" if status == "completed" else "incomplete",
                                       audio=response.audio))
            where = self._part(response)
            if response.audio:
                events += [
                    self._event("response.output_audio.done", **where),
                    self._event("response.output_audio_transcript.done", **where, transcript=text),
                ]
                part = {"type": "audio", "transcript": text}
            else:
                events.append(self._event("response.output_text.done", **where, text=text))
                part = {"type": "text", "text": text}
            events.append(self._event("response.content_part.done", **where, part=part))
            events += self._close(response, message)
        for item in response.output:
            if item["status"] == "in_progress":  # a call the reply never finished
                item["status"] = "incomplete"
        details: dict[str, Any] | None = None
        if status == "cancelled":
            details = {"type": "cancelled", "reason": reason}
        elif status == "failed":
            details = {"type": "failed", "error": {"type": "server_error", "code": "reply_failed"}}
        events.append(self._event("response.done", response={**self._object(response, status), "status_details": details}))
        return events

    def _object(self, response: _Response, status: str) -> dict[str, Any]:
        modalities = ["audio"] if response.audio else ["text"]
        return {
            "id": response.id, "object": "realtime.response", "status": status, "output": response.output,
            "metadata": response.metadata, "conversation_id": "conv_default" if response.in_conversation else None,
            "modalities" if self.beta else "output_modalities": modalities,
        }

    def _part(self, response: _Response) -> dict[str, Any]:
        return {"response_id": response.id, "item_id": response.message_id, "output_index": response.message_index,
                "content_index": 0}

    def _open_message(self, response: _Response) -> list[dict[str, Any]]:
        """Announce the assistant message with its first words or audio (once)."""
        if response.message_index is not None:
            return []
        message = item_object(Message("assistant", "", response.message_id), beta=self.beta, status="in_progress",
                              audio=response.audio)
        message["content"] = []
        events = self._add(response, message)
        response.message_index = len(response.output) - 1
        part = {"type": "audio", "transcript": ""} if response.audio else {"type": "text", "text": ""}
        return [*events, self._event("response.content_part.added", **self._part(response), part=part)]

    def _add(self, response: _Response, item: dict[str, Any]) -> list[dict[str, Any]]:
        response.output.append(item)
        events = [self._event("response.output_item.added", response_id=response.id, output_index=len(response.output) - 1,
                              item=item)]
        if response.in_conversation:
            events.append(self.item_added(item))
        return events

    def _close(self, response: _Response, item: dict[str, Any]) -> list[dict[str, Any]]:
        events = [self._event("response.output_item.done", response_id=response.id,
                              output_index=response.where(item["id"])["output_index"], item=item)]
        return events + (self.item_done(item) if response.in_conversation else [])

    def item_added(self, item: dict[str, Any], previous_item_id: str | None = None) -> dict[str, Any]:
        """``conversation.item.added`` (beta: ``conversation.item.created``) for ``item``, after ``previous_item_id``
        (None: after the last item announced)."""
        previous = previous_item_id if previous_item_id is not None else self._last_item
        self._last_item = item["id"]
        kind = "conversation.item.created" if self.beta else "conversation.item.added"
        return self._event(kind, previous_item_id=previous, item=item)

    def item_done(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        """``conversation.item.done`` (GA only)."""
        return [] if self.beta else [self._event("conversation.item.done", item=item)]
