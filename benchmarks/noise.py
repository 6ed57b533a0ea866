"""Background noise for the spoken corpus: pink and brown noise made with numpy from a fixed seed,
mixed under speech at a chosen signal-to-noise ratio."""

from __future__ import annotations

import numpy as np


def coloured_noise(length: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Noise whose power falls as ``1 / f**exponent`` (0 white, 1 pink, 2 brown); float32, unit RMS."""
    if length <= 0:
        return np.zeros(0, np.float32)
    bins = length // 2 + 1
    spectrum = rng.standard_normal(bins) + 1j * rng.standard_normal(bins)
    freqs = np.fft.rfftfreq(length)
    freqs[0] = np.inf  # no DC: brown noise would otherwise wander off
    noise = np.fft.irfft(spectrum / freqs ** (exponent / 2), length)
    rms = float(np.sqrt(np.mean(np.square(noise))))
    return (noise / rms if rms > 0 else noise).astype(np.float32)


def background(length: int, seed: int, *, brown_share: float = 0.5) -> np.ndarray:
    """An equal-power blend (by default) of pink and brown noise; float32, unit RMS, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    mix = np.sqrt(1 - brown_share) * coloured_noise(length, 1.0, rng) + np.sqrt(brown_share) * coloured_noise(length, 2.0, rng)
    rms = float(np.sqrt(np.mean(np.square(mix)))) if length else 0.0
    return (mix / rms if rms > 0 else mix).astype(np.float32)


def power(samples: np.ndarray) -> float:
    return float(np.mean(np.square(samples, dtype=np.float64))) if len(samples) else 0.0


def snr_db(speech: np.ndarray, noise: np.ndarray) -> float:
    """Signal-to-noise ratio of two aligned signals, in dB."""
    return 10 * np.log10(power(speech) / power(noise))


def mix_at_snr(audio: np.ndarray, noise: np.ndarray, snr: float, speech: slice = slice(None)) -> np.ndarray:
    """``audio`` plus ``noise`` scaled so that the speech (``audio[speech]``) is ``snr`` dB above the noise
    over the same samples; the noise runs under the whole clip, silence included."""
    if len(noise) != len(audio):
        raise ValueError("noise and audio differ in length")
    gain = np.sqrt(power(audio[speech]) / (power(noise[speech]) * 10 ** (snr / 10)))
    mixed = audio + gain * noise
    peak = float(np.max(np.abs(mixed))) if len(mixed) else 0.0
    return (mixed / peak * 0.99 if peak > 0.99 else mixed).astype(np.float32)
