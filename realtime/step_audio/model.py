"""The whole Step-Audio model: audio encoder + adaptor + Qwen2 decoder, audio spliced in at ``<audio_patch>``.

The module tree is the official ``StepAudio2ForCausalLM``'s, so checkpoint tensors load by name:
``encoder.*`` (:class:`AudioEncoder`), ``adapter.*`` (:class:`Adaptor`), ``model.*`` (transformers'
``Qwen2Model``, q/k/v with bias) and ``lm_head`` (untied). The same code builds the 33B Step-Audio-R1, the 7B
Step-Audio-2-mini or a tiny twin: every size comes from the :class:`StepAudioConfig`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from transformers import DynamicCache, Qwen2Model

from realtime.step_audio.adaptor import Adaptor
from realtime.step_audio.config import CheckpointError, StepAudioConfig
from realtime.step_audio.encoder import AudioEncoder
from realtime.step_audio.mel import log_mel_spectrogram, mel_frames


def audio_token_count(num_samples: int, kernel_size: int = 3, stride: int = 2) -> int:
    """Audio tokens for a clip, as the official code counts them (1 s -> 13, 25 s -> 313).

    ``T = mel_frames - 2; enc = (T + 1) // 2 // 2; n = (enc - 1) // 2 + 1`` (the adaptor's k3, s2, p1 conv).
    """
    encoded = (mel_frames(num_samples) - 2 + 1) // 2 // 2
    return (encoded + 2 - kernel_size) // stride + 1


class StepAudioModel(nn.Module):
    def __init__(self, config: StepAudioConfig, audio_patch_id: int) -> None:
        super().__init__()
        if not 0 <= audio_patch_id < config.text.vocab_size:
            raise CheckpointError(f"<audio_patch> id {audio_patch_id} is outside the vocabulary ({config.text.vocab_size})")
        self.config = config
        self.audio_patch_id = audio_patch_id
        self.encoder = AudioEncoder(config.audio)
        self.adapter = Adaptor(config.audio)
        self.model = Qwen2Model(config.text)
        self.lm_head = nn.Linear(config.text.hidden_size, config.text.vocab_size, bias=False)

    @classmethod
    def build(
        cls, config: StepAudioConfig, audio_patch_id: int, *, device: torch.device | str, dtype: torch.dtype
    ) -> StepAudioModel:
        """Random weights made directly on ``device`` in ``dtype`` (never a float32 copy of a 33B model)."""
        previous = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            with torch.device(device):
                model = cls(config, audio_patch_id)
        finally:
            torch.set_default_dtype(previous)
        return model.eval().requires_grad_(False)

    @property
    def device(self) -> torch.device:
        return self.model.embed_tokens.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.embed_tokens.weight.dtype

    def new_cache(self) -> DynamicCache:
        return DynamicCache(config=self.config.text)

    def audio_tokens(self, num_samples: int) -> int:
        return audio_token_count(num_samples, self.config.audio.kernel_size, self.config.audio.adapter_stride)

    def encode_audio(self, samples: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``(audio_tokens(len(samples)), hidden)`` decoder embeddings of one mono 16 kHz clip (at most 25 s).

        Like the official code, the adaptor's output is cut to the token count (it can be one longer).
        """
        count = self.audio_tokens(len(samples))
        if count <= 0:
            return torch.empty(0, self.config.text.hidden_size, device=self.device, dtype=self.dtype)
        mel = log_mel_spectrogram(torch.as_tensor(samples, device=self.device), self.config.audio.n_mels)
        return self.adapter(self.encoder(mel[None].to(self.dtype)))[0, :count]

    def forward(self, ids: torch.Tensor, cache: DynamicCache, audio: torch.Tensor | None = None) -> torch.Tensor:
        """Run 1-D ``ids`` after the cached prefix and return the next-token logits (float32).

        With ``audio``, its rows replace the embeddings of the ``<audio_patch>`` positions, in order.
        """
        embeds = self.model.embed_tokens(ids)
        if audio is not None:
            slots = ids == self.audio_patch_id
            if int(slots.sum()) != len(audio):
                raise ValueError(f"{int(slots.sum())} <audio_patch> positions for {len(audio)} audio embeddings")
            embeds = embeds.masked_scatter(slots[:, None], audio.to(embeds.dtype))
        hidden = self.model(inputs_embeds=embeds[None], past_key_values=cache, use_cache=True).last_hidden_state
        return self.lm_head(hidden[0, -1]).float()
