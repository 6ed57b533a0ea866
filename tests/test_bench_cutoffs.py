"""The false cut-off measurement (``benchmarks.cutoffs``): paused questions are built as described (a word boundary,
a pause in range, the true end at the end of the second part), and the verdict on recorded event sequences flags a
turn the server ended before the true end and not one it ended after. Fast: flite and espeak-ng, no server."""

from __future__ import annotations

import random

import numpy as np
import pytest

from audio.samples import PIPELINE_RATE
from benchmarks.client import Exchange, Stamped
from benchmarks.corpus import PAUSE_S, Question, Rendition, load_questions, pausable, render_paused, speak, speak_paused, split_text
from benchmarks.cutoffs import SETTINGS, judge, summary, table, unsupported
from realtime.cli import build_parser


def test_every_pausable_question_splits_at_a_word_boundary_before_its_last_words() -> None:
    rng = random.Random(3)
    questions = [q for q in load_questions() if pausable(q)]
    assert len(questions) >= 24  # --full asks for 24
    for question in questions:
        first, second = split_text(question.text, rng)
        assert f"{first} {second}" == question.text
        assert len(first.split()) >= 2 and 1 <= len(second.split()) <= 3
    assert split_text("What is the capital of France?", rng) == ("What is the capital of", "France?")
    assert not pausable(Question("Good morning!", ()))
    with pytest.raises(ValueError, match="too short"):
        split_text("Good morning!", rng)


def test_a_paused_question_voiced_apart_has_its_pause_in_range_and_ends_with_its_second_part() -> None:
    question = Question("What is the capital of France?", ("paris",))
    how = Rendition("flite:slt")
    sample = render_paused(question, how, random.Random(7), lead_s=0.5, tail_s=0.2, rendering="separate")
    assert (sample.first, sample.second, sample.rendering) == ("What is the capital of", "France?", "separate")
    assert PAUSE_S[0] <= sample.pause_s <= PAUSE_S[1]
    head, rest = speak(sample.first, how.voice), speak(sample.second, how.voice)
    lead = int(0.5 * PIPELINE_RATE)
    gap = round(sample.pause_s * PIPELINE_RATE)
    assert len(sample.audio) == lead + len(head) + gap + len(rest) + int(0.2 * PIPELINE_RATE)
    assert sample.second_start_s == pytest.approx((lead + len(head) + gap) / PIPELINE_RATE)
    # the inserted pause is silent, and the true end of speech lies in the second part, near its end
    assert not sample.audio[lead + len(head) : lead + len(head) + gap].any()
    second_end_s = sample.second_start_s + len(rest) / PIPELINE_RATE
    assert sample.second_start_s < sample.speech_end_s <= second_end_s
    assert second_end_s - sample.speech_end_s < 0.1
    assert 0.5 <= sample.speech_start_s < sample.second_start_s
    pauses = [render_paused(question, how, random.Random(seed), rendering="separate").pause_s for seed in range(12)]
    assert all(PAUSE_S[0] <= p <= PAUSE_S[1] for p in pauses) and len(set(pauses)) > 6
    with pytest.raises(ValueError, match="unknown rendering"):
        render_paused(question, how, random.Random(7), rendering="spliced")


@pytest.mark.parametrize("voice", ["flite:slt", "espeak:en-us", "espeak:en-us+f3"])
def test_a_paused_question_voiced_as_one_sentence_has_its_pause_where_the_second_part_resumes(voice: str) -> None:
    question = Question("How many sides does a triangle have?", ("three",))
    sample = render_paused(question, Rendition(voice, speed=0.85), random.Random(2), lead_s=0.5, tail_s=0.2)
    assert (sample.first, sample.rendering) == ("How many sides does a", "continuous") and PAUSE_S[0] <= sample.pause_s <= PAUSE_S[1]
    resumes = round(sample.second_start_s * PIPELINE_RATE)
    quiet = np.abs(sample.audio[resumes - round((sample.pause_s - 0.25) * PIPELINE_RATE) : resumes])  # en-us+f3 echoes ~250 ms
    loud = np.abs(sample.audio[resumes : resumes + PIPELINE_RATE // 10])
    assert quiet.max() < 1e-3 < loud.max()
    assert 0.5 <= sample.speech_start_s < sample.second_start_s < sample.speech_end_s <= len(sample.audio) / PIPELINE_RATE - 0.2


def test_flite_pauses_inside_the_sentence_it_voiced_whole() -> None:
    """The first part is the whole sentence's own beginning (cut after its last phone), not a rendering of its own."""
    whole = speak("How many sides does a triangle have?", "flite:kal")
    audio, resumes = speak_paused("How many sides does a", "triangle have?", "flite:kal", 0.5)
    gap = PIPELINE_RATE // 2
    head = resumes - gap
    assert not audio[head:resumes].any()
    assert np.array_equal(audio[: head - PIPELINE_RATE // 100], whole[: head - PIPELINE_RATE // 100])  # all but the fade
    assert len(audio) == len(whole) + gap
    alone = speak("How many sides does a", "flite:kal")
    assert len(alone) > head + PIPELINE_RATE // 20  # voiced alone, "a" is a final, stressed "ey"


def _f0_hz(audio: np.ndarray) -> float:
    """The median pitch (Hz) of ``audio``'s voiced 40 ms frames, by autocorrelation (60-400 Hz)."""
    frame, pitches = 640, []
    for at in range(0, len(audio) - frame, frame // 4):
        x = audio[at : at + frame] - audio[at : at + frame].mean()
        if np.sqrt(np.mean(x**2)) < 0.01:
            continue
        ac = np.correlate(x, x, "full")[frame - 1 :]
        lag = 40 + int(np.argmax(ac[40:267]))
        if ac[lag] > 0.4 * ac[0]:
            pitches.append(PIPELINE_RATE / lag)
    return float(np.median(pitches))


def test_the_first_part_keeps_the_pitch_of_a_sentence_that_goes_on() -> None:
    """espeak-ng ends "What is the capital of" with a final fall when it is voiced alone, not inside the sentence."""
    question, how = Question("What is the capital of France?", ("paris",)), Rendition("espeak:en-us")
    ending: dict[str, float] = {}
    for rendering in ("continuous", "separate"):
        sample = render_paused(question, how, random.Random(7), lead_s=0.0, tail_s=0.0, rendering=rendering)
        first_end = round((sample.second_start_s - sample.pause_s) * PIPELINE_RATE)
        ending[rendering] = _f0_hz(sample.audio[first_end - PIPELINE_RATE // 4 : first_end])
    assert ending["continuous"] > 1.15 * ending["separate"]


# Recorded event sequences (arrival on the client's clock, type, kept fields); the first frame went at 100.0, the
# first part ended at 102.1 s, the second began at 102.74 s and the user finished at 103.59 s (client time 103.59).
START, SECOND_START_S, END = 100.0, 2.74, 103.59
CUT_AT_THE_PAUSE: list[Stamped] = [  # server_vad, 480 ms: the turn is ended in the pause, the second part barges in
    (100.944, "input_audio_buffer.speech_started", {"audio_start_ms": 736, "item_id": "item_1"}),
    (102.590, "input_audio_buffer.speech_stopped", {"audio_end_ms": 2048, "item_id": "item_1"}),
    (102.590, "input_audio_buffer.committed", {"item_id": "item_1"}),
    (103.306, "input_audio_buffer.speech_started", {"audio_start_ms": 3072, "item_id": "item_2"}),
    (103.306, "output_audio_buffer.cleared", {"response_id": "resp_turn_1"}),
    (104.108, "input_audio_buffer.speech_stopped", {"audio_end_ms": 3616, "item_id": "item_2"}),
    (104.108, "input_audio_buffer.committed", {"item_id": "item_2"}),
    (108.037, "response.created", {"response_id": "resp_turn_2", "status": "in_progress"}),
    (109.769, "response.output_audio.delta", {"item_id": "item_4", "response_id": "resp_turn_2"}),
    (109.771, "response.output_audio_transcript.done", {"response_id": "resp_turn_2", "transcript": "Friends!"}),
    (109.771, "response.done", {"response_id": "resp_turn_2", "status": "completed"}),
]
WAITED: list[Stamped] = [  # the pause did not end the turn: one commit after the true end
    (100.944, "input_audio_buffer.speech_started", {"audio_start_ms": 736, "item_id": "item_1"}),
    (104.150, "input_audio_buffer.speech_stopped", {"audio_end_ms": 3600, "item_id": "item_1"}),
    (104.151, "input_audio_buffer.committed", {"item_id": "item_1"}),
    (104.200, "response.created", {"response_id": "resp_turn_1", "status": "in_progress"}),
    (104.900, "response.output_audio.delta", {"item_id": "item_2", "response_id": "resp_turn_1"}),
    (105.500, "response.output_audio_transcript.done", {"response_id": "resp_turn_1", "transcript": "It is Paris."}),
    (105.500, "response.done", {"response_id": "resp_turn_1", "status": "completed"}),
]


def test_a_turn_committed_in_the_pause_is_a_cut_off_and_one_committed_after_the_end_is_not() -> None:
    cut = judge(CUT_AT_THE_PAUSE, END, start=START, second_start_s=SECOND_START_S)
    assert cut["cut_off"] and cut["why"] == "committed" and cut["commits"] == 2
    assert cut["early_ms"] == pytest.approx((END - 102.048) * 1000, abs=1)  # from the end of speech the server placed
    waited = judge(WAITED, END, start=START, second_start_s=SECOND_START_S)
    assert waited == {"cut_off": False, "why": None, "early_ms": None, "commits": 1}
    # an end of turn without a reply after it is no cut-off (nobody started answering)
    assert not judge(CUT_AT_THE_PAUSE[:7], END, start=START, second_start_s=SECOND_START_S)["cut_off"]


def test_a_late_report_of_an_end_placed_in_the_pause_still_counts_and_early_audio_counts_alone() -> None:
    # a loaded server tells the client after the true end, but it placed the end of speech in the pause
    lagging: list[Stamped] = [
        (103.700, "input_audio_buffer.speech_stopped", {"audio_end_ms": 2100, "item_id": "item_1"}),
        (103.700, "input_audio_buffer.committed", {"item_id": "item_1"}),
        (103.800, "response.created", {"response_id": "resp_turn_1"}),
    ]
    assert judge(lagging, END, start=START, second_start_s=SECOND_START_S)["cut_off"]
    assert not judge(lagging, END, start=START)["cut_off"]  # a plain question has no pause to place it in
    speaking_early: list[Stamped] = [(103.0, "response.output_audio.delta", {"response_id": "resp_turn_1"})]
    verdict = judge(speaking_early, END, start=START)
    assert verdict["cut_off"] and verdict["why"] == "audio" and verdict["early_ms"] == pytest.approx(590, abs=1)


def test_a_refused_or_ignored_setting_is_unsupported() -> None:
    asked = SETTINGS["semantic_vad low"]
    assert unsupported(Exchange(speech_end=0.0, refused="turn_detection must be ..."), asked) == "error: turn_detection must be ..."
    reported_vad = Exchange(0.0, session={"audio": {"input": {"turn_detection": {"type": "server_vad"}}}})
    assert "reports type 'server_vad'" in str(unsupported(reported_vad, asked))
    taken = Exchange(0.0, session={"audio": {"input": {"turn_detection": {"type": "semantic_vad", "eagerness": "low"}}}})
    assert unsupported(taken, asked) is None
    other = Exchange(0.0, session={"turn_detection": {"type": "semantic_vad", "eagerness": "high"}})  # beta shape
    assert "eagerness 'high'" in str(unsupported(other, asked))
    assert unsupported(Exchange(0.0, session={"audio": {"input": {"turn_detection": None}}}), asked) is not None


def test_summary_and_table_show_the_share_with_n() -> None:
    rows = [{"cut_off": c, "early_ms": 500.0 if c else None, "first_packet_delay_ms": d, "answered": a}
            for c, d, a in [(True, 900.0, False), (False, 700.0, True), (False, 800.0, None), (False, None, False)]]
    s = summary(rows)
    assert (s["n"], s["cut_offs"], s["cut_off_share"], s["answered"], s["answered_n"]) == (4, 1, 0.25, 0.333, 3)
    assert s["first_packet_delay_ms"]["n"] == 2 and s["early_ms"]["n"] == 1
    result = {"questions": 4, "settings": {
        "server_vad": {"status": "measured", "reason": None, "paused": s, "plain": s},
        "semantic_vad low": {"status": "unsupported", "reason": "error: no"},
    }}
    lines = table(result)
    assert "| server_vad | 1/4 (25%) |" in lines[2] and "unsupported: error: no" in lines[3]


def test_bench_presets_and_the_cutoffs_override() -> None:
    from benchmarks.cli import bench_options

    quick = bench_options(build_parser().parse_args(["bench"]))
    full = bench_options(build_parser().parse_args(["bench", "--full"]))
    assert 0 < quick.cutoffs < full.cutoffs and full.cutoffs >= 20 and full.real_speech and not quick.real_speech
    assert bench_options(build_parser().parse_args(["bench", "--cutoffs", "0"])).cutoffs == 0
    assert bench_options(build_parser().parse_args(["bench", "--full", "--no-real-speech"])).real_speech is False
    from realtime.errors import UsageError

    with pytest.raises(UsageError, match="--cutoffs"):
        bench_options(build_parser().parse_args(["bench", "--cutoffs", "-1"]))
    assert np.isfinite(PAUSE_S).all()
