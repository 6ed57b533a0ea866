"""Whisper-style log-mel front end, computed in torch, as Step-Audio's ``log_mel_spectrogram`` does it.

16 kHz audio, n_fft 400, hop 160 (100 frames/s), Slaney mel filters (librosa's, here through
``transformers.audio_utils.mel_filter_bank``); 479 zero samples are appended first and the last STFT frame is
dropped, then Whisper's normalisation: ``log10(max(mel, 1e-10))``, floored at ``max - 8``, mapped by ``(x + 4) / 4``.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from transformers.audio_utils import mel_filter_bank

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
TAIL_PADDING = 479
"""Zero samples appended to every clip by the official front end (so the frame count is ``(n + 479) // 160``)."""


def mel_frames(num_samples: int) -> int:
    """Frames of the log-mel spectrogram of ``num_samples`` samples."""
    return (num_samples + TAIL_PADDING) // HOP


@lru_cache(maxsize=8)
def _filters(n_mels: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    bank = mel_filter_bank(
        num_frequency_bins=N_FFT // 2 + 1,
        num_mel_filters=n_mels,
        min_frequency=0.0,
        max_frequency=SAMPLE_RATE / 2,
        sampling_rate=SAMPLE_RATE,
        norm="slaney",
        mel_scale="slaney",
    )
    filters = torch.from_numpy(bank.T).to(device=device, dtype=torch.float32)
    return filters, torch.hann_window(N_FFT, device=device)


def log_mel_spectrogram(samples: torch.Tensor, n_mels: int = 128) -> torch.Tensor:
    """``(n_mels, mel_frames(len(samples)))`` float32 features of a mono 16 kHz clip."""
    filters, window = _filters(n_mels, samples.device)
    audio = F.pad(samples.float(), (0, TAIL_PADDING))
    stft = torch.stft(audio, N_FFT, HOP, window=window, return_complex=True)
    power = stft[..., :-1].abs() ** 2
    log_spec = torch.clamp(filters @ power, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0
