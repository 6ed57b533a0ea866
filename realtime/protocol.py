"""The wire protocol, Sans-I/O: OpenAI-Realtime-compatible events in, commands and events out, no sockets.

:meth:`RealtimeProtocol.receive` turns one client message into commands for the voice session (and
``error`` events for bad input, which never end the session); :meth:`RealtimeProtocol.translate` turns
what the session produced into server events. Every transport (websocket, WebRTC data channel) is a thin
shell around it (:mod:`realtime.connection`). Both the GA event names and the older beta names are
spoken: a client that connects with the ``OpenAI-Beta: realtime=v1`` header gets the beta names
(``response.audio.delta``, ...), and session settings are accepted in either shape.

Extensions: ``response.thinking.delta`` / ``.done`` stream the reasoning; ``response.latency`` carries a
reply's stage timestamps; ``session.reasoning = {"budget_tokens": N}`` sets the reasoning budget; a
transcription ``delta`` event also carries ``transcript``, the whole current hypothesis (Whisper may revise
earlier words, and then ``delta`` holds the whole text); ``conversation.item.truncated`` also carries
``transcript``, the words of the reply that were heard.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from collections.abc import Callable
from typing import Any, ClassVar

from audio.codecs import AudioFormat, AudioFormatError
from audio.samples import PIPELINE_RATE, StreamResampler
from realtime.commands import (
    AddMessage,
    AppendAudio,
    CancelResponse,
    ClearInput,
    Command,
    CommitInput,
    Configure,
    CreateResponse,
    DeleteMessage,
    Send,
    TruncateMessage,
)
from realtime.events import (
    AssistantTextDelta,
    AudioCleared,
    AudioOut,
    ErrorEvent,
    InputCleared,
    InputCommitted,
    ItemAdded,
    ItemDeleted,
    OutputItem,
    ReasoningDelta,
    ReasoningDone,
    ReplyDone,
    ReplyStarted,
    ReplyTruncated,
    SettingsChanged,
    SpeechStarted,
    SpeechStopped,
    UserTranscriptFinal,
    UserTranscriptPartial,
)
from realtime.session.config import SessionConfig
from realtime.wire_settings import (
    ProtocolError,
    audio_format,
    field,
    reasoning_budget,
    token_limit,
    turn_detection,
)

MAX_EVENT_BYTES = 4 * 1024 * 1024
"""Largest client event accepted (larger ones are refused with an error; the session goes on)."""

_BETA_NAMES = {
    "response.output_audio.delta": "response.audio.delta",
    "response.output_audio.done": "response.audio.done",
    "response.output_audio_transcript.delta": "response.audio_transcript.delta",
    "response.output_audio_transcript.done": "response.audio_transcript.done",
}
_STATUS = {"completed": "completed", "interrupted": "cancelled", "cancelled": "cancelled", "failed": "failed"}


class RealtimeProtocol:
    """The protocol state of one connection: settings, formats, response and item ids."""

    def __init__(
        self,
        session_id: str,
        config: SessionConfig | None = None,
        *,
        beta: bool = False,
        model: str = "embedded",
        max_event_bytes: int = MAX_EVENT_BYTES,
    ) -> None:
        self.session_id = session_id
        self.beta = beta
        self.model = model
        self.max_event_bytes = max_event_bytes
        self.input_format = AudioFormat()
        self.output_format = AudioFormat()
        self.config = dataclasses.replace(config or SessionConfig(), output_rate=self.output_format.rate)
        self._resampler = StreamResampler(self.input_format.rate, PIPELINE_RATE)
        self._events = 0
        self._partials: dict[str, str] = {}
        self._reply_items: dict[str, str] = {}
        self._last_item: str | None = None

    # ---- client -> server ------------------------------------------------------------------------

    def start(self) -> list[Command]:
        """What the connection begins with: ``session.created`` and the session's settings."""
        return [Configure(self.config), Send(self._event("session.created", session=self.session_object()))]

    def receive(self, message: str | bytes) -> list[Command]:
        """One client message in; commands out (an ``error`` event for anything wrong with it)."""
        event_id = None
        try:
            if len(message) > self.max_event_bytes:
                raise ProtocolError("message_too_large", f"the event is {len(message)} bytes; the limit is {self.max_event_bytes}")
            try:
                event = json.loads(message)
            except (ValueError, UnicodeDecodeError) as exc:
                raise ProtocolError("invalid_json", f"the message is not valid JSON: {exc}") from exc
            if not isinstance(event, dict):
                raise ProtocolError("invalid_event", "an event must be a JSON object")
            event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
            kind = event.get("type")
            handler = self._HANDLERS.get(kind) if isinstance(kind, str) else None
            if handler is None:
                raise ProtocolError("invalid_event_type", f"unknown event type {kind!r}", "type")
            return handler(self, event, event_id)
        except ProtocolError as exc:
            return [Send(self.error(exc.code, str(exc), event_id=event_id, param=exc.param))]

    def _append(self, event: dict[str, Any], event_id: str | None) -> list[Command]:
        audio = field(event, "audio", str)
        try:
            data = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ProtocolError("invalid_audio", f"audio is not valid base64: {exc}", "audio") from exc
        try:
            samples = self.input_format.decode(data)
        except AudioFormatError as exc:
            raise ProtocolError("invalid_audio", str(exc), "audio") from exc
        return [AppendAudio(self._resampler.process(samples))] if len(samples) else []

    def _session_update(self, event: dict[str, Any], event_id: str | None) -> list[Command]:
        session = field(event, "session", dict)
        audio: dict[str, Any] = session["audio"] if isinstance(session.get("audio"), dict) else {}
        audio_in: dict[str, Any] = audio["input"] if isinstance(audio.get("input"), dict) else {}
        audio_out: dict[str, Any] = audio["output"] if isinstance(audio.get("output"), dict) else {}
        changes: dict[str, Any] = {}
        if "instructions" in session:
            changes["instructions"] = field(session, "instructions", str)
        for key, value in (("turn_detection", session), ("turn_detection", audio_in)):
            if key in value:
                changes.update(turn_detection(value[key], self.config.policy))
        input_format = audio_format(session.get("input_audio_format", audio_in.get("format")), self.input_format, "input")
        output_format = audio_format(session.get("output_audio_format", audio_out.get("format")), self.output_format, "output")
        limit = session.get("max_response_output_tokens", session.get("max_output_tokens"))
        if limit is not None:
            changes["max_answer_tokens"] = token_limit(limit)
        if "temperature" in session:
            temperature = session["temperature"]
            if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or not 0.0 <= temperature <= 2.0:
                raise ProtocolError("invalid_value", "temperature must be a number from 0 to 2", "session.temperature")
            changes["temperature"] = float(temperature)
        if "reasoning" in session:
            changes["reasoning_budget"] = reasoning_budget(session["reasoning"])
        if input_format != self.input_format:
            self.input_format = input_format
            self._resampler = StreamResampler(input_format.rate, PIPELINE_RATE)
        self.output_format = output_format
        self.config = dataclasses.replace(self.config, output_rate=output_format.rate, **changes)
        return [Configure(self.config), Send(self._event("session.updated", session=self.session_object()))]

    def _item_create(self, event: dict[str, Any], event_id: str | None) -> list[Command]:
        item = field(event, "item", dict)
        if item.get("type", "message") != "message":
            raise ProtocolError("invalid_value", "only message items are supported", "item.type")
        role = item.get("role")
        if role not in ("user", "assistant", "system"):
            raise ProtocolError("invalid_value", "item.role must be user, assistant or system", "item.role")
        content = item.get("content")
        if not isinstance(content, list) or not content:
            raise ProtocolError("invalid_value", "item.content must be a non-empty list", "item.content")
        texts = [part.get("text") or part.get("transcript") for part in content if isinstance(part, dict)]
        if not all(isinstance(text, str) for text in texts) or not texts:
            raise ProtocolError("invalid_value", "each content part needs text (audio content is not accepted here)", "item.content")
        item_id = item.get("id") if isinstance(item.get("id"), str) else None
        return [AddMessage(role, " ".join(str(text) for text in texts), item_id, event_id)]

    def _item_truncate(self, event: dict[str, Any], event_id: str | None) -> list[Command]:
        audio_end_ms = field(event, "audio_end_ms", int)
        return [TruncateMessage(field(event, "item_id", str), audio_end_ms, event_id)]

    _HANDLERS: ClassVar[dict[str, Callable[[RealtimeProtocol, dict[str, Any], str | None], list[Command]]]] = {
        "session.update": _session_update,
        "input_audio_buffer.append": _append,
        "input_audio_buffer.commit": lambda self, event, event_id: [CommitInput(event_id)],
        "input_audio_buffer.clear": lambda self, event, event_id: [ClearInput(event_id)],
        "conversation.item.create": _item_create,
        "conversation.item.delete": lambda self, event, event_id: [DeleteMessage(field(event, "item_id", str), event_id)],
        "conversation.item.truncate": _item_truncate,
        "response.create": lambda self, event, event_id: [CreateResponse(event_id)],
        "response.cancel": lambda self, event, event_id: [CancelResponse(event_id)],
        "output_audio_buffer.clear": lambda self, event, event_id: [CancelResponse(event_id)],
    }

    # ---- server -> client ------------------------------------------------------------------------

    def translate(self, item: OutputItem) -> list[dict[str, Any]]:
        """Server events for one thing the session produced."""
        match item:
            case AudioOut():
                delta = base64.b64encode(self.output_format.encode(item.samples)).decode()
                return [self._reply_event("response.output_audio.delta", item.turn_id, delta=delta)]
            case AssistantTextDelta():
                return [self._reply_event("response.output_audio_transcript.delta", item.turn_id, delta=item.text)]
            case ReasoningDelta():
                return [self._reply_event("response.thinking.delta", item.turn_id, delta=item.text)]
            case ReasoningDone():
                return [self._reply_event("response.thinking.done", item.turn_id, text=item.text)]
            case SpeechStarted():
                return [self._event("input_audio_buffer.speech_started", audio_start_ms=_ms(item.sample), item_id=item.item_id)]
            case SpeechStopped():
                return [self._event("input_audio_buffer.speech_stopped", audio_end_ms=_ms(item.sample), item_id=item.item_id)]
            case InputCommitted():
                user = {"id": item.item_id, "object": "realtime.item", "type": "message", "role": "user", "status": "completed",
                        "content": [{"type": "input_audio", "transcript": None}]}
                return [
                    self._event("input_audio_buffer.committed", previous_item_id=item.previous_item_id, item_id=item.item_id),
                    self._item_created(user),
                ]
            case InputCleared():
                return [self._event("input_audio_buffer.cleared")]
            case UserTranscriptPartial():
                previous = self._partials.get(item.item_id, "")
                delta = item.text[len(previous):] if item.text.startswith(previous) else item.text
                self._partials[item.item_id] = item.text
                return [self._event("conversation.item.input_audio_transcription.delta", item_id=item.item_id,
                                    content_index=0, delta=delta, transcript=item.text)]
            case UserTranscriptFinal():
                self._partials.pop(item.item_id, None)
                return [self._event("conversation.item.input_audio_transcription.completed", item_id=item.item_id,
                                    content_index=0, transcript=item.text)]
            case ItemAdded():
                part_type = {"user": "input_text", "system": "input_text"}.get(item.role, "output_text" if not self.beta else "text")
                message = {"id": item.item_id, "object": "realtime.item", "type": "message", "role": item.role,
                           "status": "completed", "content": [{"type": part_type, "text": item.text}]}
                return [self._item_created(message)]
            case ItemDeleted():
                return [self._event("conversation.item.deleted", item_id=item.item_id)]
            case ReplyStarted():
                return self._reply_started(item)
            case ReplyDone():
                return self._reply_done(item)
            case AudioCleared():
                return [self._event("output_audio_buffer.cleared", response_id=_response_id(item.turn_id))]
            case ReplyTruncated():
                return [self._event("conversation.item.truncated", item_id=item.item_id, content_index=0,
                                    audio_end_ms=item.audio_end_ms, transcript=item.text)]
            case ErrorEvent():
                return [self.error(item.code, item.message, event_id=item.event_id)]
            case SettingsChanged():  # changed elsewhere (an MQTT control); the connection has set ``config`` already
                return [self._event("session.updated", session=self.session_object())]
        raise TypeError(f"no server event for {type(item).__name__}")

    def error(self, code: str, message: str, *, event_id: str | None = None, param: str | None = None) -> dict[str, Any]:
        kind = "server_error" if code in ("reply_failed",) else "invalid_request_error"
        return self._event("error", error={"type": kind, "code": code, "message": message, "param": param, "event_id": event_id})

    def session_object(self) -> dict[str, Any]:
        """The session's settings, in the shape this client's protocol version uses."""
        config = self.config
        detection = None
        if config.turn_detection:
            detection = {
                "type": "server_vad",
                "threshold": config.policy.threshold,
                "prefix_padding_ms": config.prefix_padding_ms,
                "silence_duration_ms": config.policy.end_of_turn_silence_ms,
                "create_response": config.auto_respond,
                "interrupt_response": config.interrupt_response,
            }
        common = {
            "id": self.session_id,
            "object": "realtime.session",
            "model": self.model,
            "instructions": config.instructions,
            "max_output_tokens" if not self.beta else "max_response_output_tokens": config.max_answer_tokens,
            "reasoning": {"budget_tokens": config.reasoning_budget},
        }
        if self.beta:
            return {
                **common,
                "modalities": ["audio", "text"],
                "voice": "joe",
                "input_audio_format": self.input_format.beta_name(),
                "output_audio_format": self.output_format.beta_name(),
                "input_audio_transcription": {"model": "whisper-base"},
                "turn_detection": detection,
                "temperature": config.temperature,
            }
        return {
            "type": "realtime",
            **common,
            "output_modalities": ["audio"],
            "audio": {
                "input": {"format": self.input_format.ga_object(), "transcription": {"model": "whisper-base"},
                          "turn_detection": detection},
                "output": {"format": self.output_format.ga_object(), "voice": "joe"},
            },
        }

    def _reply_started(self, item: ReplyStarted) -> list[dict[str, Any]]:
        response_id = _response_id(item.turn_id)
        self._reply_items[item.turn_id] = item.item_id
        message = {"id": item.item_id, "object": "realtime.item", "type": "message", "role": "assistant",
                   "status": "in_progress", "content": []}
        return [
            self._event("response.created", response={"id": response_id, "object": "realtime.response",
                                                      "status": "in_progress", "output": []}),
            self._event("response.output_item.added", response_id=response_id, output_index=0, item=message),
            self._item_created(message),
            self._event("response.content_part.added", response_id=response_id, item_id=item.item_id, output_index=0,
                        content_index=0, part={"type": self._audio_part(), "transcript": ""}),
        ]

    def _reply_done(self, item: ReplyDone) -> list[dict[str, Any]]:
        response_id = _response_id(item.turn_id)
        self._reply_items.pop(item.turn_id, None)
        status = _STATUS.get(item.status, "failed")
        part = {"type": self._audio_part(), "transcript": item.text}
        message = {"id": item.item_id, "object": "realtime.item", "type": "message", "role": "assistant",
                   "status": "completed" if status == "completed" else "incomplete", "content": [part]}
        details = None if status == "completed" else {"type": status, "reason": item.status}
        where = {"response_id": response_id, "item_id": item.item_id, "output_index": 0, "content_index": 0}
        return [
            self._event("response.output_audio.done", **where),
            self._event("response.output_audio_transcript.done", **where, transcript=item.text),
            self._event("response.content_part.done", **where, part=part),
            self._event("response.output_item.done", response_id=response_id, output_index=0, item=message),
            self._event("response.done", response={"id": response_id, "object": "realtime.response", "status": status,
                                                   "status_details": details, "output": [message]}),
            self._event("response.latency", response_id=response_id, item_id=item.item_id, latency=item.latency),
        ]

    def _item_created(self, item: dict[str, Any]) -> dict[str, Any]:
        previous_item_id, self._last_item = self._last_item, item["id"]
        return self._event("conversation.item.created", previous_item_id=previous_item_id, item=item)

    def _reply_event(self, kind: str, turn_id: str, **fields: Any) -> dict[str, Any]:
        return self._event(kind, response_id=_response_id(turn_id), item_id=self._reply_items.get(turn_id), output_index=0,
                           content_index=0, **fields)

    def _audio_part(self) -> str:
        return "audio" if self.beta else "output_audio"

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        self._events += 1
        name = _BETA_NAMES.get(kind, kind) if self.beta else kind
        return {"type": name, "event_id": f"event_{self._events:06d}", **fields}


def _ms(sample: int) -> int:
    return sample * 1000 // PIPELINE_RATE


def _response_id(turn_id: str) -> str:
    return f"resp_{turn_id}"
