"""The benchmark harness: its pure pieces, and ``realtime bench`` end to end on two questions (real
models, a real ``realtime serve`` subprocess and the naive cascade behind the same server, a real websocket)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from benchmarks.client import FRAME, WIRE_RATE, _Feed
from benchmarks.corpus import KINDS, Rendition, load_questions, pick, render, rendition
from benchmarks.noise import background, coloured_noise, mix_at_snr, power, snr_db
from benchmarks.playout import simulate
from benchmarks.plots import stage_segments
from benchmarks.procstat import usage
from benchmarks.report import cdf, distribution, percentile
from realtime.cli import build_parser
from realtime.errors import UsageError
from realtime.latency import STAGES


def longest_list(value: object) -> int:
    if isinstance(value, dict):
        return max((longest_list(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return max([len(value), *(longest_list(v) for v in value)])
    return 0


def spectral_slope(noise: np.ndarray) -> float:
    """The slope of log power against log frequency (0 white, -1 pink, -2 brown)."""
    spectrum = np.abs(np.fft.rfft(noise)) ** 2
    freqs = np.fft.rfftfreq(len(noise))
    band = (freqs > 0.001) & (freqs < 0.4)
    return float(np.polyfit(np.log(freqs[band]), np.log(spectrum[band]), 1)[0])


def test_coloured_noise_has_the_asked_for_slope_and_unit_power() -> None:
    rng = np.random.default_rng(1)
    for exponent in (0.0, 1.0, 2.0):
        noise = coloured_noise(1 << 16, exponent, rng)
        assert noise.dtype == np.float32 and power(noise) == pytest.approx(1.0, rel=1e-3)
        assert spectral_slope(noise) == pytest.approx(-exponent, abs=0.15)


def test_background_noise_is_reproducible_from_its_seed() -> None:
    assert np.array_equal(background(8000, 7), background(8000, 7))
    assert not np.array_equal(background(8000, 7), background(8000, 8))


@pytest.mark.parametrize("snr", [20.0, 10.0, 0.0])
def test_noise_is_mixed_at_the_asked_for_snr_over_the_speech(snr: float) -> None:
    rate = 16000
    tone = 0.3 * np.sin(np.arange(rate) * 2 * np.pi * 220 / rate)
    speech = np.concatenate([np.zeros(rate // 2), tone, np.zeros(rate // 2)]).astype(np.float32)
    region = slice(rate // 2, rate // 2 + rate)
    mixed = mix_at_snr(speech, background(len(speech), 3), snr, region)
    assert snr_db(speech[region], (mixed - speech)[region]) == pytest.approx(snr, abs=0.01)
    assert np.abs(mixed[: rate // 2]).max() > 0  # the noise runs under the silence too
    with pytest.raises(ValueError):
        mix_at_snr(speech, np.zeros(3, np.float32), snr)


def test_playout_with_no_gaps_never_runs_dry() -> None:
    chunks = [(0.0, 0.5), (0.2, 0.5), (0.9, 0.5)]  # each arrives before the buffer empties
    played = simulate(chunks)
    assert (played.started, played.ended, played.underruns, played.underrun_s) == (0.0, 1.5, 0, 0.0)


def test_playout_counts_and_totals_underruns() -> None:
    chunks = [(0.0, 0.2), (0.5, 0.2), (0.7, 0.1), (1.0, 0.2)]  # dry 0.2-0.5, then 0.8-1.0
    played = simulate(chunks)
    assert played.underruns == 2 and played.underrun_s == pytest.approx(0.5) and played.ended == pytest.approx(1.2)
    # a jitter buffer hides the first gap (0.9-1.0 left)
    assert simulate(chunks, prebuffer_s=0.4).underrun_s == pytest.approx(0.1)
    assert simulate([]).started is None


def test_playout_stops_at_a_flush() -> None:
    chunks = [(0.0, 1.0), (0.1, 1.0), (2.5, 1.0)]
    played = simulate(chunks, flush_at=1.5)
    assert played.ended == 1.5 and played.underruns == 0  # the late chunk was dropped, not played
    assert simulate([(0.0, 0.2)], flush_at=1.0).ended == pytest.approx(0.2)  # nothing left to flush


def test_distribution_percentiles_and_cdf() -> None:
    values = [float(v) for v in range(1, 101)]
    d = distribution(values)
    assert (d["n"], d["p50"], d["min"], d["max"], d["mean"]) == (100, 50.5, 1.0, 100.0, 50.5)
    assert d["p90"] == percentile(values, 90) == 90.1 and d["p99"] == 99.0 and d["stdev"] == 29.0
    assert distribution([])["p50"] is None and distribution([3.0])["stdev"] is None
    points = cdf(values, points=5)
    assert points == [[1.0, 0.0], [25.8, 0.25], [50.5, 0.5], [75.2, 0.75], [100.0, 1.0]]
    assert cdf([]) == []


def test_stage_segments_stack_to_the_client_delay() -> None:
    stages = {s: {"p50": None} for s in STAGES}
    stages.update({"final_transcript": {"p50": 300.0}, "first_answer_token": {"p50": 250.0},
                   "first_tts_audio": {"p50": 700.0}, "first_audio_out": {"p50": 701.0}})
    segments = stage_segments({"stages_ms": stages, "first_packet_delay_ms": {"p50": 800.0}})
    assert [name for name, _ in segments] == ["transcribe", "think", "synthesise", "send", "network + client"]
    assert [w for _, w in segments] == [300.0, 0.0, 400.0, 1.0, 99.0]  # never negative
    assert sum(w for _, w in segments) == 800.0


def test_proc_usage_of_this_process() -> None:
    now = usage(os.getpid())
    assert now.cpu_s > 0 and 0 < now.rss_mb <= now.peak_rss_mb


def test_corpus_has_every_kind_and_known_answers() -> None:
    questions = load_questions()
    assert len(questions) >= 60 and {q.kind for q in questions} == set(KINDS)
    assert all(bool(q.answers) == (q.kind != "conversation") for q in questions)
    assert all(sum(q.kind == kind for q in questions) >= 15 for kind in KINDS)
    assert all(bool(q.topics) == (q.kind == "conversation") for q in questions)
    chosen = pick(questions, 8)
    assert len(chosen) == 8 and len({q.kind for q in chosen}) >= 3 and pick(questions, None) == questions
    renditions = [rendition(i) for i in range(12)]
    assert len({r.voice for r in renditions}) >= 6 and len({r.speed for r in renditions}) >= 3
    assert sum(r.snr_db is not None for r in renditions) == 4


def test_rendered_question_knows_where_its_speech_is() -> None:
    question = load_questions()[0]
    clean = render(question, Rendition("espeak:en-us"), lead_s=0.5, tail_s=0.3)
    noisy = render(question, Rendition("espeak:en-us", snr_db=10.0), lead_s=0.5, tail_s=0.3)
    assert 0.45 <= clean.speech_start_s < 0.6 and clean.speech_end_s <= len(clean.audio) / 16000 - 0.25
    assert (noisy.speech_start_s, noisy.speech_end_s) == (clean.speech_start_s, clean.speech_end_s)
    assert np.abs(noisy.audio[:4000]).max() > 0 == np.abs(clean.audio[:4000]).max()
    faster = render(question, Rendition("espeak:en-us", speed=1.3))
    assert faster.speech_end_s - faster.speech_start_s < clean.speech_end_s - clean.speech_start_s


def test_feed_sends_the_question_then_silence_and_splices_a_barge_in() -> None:
    feed = _Feed(np.ones(16000, np.float32) * 0.5)  # 1 s at 16 kHz: 50 frames on the wire
    assert len(feed.frame(0)) == FRAME and feed.frame(10).mean() == pytest.approx(0.5, abs=0.01)
    assert not feed.frame(60).any()
    feed.splice(80, np.full(1600, -0.5, np.float32))  # 0.1 s: 5 frames from frame 80
    assert not feed.frame(79).any() and feed.frame(81).mean() == pytest.approx(-0.5, abs=0.01) and not feed.frame(86).any()
    assert FRAME == WIRE_RATE // 50


def test_bench_command_line() -> None:
    args = build_parser().parse_args(
        ["bench", "--full", "--label", "x", "--transports", "websocket,webrtc", "--budgets", "0,32"]
    )
    assert (args.full, args.quick, args.label, args.budgets, args.output_dir) == (
        True, False, "x", "0,32", "benchmarks/results"
    )
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--quick", "--full"])
    served = build_parser().parse_args(["bench", "--serve-args=--brain openai-compatible --model 'a b'"])
    assert served.serve_args == "--brain openai-compatible --model 'a b'"
    from benchmarks.cli import bench_options
    from benchmarks.harness import profile_args

    assert bench_options(build_parser().parse_args(["bench", "--full"])).profiles == ("accurate",)
    assert bench_options(build_parser().parse_args(["bench", "--profiles", "accurate"])).profiles == ("accurate",)
    assert bench_options(build_parser().parse_args(["bench", "--profiles", "fast+rescore"])).profiles == ("fast+rescore",)
    assert profile_args("accurate+rescore") == ("--llm", "accurate", "--asr-rescore")
    assert profile_args("fast") == ("--llm", "fast")
    with pytest.raises(UsageError, match="unknown profile 'huge'"):
        bench_options(build_parser().parse_args(["bench", "--profiles", "accurate,huge"]))
    full = bench_options(build_parser().parse_args(["bench", "--full", "--interruptions", "3"]))
    assert (full.backchannels, full.interruptions) == (24, 3)
    with pytest.raises(UsageError, match="--backchannels takes a whole number from 0"):
        bench_options(build_parser().parse_args(["bench", "--backchannels", "-1"]))



def test_the_measured_servers_pipelines() -> None:
    from realtime.cli import _session_config

    agent = _session_config(build_parser().parse_args(["serve", "--answer-early"]))
    naive = _session_config(build_parser().parse_args(["serve", "--pipeline", "naive", "--answer-early"]))
    assert agent.answer_early and agent.speculate and agent.stream_speech
    assert not (naive.answer_early or naive.speculate or naive.stream_speech or naive.listen_while_thinking)


@pytest.mark.slow
def test_realtime_bench_end_to_end(tmp_path, capsys) -> None:
    from matplotlib.image import imread

    from realtime.cli import main

    code = main(["bench", "--quick", "--label", "test", "--output-dir", str(tmp_path), "--questions", "2",
                 "--concurrency", "1,2", "--concurrent-turns", "2", "--barge-ins", "1", "--cutoffs", "1",
                 "--profiles", "accurate", "--backchannels", "1", "--interruptions", "1"])
    assert code == 0
    [path] = tmp_path.glob("*-test.json")
    result = json.loads(path.read_text())
    assert path.with_suffix(".md").read_text().startswith("# realtime bench (test, quick")
    assert result["corpus"]["questions"] == 2 and result["preset"] == "quick"

    websocket = result["latency"]["websocket"]
    assert set(websocket) == {"agent", "naive", "agent, llm accurate"}
    for mode in websocket.values():
        delay = mode["first_packet_delay_ms"]
        assert mode["replied"] == mode["turns"] == 2
        assert 0 < delay["min"] <= delay["p50"] <= delay["p90"] <= delay["p99"] <= delay["max"] < 60_000
        assert set(mode["stages_ms"]) == set(STAGES) and mode["stages_ms"]["first_audio_out"]["p50"] > 0
        assert mode["cdf"][0][1] == 0.0 and mode["cdf"][-1] == [delay["max"], 1.0]
        assert mode["accuracy"] is not None and mode["cpu_s_per_turn"] > 0
        measures = mode["measures"]  # the three measures, each against its own reference
        assert measures["turns"] == 2 and 0 <= measures["heard_wer"] < 1 and measures["answered_right"] is not None
        assert measures["audible_wer"] is not None and set(measures["by_condition"]) <= {"clean", "accented", "noisy"}
    assert result["baseline"]["p50_ratio_naive_over_agent"] > 0
    assert [p["mode"] for p in result["accuracy"]] == ["agent", "naive", "agent, llm accurate"]
    assert result["accuracy"][0]["budget"] == 0
    assert all(t["question_heard"] and t["written"] for t in result["turns"])
    assert "## Accuracy, three measures" in path.with_suffix(".md").read_text()
    overlaps = result["backchannels"]  # a noise burst over a reply, then "Wait, stop."
    assert overlaps["backchannel"]["n"] == overlaps["interruption"]["n"] == 1
    assert overlaps["backchannel"]["wrong"] == 0 and overlaps["interruption"]["wrong"] == 0
    assert "## Backchannels and interruptions over a reply" in path.with_suffix(".md").read_text()

    levels = result["concurrency"]
    assert [c["sessions"] for c in levels] == [1, 2] and all(c["turns"] == 2 for c in levels)
    assert all(c["first_packet_delay_ms"]["p50"] > 0 and c["underruns"] >= 0 and c["cpu_s_per_session"] > 0 for c in levels)

    barge = result["barge_in"]
    assert barge["trials"] == barge["interrupted"] == 1
    cleared_p50 = barge["onset_to_cleared_ms"]["p50"]
    assert 0 < cleared_p50 < 5000 and barge["onset_to_silence_ms"]["p50"] <= cleared_p50

    for server in ("agent", "naive"):
        r = result["resources"][server]
        assert r["peak_rss_mb"] >= r["idle_rss_mb"] > 100 and r["cpu_s_per_turn"] > 0
    assert len(result["turns"]) == 6 and all("heard" in t for t in result["turns"])
    assert longest_list(result) <= 21 and path.stat().st_size < 100_000  # no audio, no per-sample arrays

    assert len(result["plots"]) == 4
    for name in result["plots"]:
        image = imread(tmp_path / name)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
