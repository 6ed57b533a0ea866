"""The WebRTC VAD (GMM, microseconds per frame) as a cheap pre-filter in front of Silero."""

from __future__ import annotations

import numpy as np
import webrtcvad

from audio.samples import to_pcm16

_RATE = 16_000
_FRAME = 480  # 30 ms, the longest frame webrtcvad accepts


class WebRtcPrefilter:
    """``is_voiced`` is True if the 30 ms frame that ends a 32 ms window might hold voice."""

    def __init__(self, mode: int = 3) -> None:
        if mode not in (0, 1, 2, 3):
            raise ValueError("webrtcvad mode must be 0, 1, 2 or 3")
        self._vad = webrtcvad.Vad(mode)

    def is_voiced(self, window: np.ndarray) -> bool:
        if len(window) < _FRAME:
            raise ValueError(f"the pre-filter needs at least {_FRAME} samples at 16 kHz, got {len(window)}")
        return bool(self._vad.is_speech(to_pcm16(window[-_FRAME:]), _RATE))
