"""The chunked Piper decoder on the real joe voice: the same audio as Piper, sooner."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tts import PiperSynthesizer, StreamingPiperSynthesizer, Synthesizer
from tts.piper_voice import LeadTrimmer

LONG = "The capital of France is Paris, a city on the river Seine that is famous for its museums, its cafes and its food."
SENTENCES = ("The answer is four.", "You asked what is the capital of Japan, and the answer is Tokyo.", LONG)


@pytest.fixture(scope="module")
def piper() -> PiperSynthesizer:
    """Deterministic (no noise), so that two syntheses of a sentence can be compared sample by sample."""
    return PiperSynthesizer(noise_scale=0.0, noise_w_scale=0.0)


@pytest.fixture(scope="module")
def streaming() -> StreamingPiperSynthesizer:
    return StreamingPiperSynthesizer(noise_scale=0.0, noise_w_scale=0.0)


async def chunks(synth: Synthesizer, text: str, *, trim_lead: bool = False) -> list[np.ndarray]:
    return [chunk async for chunk in synth.stream(text, trim_lead=trim_lead)]


def assert_same_but_level(got: np.ndarray, want: np.ndarray) -> None:
    """``got`` is ``want`` up to a level (the fixed gain against Piper's per-sentence peak normalisation: a peak needs
    the whole sentence) and clipping at full scale."""
    assert abs(len(got) - len(want)) <= 4
    got, want = got[: min(len(got), len(want))], want[: min(len(got), len(want))]
    unclipped = np.abs(got) < 0.999
    level = float(np.dot(got[unclipped], want[unclipped]) / np.dot(want[unclipped], want[unclipped]))
    assert 0.3 < level <= 1.5 + 1e-3  # the gain (1.5) times the raw peak (at most 1)
    assert np.abs(got - np.clip(level * want, -1.0, 1.0)).max() < 2e-4 * level


async def test_the_audio_is_pipers(piper: PiperSynthesizer, streaming: StreamingPiperSynthesizer) -> None:
    assert streaming.sample_rate == piper.sample_rate == 22050
    for text in SENTENCES:
        want = np.concatenate(await chunks(piper, text))
        parts = await chunks(streaming, text)
        assert all(part.dtype == np.float32 and part.ndim == 1 for part in parts)
        assert_same_but_level(np.concatenate(parts), want)


async def test_each_sentence_of_a_text_as_piper_splits_it(piper: PiperSynthesizer, streaming: StreamingPiperSynthesizer) -> None:
    text = "Yes. " + LONG
    pieces = await chunks(piper, text)
    assert len(pieces) == 2  # one per sentence
    got = np.concatenate(await chunks(streaming, text))
    assert abs(len(got) - sum(len(p) for p in pieces)) <= 8
    start = 0
    for piece in pieces:
        assert_same_but_level(got[start : start + len(piece)], piece)
        start += len(piece)


async def test_a_long_sentence_comes_in_chunks_the_first_one_early(streaming: StreamingPiperSynthesizer) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    arrivals, sizes = [], []
    async for chunk in streaming.stream(LONG, trim_lead=False):
        arrivals.append(loop.time() - start)
        sizes.append(len(chunk))
    assert len(sizes) >= 4
    assert sizes[0] == 16 * 256  # the schedule's first chunk: 16 frames of 256 samples
    assert sizes[1:4] == [32 * 256, 64 * 256, 128 * 256]
    assert arrivals[0] < 0.6 * arrivals[-1]


async def test_trim_lead_drops_the_silence_before_the_first_word(
    piper: PiperSynthesizer, streaming: StreamingPiperSynthesizer
) -> None:
    text = "Hello there, how are you?"
    whole = np.concatenate(await chunks(streaming, text))
    trimmed = np.concatenate(await chunks(streaming, text, trim_lead=True))
    cut = len(whole) - len(trimmed)
    assert cut > 0
    assert np.array_equal(whole[cut:], trimmed)  # only the lead is cut
    margin = int(0.01 * streaming.sample_rate)
    assert np.flatnonzero(np.abs(trimmed) > 0.01)[0] <= margin
    assert np.abs(whole[: max(0, cut)]).max() <= 0.01
    # the same place as Piper's trim, give or take the samples where the two levels differ near the threshold
    piper_cut = len(np.concatenate(await chunks(piper, text))) - len(np.concatenate(await chunks(piper, text, trim_lead=True)))
    assert abs(cut - piper_cut) <= 48


def test_the_trimmer_carries_a_lead_across_chunks() -> None:
    trimmer = LeadTrimmer(1000)  # a 10-sample margin
    quiet, loud = np.zeros(30, np.float32), np.full(5, 0.5, np.float32)
    assert len(trimmer.push(quiet)) == 0
    out = trimmer.push(np.concatenate([np.zeros(4, np.float32), loud]))
    assert len(out) == 10 + 5 and np.array_equal(out[-5:], loud)
    assert np.array_equal(trimmer.push(quiet), quiet) and not len(trimmer.flush())
    silent = LeadTrimmer(1000)
    assert not len(silent.push(quiet)) and np.array_equal(silent.flush(), quiet)  # nothing loud: given back whole


async def test_two_tasks_share_one_synthesiser(streaming: StreamingPiperSynthesizer) -> None:
    texts = ("The answer is Tokyo, the capital of Japan.", "Water boils at one hundred degrees at sea level.")
    alone = [np.concatenate(await chunks(streaming, text)) for text in texts]
    together = await asyncio.gather(*(chunks(streaming, text) for text in texts))
    for mine, reference in zip(together, alone, strict=True):
        assert np.abs(np.concatenate(mine) - reference).max() < 1e-4


async def test_cancelling_stops_the_stream_and_the_next_clause_is_whole(streaming: StreamingPiperSynthesizer) -> None:
    stream = streaming.stream(LONG, trim_lead=False)
    first = await anext(stream)
    await stream.aclose()
    assert len(first) == 16 * 256
    again = np.concatenate(await chunks(streaming, "The answer is four."))
    assert 0.5 < len(again) / streaming.sample_rate < 3.0


def test_a_schedule_needs_positive_frame_counts() -> None:
    with pytest.raises(ValueError, match="positive frame counts"):
        StreamingPiperSynthesizer(schedule=[16, 0])
