"""Split a streamed completion into reasoning (inside ``<think>...</think>``) and answer text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

Channel = Literal["reasoning", "answer"]

ReplyMode = Literal["budget", "think-first", "paced", "speak-first"]
"""How a reply spends its reasoning: ``budget`` is plain decoding in one stream, ``</think>`` forced when the
budget is spent; the others are Mind-Paced Speaking schedules (:mod:`realtime.step_audio.paced`)."""


@dataclass(frozen=True)
class Piece:
    channel: Channel
    text: str


class ThinkSplitter:
    """Streaming splitter; tags may arrive cut across pieces.

    ``thinking=True`` means the prompt already opened ``<think>`` (the generation prompt ends with
    it), so text is reasoning until ``</think>``. A model that never closes the block, or closes it
    at once, is handled: the caller ends reasoning with :meth:`close_reasoning`.
    """

    def __init__(self, *, thinking: bool) -> None:
        self.thinking = thinking
        self._pending = ""

    def push(self, text: str) -> list[Piece]:
        self._pending += text
        out: list[Piece] = []
        while self._pending:
            tag = THINK_CLOSE if self.thinking else THINK_OPEN
            index = self._pending.find(tag)
            if index >= 0:
                self._emit(out, self._pending[:index])
                self._pending = self._pending[index + len(tag) :]
                self.thinking = not self.thinking
                continue
            keep = _partial_tag_suffix(self._pending, tag)
            self._emit(out, self._pending[: len(self._pending) - keep])
            self._pending = self._pending[len(self._pending) - keep :]
            break
        return out

    def flush(self) -> list[Piece]:
        """The rest, at the end of the stream."""
        out: list[Piece] = []
        self._emit(out, self._pending)
        self._pending = ""
        return out

    def close_reasoning(self) -> None:
        """End the reasoning block here (budget spent or the model stopped inside it)."""
        self.thinking = False
        self._pending = ""

    def _emit(self, out: list[Piece], text: str) -> None:
        if text:
            out.append(Piece("reasoning" if self.thinking else "answer", text))


def _partial_tag_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that could be the start of ``tag``."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0
