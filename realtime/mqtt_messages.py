"""What the MQTT bus says and hears, pure: the messages published for a session's output items, and the control
messages a session takes (parsed and checked, a :class:`ControlError` saying what is wrong). The bus itself is
:mod:`realtime.mqtt`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from audio.errors import AgentError
from audio.samples import PIPELINE_RATE
from realtime.events import (
    AssistantTextDelta,
    AudioCleared,
    ErrorEvent,
    OutputItem,
    ReasoningDelta,
    ReasoningDone,
    ReplyDone,
    ReplyStarted,
    ReplyTruncated,
    SpeechStarted,
    SpeechStopped,
    UserTranscriptFinal,
    UserTranscriptPartial,
)

ControlType = Literal["say", "interrupt", "instructions", "end"]
_TEXT_CONTROLS = ("say", "instructions")
MAX_CONTROL_BYTES = 64 * 1024

Message = tuple[str, dict[str, object]]
"""A sub-topic under the session's topic, and the message's fields."""


# ---- events out ---------------------------------------------------------------------------------


def event_messages(item: OutputItem) -> list[Message]:
    """What the bus publishes for one session output item (nothing for audio)."""
    match item:
        case SpeechStarted() | SpeechStopped():
            kind = "speech.started" if isinstance(item, SpeechStarted) else "speech.stopped"
            return [("speech", {"type": kind, "item_id": item.item_id, "audio_ms": item.sample * 1000 // PIPELINE_RATE})]
        case UserTranscriptPartial():
            return [("transcript/user", {"type": "transcript.user.partial", "item_id": item.item_id, "text": item.text})]
        case UserTranscriptFinal():
            ids = {"turn_id": item.turn_id, "item_id": item.item_id}
            return [("transcript/user", {"type": "transcript.user.final", **ids, "text": item.text})]
        case ReplyStarted():
            return [("response", {"type": "response.started", "turn_id": item.turn_id, "item_id": item.item_id})]
        case ReasoningDelta() | ReasoningDone():
            kind = "reasoning.delta" if isinstance(item, ReasoningDelta) else "reasoning.done"
            return [("reasoning", {"type": kind, "turn_id": item.turn_id, "text": item.text})]
        case AssistantTextDelta():
            return [("transcript/assistant", {"type": "transcript.assistant.delta", "turn_id": item.turn_id, "text": item.text})]
        case AudioCleared():
            return [("response", {"type": "response.audio_cleared", "turn_id": item.turn_id})]
        case ReplyDone():
            ids = {"turn_id": item.turn_id, "item_id": item.item_id}
            return [
                ("transcript/assistant", {"type": "transcript.assistant.done", **ids, "text": item.text}),
                ("response", {"type": "response.done", **ids, "status": item.status}),
                ("latency", {**item.latency, "type": "latency", **ids, "status": item.status}),
            ]
        case ReplyTruncated():
            return [("transcript/assistant", {"type": "transcript.assistant.truncated", "item_id": item.item_id,
                                               "text": item.text, "audio_end_ms": item.audio_end_ms})]
        case ErrorEvent():
            return [("error", {"type": "error", "code": item.code, "message": item.message})]
    return []


# ---- control in ---------------------------------------------------------------------------------


class ControlError(AgentError, ValueError):
    """A control message that cannot be carried out; ``control_id`` is its ``id``, if it had one."""

    def __init__(self, message: str, control_id: str | None = None) -> None:
        super().__init__(message)
        self.control_id = control_id


@dataclass(frozen=True)
class Control:
    type: ControlType
    text: str | None = None
    """What to say, or the new instructions."""
    id: str | None = None
    """The sender's id for the message, echoed in an error about it."""


def parse_control(payload: bytes) -> Control:
    """A control message from its JSON payload; :class:`ControlError` says what is wrong with it."""
    if len(payload) > MAX_CONTROL_BYTES:
        raise ControlError(f"a control message may hold at most {MAX_CONTROL_BYTES} bytes")
    try:
        message = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:  # (RecursionError: nested too deep)
        raise ControlError(f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ControlError("a control message is a JSON object")
    control_id = message.get("id")
    if control_id is not None and not isinstance(control_id, str):
        raise ControlError("id must be a string")
    kind, text = message.get("type"), message.get("text")
    if kind not in ("say", "interrupt", "instructions", "end"):
        raise ControlError(f"unknown type {kind!r}; expected say, interrupt, instructions or end", control_id)
    if kind in _TEXT_CONTROLS and not (isinstance(text, str) and text.strip()):
        raise ControlError(f"{kind} needs a non-empty string text", control_id)
    return Control(kind, text if kind in _TEXT_CONTROLS else None, control_id)
