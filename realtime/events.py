"""What a session emits, in order, on its output queue: events and reply audio on one queue, so text
never overtakes the speech it belongs to. Every reply item carries its turn's generation, so a sink
can drop audio of a reply that was interrupted after the item was queued."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from realtime.conversation import Message


class Interruptible:
    """Reply output that is dropped once its reply is interrupted: the router and the sinks drop an item of this
    type whose ``generation`` is older than the session's last interruption. Every other item survives
    interruptions (transcripts, ``response.done``, errors)."""

    generation: int


@dataclass(frozen=True)
class SpeechStarted:
    sample: int
    """Onset of the user's speech, in samples at 16 kHz since the session started."""
    item_id: str
    """The user message this speech will become."""


@dataclass(frozen=True)
class SpeechStopped:
    sample: int
    """End of the user's speech (the turn ended here)."""
    item_id: str


@dataclass(frozen=True)
class InputCommitted:
    """The user's audio so far became the message ``item_id`` (its transcript follows)."""

    item_id: str
    previous_item_id: str | None


@dataclass(frozen=True)
class IdleTimeout:
    """No speech for the session's ``idle_timeout_ms`` after a reply's audio ended: the agent prompts the user."""

    start: int
    """Where the silence began (input samples at 16 kHz since the session started)."""
    end: int
    """Where it timed out."""
    item_id: str
    """The user message the next speech becomes."""


@dataclass(frozen=True)
class InputCleared:
    """The user's uncommitted audio was dropped."""


@dataclass(frozen=True)
class UserTranscriptPartial:
    item_id: str
    text: str
    """Everything recognised of the current user turn so far (replaces the previous partial)."""


@dataclass(frozen=True)
class UserTranscriptFinal:
    turn_id: str
    item_id: str
    text: str
    audio_seconds: float = 0.0
    """Length of the audio transcribed (s)."""


@dataclass(frozen=True)
class ItemAdded:
    """An item added by the client (not by speech): a message, a function call or a function call's output."""

    item: Message
    """A copy of the item as the conversation holds it."""
    previous_item_id: str | None


@dataclass(frozen=True)
class ItemRetrieved:
    """An item as the conversation holds it (``conversation.item.retrieve``)."""

    item: Message
    event_id: str | None = None


@dataclass(frozen=True)
class ItemDeleted:
    item_id: str


@dataclass(frozen=True)
class ReplyStarted:
    turn_id: str
    generation: int
    item_id: str
    """The assistant message this reply becomes (announced with its first words; a reply may only call tools)."""
    audio: bool = True
    """The reply is spoken (False: text only)."""
    metadata: dict[str, str] | None = None
    """The client's metadata for this response, echoed."""
    out_of_band: bool = False
    """The reply does not enter the conversation (``conversation: "none"``)."""


@dataclass(frozen=True)
class ToolCallStarted:
    """The reply began a call of function ``name``; its item is ``item_id``."""

    turn_id: str
    generation: int
    item_id: str
    call_id: str
    name: str


@dataclass(frozen=True)
class ToolCallDelta:
    turn_id: str
    generation: int
    item_id: str
    delta: str
    """The next fragment of the arguments' JSON text."""


@dataclass(frozen=True)
class ToolCallDone:
    turn_id: str
    generation: int
    item_id: str
    call_id: str
    name: str
    arguments: str
    """The whole arguments object, JSON text."""


@dataclass(frozen=True)
class ReasoningDelta:
    turn_id: str
    generation: int
    text: str


@dataclass(frozen=True)
class ReasoningDone:
    turn_id: str
    generation: int
    text: str


@dataclass(frozen=True)
class AssistantTextDelta(Interruptible):
    """Words of the reply, emitted as their audio starts."""

    turn_id: str
    generation: int
    text: str


@dataclass(frozen=True)
class AudioOut(Interruptible):
    turn_id: str
    generation: int
    samples: np.ndarray = field(repr=False)
    """float32 mono at the session's output rate."""


@dataclass(frozen=True)
class AudioCleared:
    """Drop every queued sample of this generation now (barge-in)."""

    turn_id: str
    generation: int


@dataclass(frozen=True)
class AudioPaused:
    """Speech over the reply paused its audio at the sink (what was not yet heard is kept for :class:`AudioResumed`)."""

    turn_id: str
    generation: int
    audio_end_ms: int
    """How much of the reply had been played when it paused (ms)."""


@dataclass(frozen=True)
class AudioResumed:
    """The speech over the reply did not interrupt it (a backchannel, noise): it plays on from where it paused."""

    turn_id: str
    generation: int


@dataclass(frozen=True)
class ReplyDone:
    turn_id: str
    generation: int
    item_id: str
    status: str
    """``completed``, ``interrupted``, ``cancelled`` or ``failed``."""
    text: str
    """What the user heard (cut at the barge-in for an interrupted reply)."""
    latency: dict[str, object]


@dataclass(frozen=True)
class ReplyTruncated:
    """A reply was cut while its audio was still playing; history keeps ``text``."""

    item_id: str
    text: str
    audio_end_ms: int


@dataclass(frozen=True)
class ErrorEvent:
    code: str
    message: str
    event_id: str | None = None
    """The client event that caused it, if one did."""


@dataclass(frozen=True)
class SettingsChanged:
    """The session's settings were changed by something other than the client's own ``session.update`` (an MQTT
    control): the connection takes the session's settings as they are now, and the client is told with
    ``session.updated``."""


OutputItem = (
    SpeechStarted
    | SpeechStopped
    | InputCommitted
    | InputCleared
    | IdleTimeout
    | UserTranscriptPartial
    | UserTranscriptFinal
    | ItemAdded
    | ItemRetrieved
    | ItemDeleted
    | ReplyStarted
    | ToolCallStarted
    | ToolCallDelta
    | ToolCallDone
    | ReasoningDelta
    | ReasoningDone
    | AssistantTextDelta
    | AudioOut
    | AudioCleared
    | AudioPaused
    | AudioResumed
    | ReplyDone
    | ReplyTruncated
    | ErrorEvent
    | SettingsChanged
)
