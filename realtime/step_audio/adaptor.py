"""The adaptor from the encoder's 25 Hz features to decoder embeddings at 12.5 Hz.

Conv1d(d, d, k3, s2, p1) + GELU, then Linear(d -> 2048), ReLU, Linear(2048 -> llm_dim); module names
``conv``, ``linear1``, ``linear2`` as in the official ``Adaptor`` (loaded under ``adapter.*``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from realtime.step_audio.config import AudioEncoderConfig


class Adaptor(nn.Module):
    def __init__(self, config: AudioEncoderConfig) -> None:
        super().__init__()
        width = config.n_audio_state
        self.conv = nn.Conv1d(width, width, config.kernel_size, config.adapter_stride, padding=1)
        self.linear1 = nn.Linear(width, config.adapter_state)
        self.relu = nn.ReLU()
        self.linear2 = nn.Linear(config.adapter_state, config.llm_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(1, T, d)`` encoder features -> ``(1, (T - 1) // 2 + 1, llm_dim)`` embeddings."""
        x = F.gelu(self.conv(x.transpose(1, 2))).transpose(1, 2)
        return self.linear2(self.relu(self.linear1(x)))
