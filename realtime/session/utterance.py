"""The user's audio, pure: a pre-roll before speech, the utterance being spoken, and when each sample arrived.

All positions are sample counts at :data:`~audio.PIPELINE_RATE` (16 kHz) since the session started; times are on
the session's monotonic clock (seconds). No I/O, no models, no tasks.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque

import numpy as np

from audio import PIPELINE_RATE

_NO_AUDIO = np.zeros(0, np.float32)
_ONSET_LAG_MS = 1000
"""Pre-roll kept beyond ``prefix_padding_ms``: speech is confirmed (``begin``) some windows after its onset (at least
``min_speech_ms`` later, more when the first windows are not all speech), and the padding counts from the onset."""


class UtteranceBuffer:
    """Keeps ``prefix_padding_ms`` of audio before speech and the whole utterance once speech began (at most
    ``max_utterance_s`` of it is returned, the newest)."""

    def __init__(self, *, prefix_padding_ms: int, max_utterance_s: float, arrivals: int = 50_000) -> None:
        self.prefix_padding_ms = prefix_padding_ms
        self.max_utterance_s = max_utterance_s
        self.samples = 0
        """Samples heard since the session started."""
        self._arrivals: deque[tuple[int, float]] = deque(maxlen=arrivals)
        """(samples heard so far, when that chunk arrived): about 17 minutes of 20 ms chunks."""
        self._preroll: deque[np.ndarray] = deque()
        self._utterance: list[np.ndarray] | None = None

    @property
    def open(self) -> bool:
        """An utterance is being collected (speech began, or manual turns collect everything)."""
        return self._utterance is not None

    def push(self, samples: np.ndarray, at: float) -> None:
        """The next chunk (float32 mono, 16 kHz), arrived at ``at``: into the utterance, or the pre-roll."""
        self.samples += len(samples)
        self._arrivals.append((self.samples, at))
        if self._utterance is not None:
            self._utterance.append(samples)
            return
        self._preroll.append(samples)
        keep = (self.prefix_padding_ms + _ONSET_LAG_MS) * PIPELINE_RATE // 1000
        while sum(len(s) for s in self._preroll) - len(self._preroll[0]) >= keep:
            self._preroll.popleft()

    def begin(self, onset: int) -> np.ndarray:
        """Speech began at sample ``onset``: open an utterance with the pre-roll from ``prefix_padding_ms`` before it.
        Returns the audio the utterance starts with (the padding and what followed the onset so far)."""
        pad = self.prefix_padding_ms * PIPELINE_RATE // 1000
        buffered = np.concatenate(list(self._preroll)) if self._preroll else _NO_AUDIO
        start_in_buffer = max(0, len(buffered) - (self.samples - onset) - pad)
        kept = buffered[start_in_buffer:]
        self._utterance = [kept]
        self._preroll.clear()
        return kept

    def open_empty(self) -> None:
        """Collect from now on without speech having been detected (manual turns), keeping what is collected."""
        if self._utterance is None:
            self._utterance = []

    def close(self) -> None:
        """The utterance became a message: the next speech is a new one."""
        self._utterance = None

    def clear(self, *, keep_open: bool) -> None:
        """Drop the uncommitted audio; ``keep_open`` keeps collecting (the user is still speaking)."""
        self._utterance = [] if keep_open else None
        self._preroll.clear()

    def audio(self) -> np.ndarray:
        """The utterance so far (its newest ``max_utterance_s``), float32 mono at 16 kHz."""
        audio = np.concatenate(self._utterance) if self._utterance else _NO_AUDIO
        return audio[-int(self.max_utterance_s * PIPELINE_RATE) :]

    def arrival(self, sample: int) -> float | None:
        """When sample ``sample`` reached the session, if it has (and is still remembered)."""
        index = bisect_left(self._arrivals, sample, key=lambda arrival: arrival[0])
        return self._arrivals[index][1] if index < len(self._arrivals) else None
