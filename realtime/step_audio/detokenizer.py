"""Token ids to text, incrementally, for streaming."""

from __future__ import annotations

from collections.abc import Sequence

from transformers import PreTrainedTokenizerBase


class Detokenizer:
    """Incremental decoding that never emits half a character (the prefix/read offsets of TGI and vLLM)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self._tokenizer = tokenizer
        self._ids: list[int] = []
        self._prefix = self._read = 0

    def push(self, ids: Sequence[int]) -> str:
        self._ids.extend(ids)
        before, after = self._texts()
        if len(after) <= len(before) or after.endswith("\ufffd"):
            return ""
        self._prefix, self._read = self._read, len(self._ids)
        return after[len(before) :]

    def flush(self) -> str:
        """The rest, even an incomplete character."""
        before, after = self._texts()
        self._prefix = self._read = len(self._ids)
        return after[len(before) :]

    def _texts(self) -> tuple[str, str]:
        def decode(ids: list[int]) -> str:
            return str(self._tokenizer.decode(ids))  # one sequence of ids: one string

        return decode(self._ids[self._prefix : self._read]), decode(self._ids[self._prefix :])
