"""Streaming speech synthesis: Piper by default (whole sentences, or chunk by chunk with ``streaming-vits``; CosyVoice2
when installed), and the text segmentation that lets speech start early."""

from tts.base import Synthesizer, TextStreamingSynthesizer
from tts.cosyvoice import CosyVoice2Synthesizer, CosyVoiceError, CosyVoiceFileError, CosyVoiceNotInstalled, WordPieces
from tts.piper_voice import PiperSynthesizer
from tts.segment import ClauseSegmenter, RepetitionGuard, speakable
from tts.streaming_piper import StreamingPiperSynthesizer

__all__ = [
    "Synthesizer",
    "TextStreamingSynthesizer",
    "PiperSynthesizer",
    "StreamingPiperSynthesizer",
    "CosyVoice2Synthesizer",
    "CosyVoiceError",
    "CosyVoiceFileError",
    "CosyVoiceNotInstalled",
    "WordPieces",
    "ClauseSegmenter",
    "RepetitionGuard",
    "speakable",
]
