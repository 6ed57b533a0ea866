"""Recognition on real recorded speech (Debian's Asterisk prompts, installed by scripts/setup.sh) and on the corpus's
spoken questions, profile by profile."""

from __future__ import annotations

import pytest

from benchmarks.recognition_wer import asterisk, measure, prompts, questions, transcriber
from realtime.rescoring import NBestRescorer


def test_prompts_have_plain_word_transcripts_and_recordings() -> None:
    every = prompts()
    assert len(every) > 500 and all(p.path.is_file() and "#" not in p.text and "[" not in p.text for p in every)
    assert len(prompts(10)) == 10


def test_whisper_hears_real_recorded_prompts_greedy_and_with_a_beam() -> None:
    result = measure(["tiny.en", "tiny.en:beam3"], *asterisk(6))
    assert result["clips"] == 6 and result["audio_s"] > 5
    for profile in ("tiny.en", "tiny.en:beam3"):
        scored = result["profiles"][profile]
        assert scored["wer"] < 0.25 and scored["exact"] >= 0.5 and scored["ms_per_clip"]["p50"] > 0, profile


def test_the_questions_set_is_the_harness_renditions() -> None:
    texts, audio = questions(3)
    assert len(texts) == len(audio) == 3 and all(len(a) > 16_000 for a in audio)


def test_a_profile_names_a_model_a_beam_and_rescoring() -> None:
    def unasked() -> NBestRescorer:
        raise AssertionError("no language model is loaded for a profile without :lm")

    assert transcriber("tiny.en:beam4", unasked).beam_size == 4 and transcriber("tiny.en", unasked).beam_size == 1
    stand_in = object.__new__(NBestRescorer)  # a language model is loaded by tests/test_rescoring.py
    rescored = transcriber("tiny.en:beam3:lm", lambda: stand_in)
    assert rescored.beam_size == 3 and rescored.rescorer is stand_in
    for bad in ("tiny.en:wide", "tiny.en:beam3:other", "tiny.en:lm"):
        with pytest.raises(ValueError, match="profile"):
            transcriber(bad, unasked)
