"""Step-Audio-R1, the audio LLM brain, in torch: model, checkpoint loader, prompt format and streaming runtime.

Architecture and sources: :mod:`realtime.step_audio.model` and :mod:`realtime.step_audio.checkpoint`.
Needs the ``step-audio`` extra (torch, transformers, safetensors).
"""

from realtime.step_audio.brain import ReplyMode, StepAudioBrain, StepAudioConversation
from realtime.step_audio.config import CheckpointError, StepAudioConfig
from realtime.step_audio.model import StepAudioModel, audio_token_count

__all__ = [
    "CheckpointError",
    "ReplyMode",
    "StepAudioBrain",
    "StepAudioConfig",
    "StepAudioConversation",
    "StepAudioModel",
    "audio_token_count",
]
