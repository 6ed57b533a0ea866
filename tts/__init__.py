"""Streaming speech synthesis: Piper by default, and the text segmentation that lets speech start early."""

from tts.base import Synthesizer
from tts.piper_voice import PiperSynthesizer
from tts.segment import ClauseSegmenter, RepetitionGuard, speakable

__all__ = ["Synthesizer", "PiperSynthesizer", "ClauseSegmenter", "RepetitionGuard", "speakable"]
