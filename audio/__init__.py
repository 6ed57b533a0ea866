"""The leaf every other package builds on: audio samples, wire codecs, the pipeline rate and the root error.

Nothing here imports ``realtime``, ``vad`` or ``tts``; they all import this. Samples are float32 mono in
[-1, 1] everywhere inside the agent; :data:`PIPELINE_RATE` (16 kHz) is the rate of everything it hears.
"""

from audio.errors import AgentError
from audio.samples import PIPELINE_RATE, AudioFileError, StreamResampler, resample, to_float32, to_pcm16

__all__ = ["PIPELINE_RATE", "AgentError", "AudioFileError", "StreamResampler", "resample", "to_float32", "to_pcm16"]
