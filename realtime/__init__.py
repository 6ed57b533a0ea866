"""A real-time speech-to-speech voice agent that listens while it thinks and thinks while it speaks."""

__version__ = "0.1.0"
