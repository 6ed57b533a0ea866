"""The wire protocol, Sans-I/O: OpenAI-Realtime-compatible events in, commands and events out, no sockets.

:meth:`RealtimeProtocol.receive` turns one client message into commands for the voice session (and
``error`` events for bad input, which never end the session); :meth:`RealtimeProtocol.translate` turns
what the session produced into server events. Every transport (websocket, WebRTC data channel) is a thin
shell around it (:mod:`realtime.connection`). Both the GA event names and the older beta names are
spoken: a client that connects with the ``OpenAI-Beta: realtime=v1`` header gets the beta names
(``response.audio.delta``, ...), and session settings are accepted in either shape.

Extensions, documented in the README: the extension events are sent only to a client that asks for them with
``session.extensions`` (a list of names): ``"thinking"`` (``response.thinking.delta`` / ``.done`` stream the
reasoning), ``"latency"`` (``response.latency`` carries a reply's stage timestamps after ``response.done``) and
``"pause"`` (``output_audio_buffer.paused`` when speech over a reply paused its audio, with ``audio_end_ms`` heard so
far, and ``output_audio_buffer.resumed`` when that speech was a backchannel or noise and the reply plays on; speech
that interrupts is told as always: ``output_audio_buffer.cleared``, then ``response.done`` cancelled); its settings, in
``turn_detection``, are read from any client and shown to those that ask: ``min_interruption_ms`` (null: speech over a
reply interrupts it at once, without a pause), ``min_interruption_words``, ``min_interruption_speech_ms``,
``backchannels`` and ``idle_hangup_ms`` (the
silence after the idle prompt that ends the call).
``session.reasoning = {"budget_tokens": N}`` sets the reasoning budget; ``response.create`` with
``response.interruptible = false`` asks for a reply that speech over it neither pauses nor interrupts (a greeting: what
the user says over it is answered after it). Extra fields in reference events: a
transcription ``delta`` event also carries ``transcript``, the whole current hypothesis (Whisper may revise earlier
words, and then ``delta`` holds the whole text); ``conversation.item.truncated`` also carries ``transcript``, the
words of the reply that were heard.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import math
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from audio.codecs import AudioFormat, AudioFormatError
from audio.samples import PIPELINE_RATE, StreamResampler, resample
from realtime.commands import (
    AddItem,
    AppendAudio,
    CancelResponse,
    ClearInput,
    Command,
    CommitInput,
    Configure,
    CreateResponse,
    DeleteMessage,
    RetrieveItem,
    Send,
    TruncateMessage,
)
from realtime.conversation import Message, Truncation
from realtime.events import (
    AssistantTextDelta,
    AudioCleared,
    AudioOut,
    AudioPaused,
    AudioResumed,
    ErrorEvent,
    IdleTimeout,
    InputCleared,
    InputCommitted,
    ItemAdded,
    ItemDeleted,
    ItemRetrieved,
    OutputItem,
    ReasoningDelta,
    ReasoningDone,
    ReplyDone,
    ReplyStarted,
    ReplyTruncated,
    SettingsChanged,
    SpeechStarted,
    SpeechStopped,
    ToolCallDelta,
    ToolCallDone,
    ToolCallStarted,
    UserTranscriptFinal,
    UserTranscriptPartial,
)
from realtime.session.config import ResponseOptions, SessionConfig
from realtime.tools import ToolUse
from realtime.wire_responses import ResponseEvents, item_object
from realtime.wire_settings import (
    ProtocolError,
    audio_format,
    audio_output,
    conversation_item,
    extensions,
    field,
    item_audio,
    known_fields,
    metadata,
    reasoning_budget,
    response_input,
    token_limit,
    tool_choice,
    tools,
    truncation,
    turn_detection,
)

MAX_EVENT_BYTES = 4 * 1024 * 1024
"""Largest client event accepted (larger ones are refused with an error; the session goes on)."""

VOICE = "joe"
"""The one voice of the embedded synthesiser (Piper's en_US joe)."""

REFERENCE_VOICES = frozenset({"alloy", "ash", "ballad", "cedar", "coral", "echo", "marin", "sage", "shimmer", "verse"})
"""The reference's voice names: accepted, and spoken with :data:`VOICE` (clients such as the Agents SDKs send one by
default)."""

EXTENSIONS = frozenset({"thinking", "latency", "pause"})
"""Extension events a client may ask for with ``session.extensions``."""

_BETA_NAMES = {
    "response.output_audio.delta": "response.audio.delta",
    "response.output_audio.done": "response.audio.done",
    "response.output_audio_transcript.delta": "response.audio_transcript.delta",
    "response.output_audio_transcript.done": "response.audio_transcript.done",
    "response.output_text.delta": "response.text.delta",
    "response.output_text.done": "response.text.done",
}
_SESSION_FIELDS = frozenset({
    # GA (openai.types.realtime.RealtimeSessionCreateRequest) and what a session object echoes
    "type", "model", "instructions", "audio", "include", "max_output_tokens", "output_modalities", "prompt", "tool_choice",
    "tools", "tracing", "truncation", "id", "object", "expires_at",
    # beta (openai.types.beta.realtime.session_update_event.Session)
    "modalities", "voice", "input_audio_format", "output_audio_format", "input_audio_transcription", "turn_detection",
    "temperature", "max_response_output_tokens", "speed", "input_audio_noise_reduction", "client_secret",
    # extensions
    "reasoning", "extensions",
})
_AUDIO_FIELDS = {"input": frozenset({"format", "transcription", "turn_detection", "noise_reduction"}),
                 "output": frozenset({"format", "voice", "speed"})}
_RESPONSE_FIELDS = frozenset({
    "audio", "conversation", "input", "instructions", "max_output_tokens", "metadata", "output_modalities", "prompt",
    "tool_choice", "tools",  # GA (openai.types.realtime.RealtimeResponseCreateParams)
    "modalities", "voice", "output_audio_format", "temperature", "max_response_output_tokens",  # beta
    "interruptible",  # extension
})


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
        self._responses = ResponseEvents(self._event, beta=beta)
        self.extensions: frozenset[str] = frozenset()
        """The extension events this client asked for."""
        self.spoke = False
        """A reply's audio was sent (the voice can no longer change)."""

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
                event = json.loads(message, parse_constant=_not_a_number, parse_float=_finite)
            except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # (RecursionError: nested too deep)
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
        samples = self._decode(field(event, "audio", str), "audio")
        return [AppendAudio(self._resampler.process(samples))] if len(samples) else []

    def _decode(self, audio: str, param: str) -> np.ndarray:
        """Base64 audio in the session's input format, as float32 samples at the input rate."""
        try:
            data = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ProtocolError("invalid_audio", f"audio is not valid base64: {exc}", param) from exc
        try:
            return self.input_format.decode(data)
        except AudioFormatError as exc:
            raise ProtocolError("invalid_audio", str(exc), param) from exc

    def _session_update(self, event: dict[str, Any], event_id: str | None) -> list[Command]:
        session = field(event, "session", dict)
        audio: dict[str, Any] = session["audio"] if isinstance(session.get("audio"), dict) else {}
        audio_in: dict[str, Any] = audio["input"] if isinstance(audio.get("input"), dict) else {}
        audio_out: dict[str, Any] = audio["output"] if isinstance(audio.get("output"), dict) else {}
        known_fields(session, _SESSION_FIELDS, "session")
        for side, fields in (("input", audio_in), ("output", audio_out)):
            known_fields(fields, _AUDIO_FIELDS[side], f"session.audio.{side}")
        self._voice(session.get("voice", audio_out.get("voice")))
        changes: dict[str, Any] = {}
        if "tools" in session or "tool_choice" in session:
            offered = tools(session["tools"], "session") if "tools" in session else self.config.tools.tools
            choice = tool_choice(session.get("tool_choice", "auto"), offered, "session")
            changes["tools"] = ToolUse(offered, choice)
        modalities = session.get("output_modalities", session.get("modalities"))
        if modalities is not None:
            changes["audio_output"] = audio_output(modalities, "session")
        if "extensions" in session:
            self.extensions = extensions(session["extensions"], EXTENSIONS)
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
        if "truncation" in session:
            changes["truncation"] = truncation(session["truncation"])
        if input_format != self.input_format:
            self.input_format = input_format
            self._resampler = StreamResampler(input_format.rate, PIPELINE_RATE)
        self.output_format = output_format
        self.config = dataclasses.replace(self.config, output_rate=output_format.rate, **changes)
        return [Configure(self.config), Send(self._event("session.updated", session=self.session_object()))]

    def _item_create(self, event: dict[str, Any], event_id: str | None) -> list[Command]:
        previous = event.get("previous_item_id")
        if previous is not None and not isinstance(previous, str):
            raise ProtocolError("invalid_value", "previous_item_id must be a string", "previous_item_id")
        item = conversation_item(event.get("item"), "item")
        parts = item_audio(event["item"])
        if not parts:
            return [AddItem(item, previous, event_id)]
        audio = [self._decode(part, "item.content") for part in parts]
        return [AddItem(item, previous, event_id, resample(np.concatenate(audio), self.input_format.rate, PIPELINE_RATE))]

    def _response_create(self, event: dict[str, Any], event_id: str | None) -> list[Command]:
        """``response.create`` with its per-response options (``response``); every option is checked first."""
        asked = event.get("response", {})
        if not isinstance(asked, dict):
            raise ProtocolError("invalid_value", "response must be an object", "response")
        known_fields(asked, _RESPONSE_FIELDS, "response")
        self._voice(asked.get("voice"))
        options: dict[str, Any] = {}
        if "instructions" in asked:
            options["instructions"] = field(asked, "instructions", str)
        if "tools" in asked or "tool_choice" in asked:
            offered = tools(asked["tools"], "response") if "tools" in asked else self.config.tools.tools
            options["tools"] = ToolUse(offered, tool_choice(asked.get("tool_choice", "auto"), offered, "response"))
        limit = asked.get("max_output_tokens", asked.get("max_response_output_tokens"))
        if limit is not None:
            options["max_answer_tokens"] = token_limit(limit)
        modalities = asked.get("output_modalities", asked.get("modalities"))
        if modalities is not None:
            options["audio_output"] = audio_output(modalities, "response")
        if "metadata" in asked:
            options["metadata"] = metadata(asked["metadata"])
        conversation = asked.get("conversation", "auto")
        if conversation not in ("auto", "none"):
            raise ProtocolError("invalid_value", "response.conversation must be 'auto' or 'none'", "response.conversation")
        options["out_of_band"] = conversation == "none"
        if "input" in asked:
            options["input"] = response_input(asked["input"])
        if "interruptible" in asked:
            options["interruptible"] = field(asked, "interruptible", bool)
        return [CreateResponse(ResponseOptions(**options), event_id)]

    def _voice(self, voice: object) -> None:
        if voice is None or (isinstance(voice, str) and (voice == VOICE or voice in REFERENCE_VOICES)):
            return
        if self.spoke:
            raise ProtocolError("cannot_update_voice", "the voice cannot change once the assistant has spoken", "session.voice")
        raise ProtocolError("invalid_value", f"unknown voice {voice!r}; this server has {VOICE!r}", "session.voice")

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
        "conversation.item.retrieve": lambda self, event, event_id: [RetrieveItem(field(event, "item_id", str), event_id)],
        "response.create": _response_create,
        "response.cancel": lambda self, event, event_id: [CancelResponse(event_id)],
        "output_audio_buffer.clear": lambda self, event, event_id: [CancelResponse(event_id)],
    }

    # ---- server -> client ------------------------------------------------------------------------

    def translate(self, item: OutputItem) -> list[dict[str, Any]]:
        """Server events for one thing the session produced."""
        responses = self._responses
        match item:
            case AudioOut():
                self.spoke = True
                return responses.audio(item.turn_id, base64.b64encode(self.output_format.encode(item.samples)).decode())
            case AssistantTextDelta():
                return responses.words(item.turn_id, item.text)
            case ReasoningDelta() if "thinking" in self.extensions:
                return [self._reply_event("response.thinking.delta", item.turn_id, delta=item.text)]
            case ReasoningDone() if "thinking" in self.extensions:
                return [self._reply_event("response.thinking.done", item.turn_id, text=item.text)]
            case SpeechStarted():
                return [self._event("input_audio_buffer.speech_started", audio_start_ms=_ms(item.sample), item_id=item.item_id)]
            case SpeechStopped():
                return [self._event("input_audio_buffer.speech_stopped", audio_end_ms=_ms(item.sample), item_id=item.item_id)]
            case InputCommitted():
                user = item_object(Message("user", "", item.item_id), beta=self.beta, audio=True)
                return [
                    self._event("input_audio_buffer.committed", previous_item_id=item.previous_item_id, item_id=item.item_id),
                    responses.item_added(user, item.previous_item_id),
                ]
            case InputCleared():
                return [self._event("input_audio_buffer.cleared")]
            case IdleTimeout() if not self.beta:  # the beta protocol has no such event
                return [self._event("input_audio_buffer.timeout_triggered", audio_start_ms=_ms(item.start),
                                    audio_end_ms=_ms(item.end), item_id=item.item_id)]
            case UserTranscriptPartial():
                previous = self._partials.get(item.item_id, "")
                delta = item.text[len(previous):] if item.text.startswith(previous) else item.text
                self._partials[item.item_id] = item.text
                return [self._event("conversation.item.input_audio_transcription.delta", item_id=item.item_id,
                                    content_index=0, delta=delta, transcript=item.text)]
            case UserTranscriptFinal():
                self._partials.pop(item.item_id, None)
                usage = {"type": "duration", "seconds": round(item.audio_seconds, 3)}
                heard = item_object(Message("user", item.text, item.item_id), beta=self.beta, audio=True)
                return [
                    self._event("conversation.item.input_audio_transcription.completed", item_id=item.item_id,
                                content_index=0, transcript=item.text, usage=usage),
                    *responses.item_done(heard),
                ]
            case ItemAdded():
                added = item_object(item.item, beta=self.beta, audio=item.item.audio_ms > 0)
                return [responses.item_added(added, item.previous_item_id), *responses.item_done(added)]
            case ItemRetrieved():
                retrieved = item_object(item.item, beta=self.beta, audio=item.item.audio_ms > 0)
                return [self._event("conversation.item.retrieved", item=retrieved)]
            case ItemDeleted():
                return [self._event("conversation.item.deleted", item_id=item.item_id)]
            case ReplyStarted():
                return responses.started(item.turn_id, item.item_id, audio=item.audio, metadata=item.metadata,
                                         in_conversation=not item.out_of_band)
            case ToolCallStarted():
                return responses.call_started(item.turn_id, item.item_id, item.call_id, item.name)
            case ToolCallDelta():
                return responses.call_delta(item.turn_id, item.item_id, item.delta)
            case ToolCallDone():
                return responses.call_done(item.turn_id, item.item_id, item.arguments)
            case ReplyDone():
                message_id = responses.message_id(item.turn_id)
                events = responses.done(item.turn_id, item.status, item.text)
                if "latency" in self.extensions:
                    events.append(self._event("response.latency", response_id=_response_id(item.turn_id), item_id=message_id,
                                              latency=item.latency))
                return events
            case AudioCleared():
                return [self._event("output_audio_buffer.cleared", response_id=_response_id(item.turn_id))]
            case AudioPaused() if "pause" in self.extensions:
                return [self._event("output_audio_buffer.paused", response_id=_response_id(item.turn_id),
                                    audio_end_ms=item.audio_end_ms)]
            case AudioResumed() if "pause" in self.extensions:
                return [self._event("output_audio_buffer.resumed", response_id=_response_id(item.turn_id))]
            case ReplyTruncated():
                return [self._event("conversation.item.truncated", item_id=item.item_id, content_index=0,
                                    audio_end_ms=item.audio_end_ms, transcript=item.text)]
            case ErrorEvent():
                return [self.error(item.code, item.message, event_id=item.event_id)]
            case SettingsChanged():  # changed elsewhere (an MQTT control); the connection has set ``config`` already
                return [self._event("session.updated", session=self.session_object())]
            case ReasoningDelta() | ReasoningDone() | AudioPaused() | AudioResumed() | IdleTimeout():  # not for this client
                return []
        raise TypeError(f"no server event for {type(item).__name__}")

    def error(self, code: str, message: str, *, event_id: str | None = None, param: str | None = None) -> dict[str, Any]:
        kind = "server_error" if code in ("reply_failed",) else "invalid_request_error"
        return self._event("error", error={"type": kind, "code": code, "message": message, "param": param, "event_id": event_id})

    def session_object(self) -> dict[str, Any]:
        """The session's settings, in the shape this client's protocol version uses."""
        config = self.config
        detection: dict[str, Any] | None = None
        if config.turn_detection and config.policy.eagerness is not None:
            detection = {
                "type": "semantic_vad", "eagerness": config.policy.eagerness,
                "create_response": config.auto_respond, "interrupt_response": config.interrupt_response,
            }
        elif config.turn_detection:
            detection = {
                "type": "server_vad",
                "threshold": config.policy.threshold,
                "prefix_padding_ms": config.prefix_padding_ms,
                "silence_duration_ms": config.policy.end_of_turn_silence_ms,
                "create_response": config.auto_respond,
                "interrupt_response": config.interrupt_response,
                **({"idle_timeout_ms": config.idle_timeout_ms} if not self.beta else {}),
            }
        if detection is not None and "pause" in self.extensions:
            policy = config.policy
            detection |= {"min_interruption_ms": policy.min_interruption_ms, "min_interruption_words": policy.min_interruption_words,
                          "min_interruption_speech_ms": policy.min_interruption_speech_ms,
                          "backchannels": list(policy.backchannels), "idle_hangup_ms": config.idle_hangup_ms}
        common = {
            "id": self.session_id,
            "object": "realtime.session",
            "instructions": config.instructions,
            "max_output_tokens" if not self.beta else "max_response_output_tokens": config.max_answer_tokens,
            "reasoning": {"budget_tokens": config.reasoning_budget},
            "tools": [t.wire() for t in config.tools.tools],
            "tool_choice": _choice(config.tools.choice),
            **({"extensions": sorted(self.extensions)} if self.extensions else {}),
        }
        modalities = ["audio"] if config.audio_output else ["text"]
        if self.beta:
            return {
                **common,
                "modalities": ["audio", "text"] if config.audio_output else ["text"],
                "voice": VOICE,
                "input_audio_format": self.input_format.beta_name(),
                "output_audio_format": self.output_format.beta_name(),
                "input_audio_transcription": {},  # the beta names only OpenAI's models here
                "turn_detection": detection,
                "temperature": config.temperature,
            }
        return {
            "type": "realtime",
            "model": self.model,
            **common,
            "truncation": _truncation(config.truncation),
            "output_modalities": modalities,
            "audio": {
                "input": {"format": self.input_format.ga_object(), "transcription": {"model": "whisper-base"},
                          "turn_detection": detection},
                "output": {"format": self.output_format.ga_object(), "voice": VOICE},
            },
        }

    def _reply_event(self, kind: str, turn_id: str, **fields: Any) -> dict[str, Any]:
        return self._event(kind, response_id=_response_id(turn_id), item_id=self._responses.message_id(turn_id), **fields)

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        self._events += 1
        name = _BETA_NAMES.get(kind, kind) if self.beta else kind
        return {"type": name, "event_id": f"event_{self._events:06d}", **fields}


def _not_a_number(constant: str) -> float:
    """Python's json reads ``NaN``, ``Infinity`` and ``-Infinity``; JSON has no such numbers."""
    raise ProtocolError("invalid_json", f"{constant} is not a JSON number")


def _finite(text: str) -> float:
    """A JSON number as a float; one too large for a float (``1e999``) is refused rather than read as infinity."""
    value = float(text)
    if math.isinf(value):
        raise ProtocolError("invalid_json", f"the number {text[:32]} is too large")
    return value


def _ms(sample: int) -> int:
    return sample * 1000 // PIPELINE_RATE


def _response_id(turn_id: str) -> str:
    return f"resp_{turn_id}"


def _choice(choice: str) -> str | dict[str, str]:
    return choice if choice in ("auto", "none", "required") else {"type": "function", "name": choice}


def _truncation(value: Truncation) -> str | dict[str, Any]:
    """The session's ``truncation`` as the reference writes it."""
    if value.auto:
        return "auto"
    limits = {"token_limits": {"post_instructions": value.post_instructions_tokens}} if value.post_instructions_tokens else {}
    return {"type": "retention_ratio", "retention_ratio": value.retention_ratio, **limits}
