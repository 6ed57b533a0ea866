"""Streaming speech synthesis: Piper by default (CosyVoice2 when installed), and the text segmentation that lets
speech start early."""

from tts.base import Synthesizer, TextStreamingSynthesizer
from tts.cosyvoice import CosyVoice2Synthesizer, CosyVoiceError, CosyVoiceFileError, CosyVoiceNotInstalled, WordPieces
from tts.piper_voice import PiperSynthesizer
from tts.segment import ClauseSegmenter, RepetitionGuard, speakable

__all__ = [
    "Synthesizer",
    "TextStreamingSynthesizer",
    "PiperSynthesizer",
    "CosyVoice2Synthesizer",
    "CosyVoiceError",
    "CosyVoiceFileError",
    "CosyVoiceNotInstalled",
    "WordPieces",
    "ClauseSegmenter",
    "RepetitionGuard",
    "speakable",
]
