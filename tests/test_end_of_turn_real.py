"""End of turn on real recordings (``benchmarks.end_of_turn_real``): the true turns read from an rttm, and the
scoring of recorded ``speech_started`` / ``speech_stopped`` sequences against them. No download, no server."""

from __future__ import annotations

import pytest

from benchmarks.client import Stamped
from benchmarks.end_of_turn_real import activity, read_rttm, score, stops, true_turns

# pyannote-audio 4.0.7's sample.rttm, as shipped
RTTM = """\
SPEAKER sample 1 6.690 0.430 <NA> <NA> speaker90 <NA> <NA>
SPEAKER sample 1 7.550 0.800 <NA> <NA> speaker91 <NA> <NA>
SPEAKER sample 1 8.320 1.700 <NA> <NA> speaker90 <NA> <NA>
SPEAKER sample 1 9.920 1.110 <NA> <NA> speaker91 <NA> <NA>
SPEAKER sample 1 10.570 4.130 <NA> <NA> speaker90 <NA> <NA>
SPEAKER sample 1 14.490 3.430 <NA> <NA> speaker91 <NA> <NA>
SPEAKER sample 1 18.050 3.440 <NA> <NA> speaker90 <NA> <NA>
SPEAKER sample 1 18.150 0.440 <NA> <NA> speaker91 <NA> <NA>
SPEAKER sample 1 21.780 6.720 <NA> <NA> speaker91 <NA> <NA>
SPEAKER sample 1 27.850 2.150 <NA> <NA> speaker90 <NA> <NA>
"""


def test_true_turns_drop_a_backchannel_and_join_a_speakers_short_pauses() -> None:
    turns = true_turns(read_rttm(RTTM))
    assert [t.speaker for t in turns] == ["speaker90", "speaker91"] * 4 + ["speaker90"]
    assert [round(t.end_s, 2) for t in turns] == [7.12, 8.35, 10.02, 11.03, 14.7, 17.92, 21.49, 28.5, 30.0]
    assert turns[0].gap_after_s == pytest.approx(0.43) and turns[2].gap_after_s == pytest.approx(-0.1)
    assert turns[-1].gap_after_s is None
    joined = true_turns([(0.0, 1.0, "a"), (1.5, 2.0, "a"), (3.2, 4.0, "a"), (4.1, 5.0, "b")])
    assert [(t.start_s, t.end_s) for t in joined] == [(0.0, 2.0), (3.2, 4.0), (4.1, 5.0)]  # 0.5 s joined, 1.2 s not


def test_ends_are_detected_near_the_true_end_and_false_ones_inside_a_turn() -> None:
    turns = true_turns([(1.0, 3.0, "a"), (4.5, 8.0, "b")])
    start = 50.0
    timeline: list[Stamped] = [
        (51.2, "input_audio_buffer.speech_started", {"audio_start_ms": 1000}),
        (53.6, "input_audio_buffer.speech_stopped", {"audio_end_ms": 3100}),  # turn a's end, told 0.6 s after it
        (54.7, "input_audio_buffer.speech_started", {"audio_start_ms": 4500}),
        (56.5, "input_audio_buffer.speech_stopped", {"audio_end_ms": 6000}),  # a pause inside turn b: a false end
        (56.8, "input_audio_buffer.speech_started", {"audio_start_ms": 6300}),
        (58.9, "response.created", {"response_id": "r"}),
    ]
    placed = stops(timeline, start)
    assert placed == [(3.1, pytest.approx(3.6)), (6.0, pytest.approx(6.5))]
    result = score(turns, placed)
    assert (result["true_ends"], result["detected"], result["false_ends"], result["other_ends"]) == (2, 1, 1, 0)
    assert result["ends"][0]["delay_ms"] == pytest.approx(600) and result["ends"][0]["placed_ms"] == pytest.approx(100)
    assert result["ends"][1]["detected"] is False and result["false_end_at_s"] == [6.0]
    # the recording ends in speech: the last speech_started is open until the end of the file
    assert activity(timeline, 10.0) == {"speech_started": 3, "speech_stopped": 2,
                                        "speech_share": pytest.approx((2.1 + 1.5 + 3.7) / 10.0)}
