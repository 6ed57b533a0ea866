"""Acoustic echo cancellation for a microphone next to the loudspeaker that plays the agent's replies.

The canceller is libwebrtc's audio processing module (AEC3 echo canceller, noise suppression, high-pass filter) as the
``livekit`` package ships it, built, in ``livekit.rtc.AudioProcessingModule``. It is used the way LiveKit's own local
device I/O uses it (``livekit/rtc/media_devices.py``): every 10 ms of what the speaker plays goes into the reverse
(far-end) path as it is played, every 10 ms the microphone captures is processed as it arrives, and the stream delay
is the device latency on both sides. AEC3 finds the echo path's delay itself within its search range; the stated delay
is its starting point. (LiveKit restates it before every block from PortAudio's clocks; tried here, it made no
difference that 13 runs of the echo-path test could show, 2 of them hearing the echo against 0 of 21 before, so the
stated delay stays as it was.)

A stall of the process longer than the devices' buffer (a busy machine; a virtual machine's stolen time) makes the
output run dry: the device plays silence, and every later sample sounds that much later than it was handed over. The
output device's clock shows it (the next block sounds later than the last one ended: ~180 ms for a 400 ms stop of
``realtime mic`` on 200 ms buffers), and that silence goes into the far end too, so the far end stays in step with
what was heard. Offline (tests/test_echo.py, three 200 ms stalls), the echo removed over the 0.5 s after each stall
stays at 53 dB with it, against 38, 45 and 50 dB without (46 before them). Live, the process stopped three times for
400 ms while its reply played into a 60 ms echo path heard its own words in 11 of 22 runs before, in 6 of 20 with the
silence (5 of 16 with the delay restated too): what else lets the echo through then is not understood.
``benchmarks/echo_cancel.py`` measures the canceller against speexdsp's.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from livekit import rtc

log = logging.getLogger(__name__)

FRAME_MS = 10
"""The module processes 10 ms frames, on both paths."""


MAX_DELAY_MS = 500
"""The longest stream delay the module takes (ms; libwebrtc's ``AudioProcessing::set_stream_delay_ms`` refuses more,
and ``livekit`` raises)."""

MIN_GAP_S = 0.02
"""The shortest late start of a block taken for an output that ran dry (s): one 20 ms block. Silence is only ever
added, so clock jitter taken for gaps would push the far end later and later (offline, ±4 ms of jitter under a 5 ms
threshold took the echo removed to 6-36 dB); a real stall leaves a gap of 100 ms or more."""

MAX_GAP_S = 0.5
"""The longest silence put into the far end for one gap (s). Offline, silences up to 0.5 s kept 53 dB of echo
removed after a stall; 0.6-0.7 s ones took it to 25-37 dB (AEC3's render buffer holds no more), worse than none."""


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
        """The stream delay stated (ms): from a frame's being played to its echo's being processed."""
        self._render_end: float | None = None
        """When the last sample handed to :meth:`played` sounds (s, the output device's clock; None: not known)."""

    def set_delay(self, render_s: float, capture_s: float) -> None:
        """State the stream delay: ``render_s`` seconds from handing audio to the speaker until it sounds, plus
        ``capture_s`` seconds from sound at the microphone until it is handed to :meth:`captured` (the streams'
        latencies), at most :data:`MAX_DELAY_MS`."""
        self.delay_ms = min(MAX_DELAY_MS, max(0, round((render_s + capture_s) * 1000)))

    def played(self, samples: np.ndarray, sounds_at: float | None = None) -> None:
        """The speaker plays ``samples`` (float32 mono at ``render_rate``, any length; silence too), whose first sample
        sounds at ``sounds_at`` (s, on the output device's clock: PortAudio's ``outputBufferDacTime``; None or 0: not
        known, it follows the block before). A block that sounds :data:`MIN_GAP_S` or more later than the one before
        it ended means that the output ran dry meanwhile (the process stalled) and the device played silence: that
        silence (up to :data:`MAX_GAP_S`) goes into the far end first, so what follows stays in step with what was
        heard."""
        with self._render_lock:
            if sounds_at and self._render_end is not None and (gap := sounds_at - self._render_end) >= MIN_GAP_S:
                log.debug("the output ran dry for %.0f ms: silence goes into the far end", gap * 1000)
                self._far_end(np.zeros(round(min(gap, MAX_GAP_S) * self.render_rate), np.float32))
            if sounds_at:
                self._render_end = sounds_at
            if self._render_end is not None:  # a block of unknown time follows the one before it
                self._render_end += len(samples) / self.render_rate
            self._far_end(samples)

    def _far_end(self, samples: np.ndarray) -> None:
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
