"""Streaming voice activity detection: any chunk size in, one scored 32 ms window out at a time.

webrtcvad runs first on every window (microseconds); Silero (about 2 ms a window here) runs only
where webrtcvad hears something or speech was heard in the last ~300 ms, so long silences cost
almost nothing. Silero is an LSTM: when a skipped stretch ends, the windows just before it are fed
first so that its state has context, and the onset is found as early as without the pre-filter.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from vad.silero import WINDOW_SAMPLES, SileroModel
from vad.webrtc import WebRtcPrefilter

RATE = 16_000
_RECENT_WINDOWS = 10  # ~320 ms
_RECENT_SPEECH = 0.3
_PRIMING_WINDOWS = 3


@dataclass(frozen=True)
class VadWindow:
    start: int
    """First sample of the window, counted from the start of the stream."""
    end: int
    probability: float

    @property
    def duration_s(self) -> float:
        return (self.end - self.start) / RATE


@dataclass
class VadStats:
    evaluated: int = 0
    """Windows Silero scored."""
    skipped: int = 0
    """Windows the pre-filter answered alone."""


@dataclass
class VoiceActivityDetector:
    """Feed 16 kHz float32 audio with :meth:`push`; get one :class:`VadWindow` per 512 samples."""

    prefilter: bool = True
    stats: VadStats = field(default_factory=VadStats)

    def __post_init__(self) -> None:
        self._silero = SileroModel()
        self._webrtc = WebRtcPrefilter()
        self._pending = np.zeros(0, dtype=np.float32)
        self._seen = 0
        self._since_speech = _RECENT_WINDOWS
        self._skipped: deque[np.ndarray] = deque(maxlen=_PRIMING_WINDOWS)

    @property
    def samples_seen(self) -> int:
        return self._seen

    def push(self, samples: np.ndarray) -> list[VadWindow]:
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._seen += len(samples)
        buffered = np.concatenate([self._pending, samples]) if len(self._pending) else samples
        count = len(buffered) // WINDOW_SAMPLES
        start = self._seen - len(buffered)
        windows = [
            self._score(start + i * WINDOW_SAMPLES, buffered[i * WINDOW_SAMPLES : (i + 1) * WINDOW_SAMPLES])
            for i in range(count)
        ]
        self._pending = buffered[count * WINDOW_SAMPLES :].copy()
        return windows

    def reset(self) -> None:
        self._silero.reset()
        self._pending = np.zeros(0, dtype=np.float32)
        self._seen = 0
        self._since_speech = _RECENT_WINDOWS
        self._skipped.clear()
        self.stats = VadStats()

    def _score(self, start: int, window: np.ndarray) -> VadWindow:
        if self.prefilter and self._since_speech >= _RECENT_WINDOWS and not self._webrtc.is_voiced(window):
            self._skipped.append(window.copy())
            self.stats.skipped += 1
            return VadWindow(start, start + WINDOW_SAMPLES, 0.0)
        if self._skipped:
            self._silero.reset()
            for context in self._skipped:
                self._silero.probability(context)
            self._skipped.clear()
        probability = self._silero.probability(window)
        self.stats.evaluated += 1
        self._since_speech = 0 if probability > _RECENT_SPEECH else self._since_speech + 1
        return VadWindow(start, start + WINDOW_SAMPLES, probability)
