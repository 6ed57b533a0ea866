"""A terminal view of a conversation: the live user transcript, the reasoning (dimmed), the reply as it
is spoken, each reply's first-packet delay, and where a barge-in cut it. On a terminal the partial
transcript is rewritten in place; into a pipe or a file only whole lines go, without escape codes."""

from __future__ import annotations

import sys
from typing import Literal, TextIO

from realtime.events import (
    AssistantTextDelta,
    ErrorEvent,
    OutputItem,
    ReasoningDelta,
    ReplyDone,
    ReplyTruncated,
    UserTranscriptFinal,
    UserTranscriptPartial,
)

_DIM, _RESET, _ERASE_LINE = "\x1b[2m", "\x1b[0m", "\r\x1b[2K"
Line = Literal["partial", "reasoning", "reply"]


class ConsoleView:
    """Call :meth:`show` with each output item, in order (audio items are ignored)."""

    def __init__(self, out: TextIO = sys.stdout, *, live: bool | None = None) -> None:
        self.out = out
        self.live = out.isatty() if live is None else live
        """Rewrite the partial transcript in place and dim the reasoning (a terminal)."""
        self._line: Line | None = None
        """The line being written, if one is open."""

    def note(self, text: str) -> None:
        """A line about the program itself (dimmed)."""
        self._end()
        self._write(self._dim(text) + "\n")

    def show(self, item: OutputItem) -> None:
        match item:
            case UserTranscriptPartial() if self.live:
                self._end()
                self._write(f"you: {item.text}")
                self._line = "partial"
            case UserTranscriptFinal() if item.text:
                self._end()
                self._write(f"you: {item.text}\n")
            case ReasoningDelta():
                self._begin("reasoning", "thinking: ")
                self._write(self._dim(item.text))
            case AssistantTextDelta():
                self._begin("reply", "agent: ")
                self._write(item.text)
            case ReplyDone():
                self._end()
                delay = item.latency.get("first_packet_delay_ms")
                status = "" if item.status == "completed" else f", {item.status}"
                self._write(self._dim(f"  (first packet {delay} ms{status})") + "\n")
            case ReplyTruncated():
                self._end()
                self._write(self._dim(f"  (cut after {item.audio_end_ms / 1000:.1f} s: {item.text})") + "\n")
            case ErrorEvent():
                self._end()
                self._write(f"error: {item.message}\n")

    def _begin(self, line: Line, label: str) -> None:
        if self._line != line:
            self._end()
            self._write(label)
            self._line = line

    def _end(self) -> None:
        """Close the open line (a partial transcript is erased: its final line replaces it)."""
        if self._line == "partial":
            self._write(_ERASE_LINE)
        elif self._line is not None:
            self._write("\n")
        self._line = None

    def _dim(self, text: str) -> str:
        return f"{_DIM}{text}{_RESET}" if self.live else text

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()
