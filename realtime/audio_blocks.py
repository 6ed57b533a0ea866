"""The user's audio on its way into an audio brain, in blocks: the buffer both audio brains share.

An audio LLM is given the user's turn in blocks of ``block_seconds`` (each its own ``<audio_start>…<audio_end>``,
as Step-Audio's official code cuts audio): complete blocks go to the model as soon as they fill, while the user
speaks; a reply takes the rest too, the last block partial. If the reply is discarded (the user goes on
speaking), its partial block goes back to the front of the buffer, so the blocks stay aligned from the start of
the turn and the turn reads as if it had never been interrupted. Audio is float32 mono at 16 kHz throughout.
"""

from __future__ import annotations

import numpy as np

from audio.samples import PIPELINE_RATE
from realtime.errors import BrainStateError

MAX_BLOCK_SECONDS = 25.0
"""Longest block of audio an audio LLM is given at once (Step-Audio's official code cuts audio into 25 s blocks;
its encoder sees at most 30 s)."""

_NO_AUDIO = np.zeros(0, dtype=np.float32)


def split_blocks(samples: np.ndarray, block_seconds: float) -> tuple[list[np.ndarray], np.ndarray]:
    """Cut 16 kHz audio into complete blocks of ``block_seconds`` and the partial rest (shorter than a block)."""
    size = round(block_seconds * PIPELINE_RATE)
    whole = len(samples) // size * size
    return [samples[i : i + size] for i in range(0, whole, size)], samples[whole:]


class AudioBlocks:
    """The audio heard and not yet given to the model, and the partial block of the reply in flight.

    Use: :meth:`add` every chunk; :meth:`take_blocks` when :attr:`ready`; at a reply, :meth:`start_reply`; then
    :meth:`rewind` (the reply is discarded) or :meth:`finish_reply` (the turn ends).
    """

    def __init__(self, block_seconds: float) -> None:
        """``block_seconds``: the length of a block, in (0, :data:`MAX_BLOCK_SECONDS`]; ``ValueError`` outside."""
        if not 0 < block_seconds <= MAX_BLOCK_SECONDS:
            raise ValueError(f"block_seconds must be in (0, {MAX_BLOCK_SECONDS}], not {block_seconds}")
        self.block_seconds = block_seconds
        self.block_samples = round(block_seconds * PIPELINE_RATE)
        """Samples in a block, at 16 kHz."""
        self._pending = _NO_AUDIO
        self._partial = _NO_AUDIO
        self._replying = False

    @property
    def replying(self) -> bool:
        """A reply is in flight: between :meth:`start_reply` and :meth:`rewind` or :meth:`finish_reply`."""
        return self._replying

    @property
    def ready(self) -> bool:
        """A complete block waits and no reply is in flight (while one is, new audio waits for its end)."""
        return not self._replying and len(self._pending) >= self.block_samples

    def add(self, samples: np.ndarray) -> None:
        """Append the next chunk of the user's audio (float32 mono at 16 kHz, any length)."""
        self._pending = np.concatenate([self._pending, np.asarray(samples, dtype=np.float32).reshape(-1)])

    def take_blocks(self) -> list[np.ndarray]:
        """The complete blocks waiting, in order (none while a reply is in flight); the partial rest stays."""
        if self._replying:
            return []
        blocks, self._pending = split_blocks(self._pending, self.block_seconds)
        return blocks

    def start_reply(self) -> tuple[list[np.ndarray], np.ndarray]:
        """Take everything heard for a reply: the complete blocks and the partial block (possibly empty), which is
        held until the reply ends. Raises :class:`~realtime.errors.BrainStateError` when a reply is in flight."""
        if self._replying:
            raise BrainStateError("a reply is in flight: rewind() or finish_turn() first")
        blocks, self._partial = split_blocks(self._pending, self.block_seconds)
        self._pending = _NO_AUDIO
        self._replying = True
        return blocks, self._partial

    def rewind(self) -> bool:
        """Discard the reply in flight: its partial block goes back to the front of the buffer (its complete blocks
        stay given). Returns False, changing nothing, when no reply is in flight."""
        if not self._replying:
            return False
        self._pending = np.concatenate([self._partial, self._pending])
        self._partial = _NO_AUDIO
        self._replying = False
        return True

    def finish_reply(self) -> np.ndarray:
        """End the reply in flight with its turn; returns its partial block (audio heard since stays buffered for
        the next turn). Raises :class:`~realtime.errors.BrainStateError` when no reply is in flight."""
        if not self._replying:
            raise BrainStateError("no reply to finish: reply() first")
        partial, self._partial = self._partial, _NO_AUDIO
        self._replying = False
        return partial
