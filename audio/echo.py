"""Acoustic echo cancellation for a microphone next to the loudspeaker that plays the agent's replies.

The canceller is libwebrtc's audio processing module (AEC3 echo canceller, noise suppression, high-pass filter) as the
``livekit`` package ships it, built, in ``livekit.rtc.AudioProcessingModule``. It is used the way LiveKit's own local
device I/O uses it (``livekit/rtc/media_devices.py``): every 10 ms of what the speaker plays goes into the reverse
(far-end) path as it is played, every 10 ms the microphone captures is processed as it arrives, and the stream delay
is the device latency on both sides. AEC3 finds the echo path's delay itself within its search range; the stated delay
is its starting point. ``benchmarks/echo_cancel.py`` measures it against speexdsp's canceller.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from livekit import rtc

FRAME_MS = 10
"""The module processes 10 ms frames, on both paths."""


class _Framer:
    """Cuts a float32 stream into 10 ms frames of PCM16 (what the module takes); a remainder waits for more."""

    def __init__(self, rate: int) -> None:
        self.size = rate * FRAME_MS // 1000
        self._pending = np.zeros(0, np.float32)

    def frames(self, samples: np.ndarray) -> list[bytearray]:
        pending = np.concatenate([self._pending, np.asarray(samples, np.float32).reshape(-1)])
        whole = len(pending) - len(pending) % self.size
        self._pending = pending[whole:]
        pcm = (np.clip(pending[:whole], -1.0, 1.0) * 32767).astype("<i2")
        return [bytearray(pcm[i : i + self.size].tobytes()) for i in range(0, whole, self.size)]


class EchoCanceller:
    """Removes the loudspeaker's echo (and steady noise) from a microphone's audio.

    ``capture_rate`` and ``render_rate`` are the microphone's and the speaker's sample rates (Hz; any rate the devices
    run at, 8 to 48 kHz). Call :meth:`played` with what the speaker plays, as it plays it, and :meth:`captured` with
    what the microphone captures, as it arrives; the two may be called from different threads (the devices' callbacks).
    ``noise_suppression`` also turns on WebRTC's noise suppressor (on by default: a room's steady noise is what it
    removes; off, only the echo and the signal below ~80 Hz are removed).
    """

    def __init__(self, capture_rate: int, render_rate: int, *, noise_suppression: bool = True) -> None:
        from livekit import rtc  # loads libwebrtc (28 MB): only where the echo is cancelled

        self._rtc = rtc
        self._apm = rtc.AudioProcessingModule(
            echo_cancellation=True, noise_suppression=noise_suppression, high_pass_filter=True
        )
        self.capture_rate, self.render_rate = capture_rate, render_rate
        self._capture, self._render = _Framer(capture_rate), _Framer(render_rate)
        self._capture_lock, self._render_lock = threading.Lock(), threading.Lock()
        self.delay_ms = 0
        """The stream delay last stated (ms): from a frame's being played to its echo's being processed."""

    def set_delay(self, render_s: float, capture_s: float) -> None:
        """State the stream delay: ``render_s`` seconds from handing audio to the speaker until it sounds, plus
        ``capture_s`` seconds from sound at the microphone until it is handed to :meth:`captured` (PortAudio's
        ``outputBufferDacTime - currentTime`` and ``currentTime - inputBufferAdcTime``, or the streams' latencies)."""
        self.delay_ms = max(0, round((render_s + capture_s) * 1000))

    def played(self, samples: np.ndarray) -> None:
        """The speaker plays ``samples`` (float32 mono at ``render_rate``, any length; silence too)."""
        with self._render_lock:
            for pcm in self._render.frames(samples):
                self._apm.process_reverse_stream(self._frame(pcm, self.render_rate))

    def captured(self, samples: np.ndarray) -> np.ndarray:
        """The microphone captured ``samples`` (float32 mono at ``capture_rate``, any length): the same audio without the
        echo, float32 at ``capture_rate``, in whole 10 ms frames (a remainder comes out with the next call)."""
        with self._capture_lock:
            cleaned = []
            for pcm in self._capture.frames(samples):
                self._apm.set_stream_delay_ms(self.delay_ms)  # before every frame, as the module requires
                frame = self._frame(pcm, self.capture_rate)
                self._apm.process_stream(frame)
                cleaned.append(np.frombuffer(frame.data, dtype="<i2"))
        if not cleaned:
            return np.zeros(0, np.float32)
        return np.concatenate(cleaned).astype(np.float32) / 32768.0

    def _frame(self, pcm: bytearray, rate: int) -> rtc.AudioFrame:
        return self._rtc.AudioFrame(pcm, rate, 1, len(pcm) // 2)
