"""Recognition on real recorded speech (Debian's Asterisk prompts, installed by scripts/setup.sh)."""

from __future__ import annotations

from benchmarks.recognition_wer import measure, prompts


def test_prompts_have_plain_word_transcripts_and_recordings() -> None:
    every = prompts()
    assert len(every) > 500 and all(p.path.is_file() and "#" not in p.text and "[" not in p.text for p in every)
    assert len(prompts(10)) == 10


def test_whisper_hears_real_recorded_prompts() -> None:
    result = measure(["tiny.en"], 6)
    scored = result["models"]["tiny.en"]
    assert result["prompts"] == 6 and result["audio_s"] > 5
    assert scored["wer"] < 0.25 and scored["exact"] >= 0.5 and scored["ms_per_prompt"]["p50"] > 0
