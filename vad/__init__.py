"""Voice activity detection primitives: Silero v6 behind a webrtcvad pre-filter, streaming at 16 kHz."""

from vad.detector import VadStats, VadWindow, VoiceActivityDetector
from vad.silero import WINDOW_SAMPLES, SileroModel
from vad.webrtc import WebRtcPrefilter

__all__ = ["VadStats", "VadWindow", "VoiceActivityDetector", "SileroModel", "WebRtcPrefilter", "WINDOW_SAMPLES"]
