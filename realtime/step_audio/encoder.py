"""The Whisper-large-style audio encoder: log-mel (100 Hz) in, 25 Hz features out.

conv1 (k3, s1) + GELU, conv2 (k3, s2) + GELU -> 50 Hz, learned positions (an ``nn.Embedding`` the checkpoint
stores, at most ``n_audio_ctx`` = 1500 of them, i.e. 30 s), pre-LN bidirectional blocks, AvgPool1d(2) -> 25 Hz,
final LayerNorm. Module names follow the official ``AudioEncoder`` (``conv1``, ``conv2``, ``positional_embedding``,
``blocks.N.attn.{query,key,value,out}`` with no bias on ``key``, ``attn_ln``, ``mlp.0``/``mlp.2``, ``mlp_ln``,
``after_norm``) so checkpoint tensors load by name. As there, the frames past ``mel_frames - 2`` (the
front end's tail padding) are masked out as attention keys.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from realtime.step_audio.config import AudioEncoderConfig


class EncoderAttention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width, bias=False)
        self.value = nn.Linear(width, width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, length, self.heads, width // self.heads).transpose(1, 2)

        attended = F.scaled_dot_product_attention(
            split(self.query(x)), split(self.key(x)), split(self.value(x)), attn_mask=key_mask
        )
        return self.out(attended.transpose(1, 2).reshape(batch, length, width))


class EncoderBlock(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = EncoderAttention(width, heads)
        self.attn_ln = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))
        self.mlp_ln = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_ln(x), key_mask)
        return x + self.mlp(self.mlp_ln(x))


class AudioEncoder(nn.Module):
    def __init__(self, config: AudioEncoderConfig) -> None:
        super().__init__()
        width = config.n_audio_state
        self.conv1 = nn.Conv1d(config.n_mels, width, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(width, width, kernel_size=3, stride=2, padding=1)
        self.positional_embedding = nn.Embedding(config.n_audio_ctx, width)
        self.blocks = nn.ModuleList(EncoderBlock(width, config.n_audio_head) for _ in range(config.n_audio_layer))
        self.avg_pooler = nn.AvgPool1d(2, stride=2)
        self.after_norm = nn.LayerNorm(width)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """``(1, n_mels, T)`` log-mel of one clip -> ``(1, ((T - 1) // 2 + 1) // 2, n_audio_state)`` at 25 Hz."""
        frames = mel.shape[-1]
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x)).transpose(1, 2)
        if x.shape[1] > self.positional_embedding.num_embeddings:
            raise ValueError(f"audio block of {frames} mel frames is longer than the encoder's window")
        x = x + self.positional_embedding.weight[: x.shape[1]]
        key_mask = (torch.arange((frames + 1) % 2, frames, 2, device=mel.device) < frames - 2)[None, None, None]
        for block in self.blocks:
            x = block(x, key_mask)
        x = self.avg_pooler(x.transpose(1, 2)).transpose(1, 2)
        return self.after_norm(x)
