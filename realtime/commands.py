"""What the wire protocol asks of a voice session: one small value per command (the protocol is Sans-I/O; the
connection carries the commands out in order)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from realtime.conversation import Message
from realtime.session.config import ResponseOptions, SessionConfig


@dataclass(frozen=True)
class Send:
    """Send this server event to the client."""

    event: dict[str, Any]


@dataclass(frozen=True)
class AppendAudio:
    samples: np.ndarray
    """16 kHz float32 mono, resampled from the wire format."""


@dataclass(frozen=True)
class CommitInput:
    event_id: str | None


@dataclass(frozen=True)
class ClearInput:
    event_id: str | None


@dataclass(frozen=True)
class Configure:
    config: SessionConfig


@dataclass(frozen=True)
class AddItem:
    item: Message
    previous_item_id: str | None
    """None: at the end; ``root``: at the start."""
    event_id: str | None
    audio: np.ndarray | None = None
    """A user message's audio (16 kHz float32 mono) to transcribe into its text."""


@dataclass(frozen=True)
class RetrieveItem:
    item_id: str
    event_id: str | None


@dataclass(frozen=True)
class DeleteMessage:
    item_id: str
    event_id: str | None


@dataclass(frozen=True)
class TruncateMessage:
    item_id: str
    audio_end_ms: int
    event_id: str | None


@dataclass(frozen=True)
class CreateResponse:
    options: ResponseOptions
    event_id: str | None


@dataclass(frozen=True)
class CancelResponse:
    event_id: str | None


Command = (
    Send | AppendAudio | CommitInput | ClearInput | Configure | AddItem | RetrieveItem | DeleteMessage | TruncateMessage
    | CreateResponse | CancelResponse
)
