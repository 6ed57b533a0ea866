"""The backchannel bench's verdicts and table on made-up trials, and its sounds (flite and espeak-ng, no models)."""

from __future__ import annotations

from benchmarks.backchannels import sounds, summary, table


def test_a_stopped_backchannel_and_an_unstopped_interruption_are_the_wrong_ones() -> None:
    def row(kind: str, label: str, stopped: bool, stop_ms: float | None, resumed_ms: float | None) -> dict:
        return {"kind": kind, "label": label, "paused": stop_ms is not None, "stopped": stopped, "resumed": resumed_ms is not None,
                "onset_to_stop_ms": stop_ms, "resumed_after_ms": resumed_ms, "sound_ms": 500, "heard": [label.title()] if stopped else []}

    rows = [row("backchannel", "mm", False, 80.0, 900.0), row("backchannel", "noise", False, None, None),
            row("backchannel", "long hum", True, 90.0, None), row("interruption", "wait", True, 100.0, None),
            row("interruption", "stop", False, 120.0, 700.0)]
    result = {kind: summary(rows, kind) for kind in ("backchannel", "interruption")}
    assert (result["backchannel"]["wrong"], result["backchannel"]["wrong_cases"]) == (1, ["long hum heard as 'Long Hum'"])
    assert (result["interruption"]["wrong"], result["interruption"]["wrong_cases"]) == (1, ["stop heard as nothing"])
    assert result["backchannel"]["onset_to_stop_ms"]["n"] == 2 and result["interruption"]["onset_to_stop_ms"]["p50"] == 110.0
    assert "1 (33%)" in table(result)[2] and "1 (50%)" in table(result)[3]


def test_the_sounds_are_noise_first_then_voices_in_turn() -> None:
    chosen = sounds(6, 2)
    assert [kind for kind, _, _ in chosen] == ["backchannel"] * 6 + ["interruption"] * 2
    assert chosen[0][1].startswith("noise burst") and chosen[4][1] == "Mm-hmm. (flite:kal)"
    assert all(len(audio) > 1_000 for _, _, audio in chosen)
    assert [kind for kind, _, _ in sounds(1, 1)] == ["backchannel", "interruption"], "as many as asked"


def test_a_resume_during_the_sound_is_not_yet_its_outcome() -> None:
    from benchmarks.backchannels import judged

    end = 10.0
    assert not judged([], end) and not judged([("AudioPaused", 9.0)], end)
    assert not judged([("AudioPaused", 8.0), ("AudioResumed", 8.2)], end), "a first syllable too short for speech"
    assert not judged([("AudioPaused", 8.0), ("AudioResumed", 8.2), ("AudioPaused", 8.5)], end)
    assert judged([("AudioPaused", 8.0), ("AudioResumed", 10.4)], end) and judged([("AudioPaused", 8.0), ("AudioCleared", 9.5)], end)
