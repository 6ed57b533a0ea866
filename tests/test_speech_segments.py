"""``speech_segments`` (the true end of speech that ``realtime respond`` measures first-packet delays from) on
real synthetic speech under pink and brown noise, with silence (noise only) before and after it.

The truth comes from the clean clip's construction: the speech is placed after a known lead, and its own
bounds are where its 10 ms frames are within 40 dB of its loudest, measured on the clean voice before any
noise is mixed in (``speak`` keeps a 30 ms margin and the flite voices a -50 dB floor around the words)."""

from __future__ import annotations

import numpy as np
import pytest

from audio.samples import PIPELINE_RATE, resample
from benchmarks.corpus import speak
from benchmarks.noise import background, mix_at_snr
from realtime.respond import speech_segments

RATE = PIPELINE_RATE
TOLERANCE_S = 0.1
LEAD_S, TAIL_S = 1.0, 1.5

CLIPS = (
    # a final fricative ("France"), a plosive onset
    ("Tell me the capital of France.", "flite:kal"),
    # a voiced fricative at the end ("wings")
    ("Do cats have wings?", "flite:slt"),
    ("Which planet do we live on?", "espeak:en-us"),
    ("What is frozen water called?", "espeak:en-gb"),
)
NOISES = {"pink": 0.0, "brown": 1.0}
"""The share of brown noise in :func:`benchmarks.noise.background`."""


def word_bounds(speech: np.ndarray) -> tuple[int, int]:
    """Where a clean voice's 10 ms frames are within 40 dB of its loudest (samples)."""
    hop = RATE // 100
    count = len(speech) // hop
    power = np.square(speech[: count * hop].reshape(count, hop), dtype=np.float64).mean(axis=1)
    level = 10 * np.log10(np.maximum(power, 1e-12))
    loud = np.flatnonzero(level > level.max() - 40)
    return int(loud[0]) * hop, (int(loud[-1]) + 1) * hop


def padded(*parts: np.ndarray | float) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Speech clips and seconds of silence in order; the clip and the true bounds of each clip's words."""
    pieces, bounds, at = [], [], 0
    for part in parts:
        if isinstance(part, float):
            part = np.zeros(int(part * RATE), np.float32)
        else:
            start, end = word_bounds(part)
            bounds.append((at + start, at + end))
        pieces.append(part)
        at += len(part)
    return np.concatenate(pieces), bounds


def noisy(clean: np.ndarray, bounds: list[tuple[int, int]], noise: str, snr_db: float, seed: int) -> np.ndarray:
    speech = slice(bounds[0][0], bounds[-1][1])
    return mix_at_snr(clean, background(len(clean), seed, brown_share=NOISES[noise]), snr_db, speech)


def assert_near(found: tuple[int, int], true: tuple[int, int], what: str) -> None:
    (start, end), (true_start, true_end) = found, true
    assert abs(start - true_start) <= TOLERANCE_S * RATE, f"{what}: speech found from {start / RATE:.3f} s, true {true_start / RATE:.3f} s"
    assert abs(end - true_end) <= TOLERANCE_S * RATE, f"{what}: speech found to {end / RATE:.3f} s, true {true_end / RATE:.3f} s"


@pytest.fixture(scope="module")
def voiced() -> dict[tuple[str, str], np.ndarray]:
    return {clip: speak(*clip) for clip in CLIPS}


@pytest.mark.parametrize("snr_db", [20.0, 10.0])
@pytest.mark.parametrize("noise", list(NOISES))
@pytest.mark.parametrize("clip", CLIPS, ids=[voice for _, voice in CLIPS])
def test_speech_is_found_where_it_is_under_noise(voiced, clip, noise, snr_db):
    clean, bounds = padded(LEAD_S, voiced[clip], TAIL_S)
    audio = noisy(clean, bounds, noise, snr_db, seed=CLIPS.index(clip))
    segments = speech_segments(audio)
    assert len(segments) == 1, f"{clip[0]!r} in {noise} noise at {snr_db} dB: {[(s / RATE, e / RATE) for s, e in segments]}"
    assert_near(segments[0], bounds[0], f"{clip[0]!r} in {noise} noise at {snr_db} dB")


@pytest.mark.parametrize("clip", CLIPS, ids=[voice for _, voice in CLIPS])
def test_clean_speech_in_digital_silence(voiced, clip):
    clean, bounds = padded(LEAD_S, voiced[clip], TAIL_S)
    segments = speech_segments(clean)
    assert len(segments) == 1
    assert_near(segments[0], bounds[0], clip[0])


@pytest.mark.parametrize("noise", list(NOISES))
def test_two_utterances_a_second_apart_are_two_segments(voiced, noise):
    first, second = voiced[CLIPS[0]], voiced[CLIPS[2]]
    clean, bounds = padded(LEAD_S, first, 1.0, second, TAIL_S)
    segments = speech_segments(noisy(clean, bounds, noise, 10.0, seed=7))
    assert len(segments) == 2, [(s / RATE, e / RATE) for s, e in segments]
    for found, true in zip(segments, bounds, strict=True):
        assert_near(found, true, f"two utterances in {noise} noise")


@pytest.mark.parametrize("noise", list(NOISES))
@pytest.mark.parametrize("level", [0.01, 0.1])
def test_noise_alone_is_not_speech(noise, level):
    audio = (level * background(8 * RATE, seed=3, brown_share=NOISES[noise])).astype(np.float32)
    assert speech_segments(audio) == []


def test_other_rates_are_counted_in_their_own_samples(voiced):
    clean, bounds = padded(LEAD_S, voiced[CLIPS[1]], TAIL_S)
    audio = noisy(clean, bounds, "pink", 10.0, seed=1)
    [(start, end)] = speech_segments(resample(audio, RATE, 48_000), 48_000)
    assert_near((start // 3, end // 3), bounds[0], "at 48 kHz")


def test_silence_and_scraps_are_not_speech():
    assert speech_segments(np.zeros(0, np.float32)) == []
    assert speech_segments(np.zeros(RATE, np.float32)) == []
    assert speech_segments(np.full(100, 0.5, np.float32)) == []
