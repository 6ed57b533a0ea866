"""A Step-Audio checkpoint's ``config.json``, read into the sizes of the encoder, the adaptor and the decoder.

The keys are the official ones (sources in :mod:`realtime.step_audio.checkpoint`): an ``audio_encoder_config``
block (``n_mels``, ``n_audio_ctx``, ``n_audio_state``, ``n_audio_head``, ``n_audio_layer``, ``llm_dim``,
``kernel_size``, ``adapter_stride``) and the Qwen2 decoder's sizes, either nested in ``text_config`` (the
Step-Audio-2-mini layout) or flat at the top level (the 32B layout, which the vLLM fork's ``StepAudio2Config``
reads "for the 32B model"). The KV head count is ``num_key_value_heads`` or, failing that, ``num_attention_groups``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from transformers import Qwen2Config

from realtime.assets import ModelIntegrityError


class CheckpointError(ModelIntegrityError):
    """A checkpoint directory cannot be loaded; the message names the file, key or tensor at fault."""


@dataclass(frozen=True)
class AudioEncoderConfig:
    n_mels: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int
    llm_dim: int
    kernel_size: int = 3
    adapter_stride: int = 2
    adapter_state: int = 2048
    """Width of the adaptor's hidden layer (fixed at 2048 in the official code; some vLLM versions read it)."""


@dataclass(frozen=True)
class StepAudioConfig:
    audio: AudioEncoderConfig
    text: Qwen2Config
    audio_token_index: int | None = None
    """The ``<audio_patch>`` id if the config names it (vLLM-omni reads ``audio_token_index``)."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepAudioConfig:
        audio = data.get("audio_encoder_config")
        if not isinstance(audio, Mapping):
            raise CheckpointError("config.json has no 'audio_encoder_config' block")
        text = data.get("text_config")
        text = text if isinstance(text, Mapping) else data
        return cls(
            audio=_audio_config(audio),
            text=_text_config(text),
            audio_token_index=data.get("audio_token_index"),
        )


_AUDIO_REQUIRED = ("n_mels", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer", "llm_dim")
_AUDIO_OPTIONAL = ("kernel_size", "adapter_stride", "adapter_state")
_TEXT_REQUIRED = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
_TEXT_DEFAULTS = {"rms_norm_eps": 1e-6, "rope_theta": 1e6, "max_position_embeddings": 16384}


def _audio_config(block: Mapping[str, Any]) -> AudioEncoderConfig:
    missing = [key for key in _AUDIO_REQUIRED if key not in block]
    if missing:
        raise CheckpointError(f"config.json audio_encoder_config lacks {', '.join(missing)}")
    return AudioEncoderConfig(**{key: int(block[key]) for key in _AUDIO_REQUIRED + _AUDIO_OPTIONAL if key in block})


def _text_config(block: Mapping[str, Any]) -> Qwen2Config:
    missing = [key for key in _TEXT_REQUIRED if key not in block]
    kv_heads = block.get("num_key_value_heads", block.get("num_attention_groups"))
    if kv_heads is None:
        missing.append("num_key_value_heads")
    if missing:
        raise CheckpointError(f"config.json decoder sizes lack {', '.join(missing)}")
    sizes = {key: int(block[key]) for key in _TEXT_REQUIRED}
    extras = {key: block.get(key, default) for key, default in _TEXT_DEFAULTS.items()}
    settings: dict[str, Any] = {
        **sizes,
        **extras,
        "num_key_value_heads": int(kv_heads),
        "rope_scaling": block.get("rope_scaling"),
        "hidden_act": block.get("hidden_act", "silu"),
        "tie_word_embeddings": False,
        "use_sliding_window": False,
    }
    config = Qwen2Config(**settings)
    config._attn_implementation = "sdpa"  # noqa: SLF001 - transformers reads it; there is no public setter
    return config
