"""The harness's markdown report."""

from __future__ import annotations

from typing import Any

from benchmarks import backchannels, cutoffs, end_of_turn_real
from realtime.latency import STAGES


def _dist_row(name: str, d: dict[str, Any], *extra: object) -> str:
    cells = [d.get(k) for k in ("n", "p50", "p90", "p99", "mean", "stdev", "min", "max")]
    return "| " + " | ".join(str(c) for c in (name, *cells, *extra)) + " |"


DIST_HEADER = "| n | p50 | p90 | p99 | mean | stdev | min | max |"


def render(result: dict[str, Any]) -> str:
    corpus, baseline = result["corpus"], result["baseline"]
    lines = [
        f"# realtime bench ({result['label']}, {result['preset']}, {result['date']})",
        "",
        f"{result['machine']['cpus']} CPUs; {result['models']}; {result['duration_s']} s. "
        f"Corpus: {corpus['questions']} questions "
        f"({', '.join(f'{k} {v}' for k, v in corpus['kinds'].items())}), voices {', '.join(corpus['voices'])}, speeds "
        f"{corpus['speeds']}, {corpus['noisy']} under pink/brown noise at {corpus['snr_db']} dB SNR. "
        "Each question streamed in real "
        "time (20 ms PCM16 appends) to `realtime serve` in its own process on loopback; the first-packet delay runs "
        "from the true end of speech to the first reply audio received by the client. The naive cascade (wait for "
        "the end of turn, transcribe, write the whole answer, synthesise it) runs behind the same server, alternating "
        "question by question.",
        "",
        f"**Naive p50 / agent p50: {baseline['p50_ratio_naive_over_agent']}x** "
        f"({baseline['naive_p50_ms']} ms / {baseline['agent_p50_ms']} ms)",
        "",
        "## First-packet delay (ms)",
        "",
        "| transport: mode " + DIST_HEADER + " accuracy | underruns |",
        "|---" * 11 + "|",
    ]
    for transport, modes in result["latency"].items():
        for mode, s in modes.items():
            lines.append(_dist_row(f"{transport}: {mode}", s["first_packet_delay_ms"], s.get("accuracy"), s.get("underruns")))
    if "webrtc" in result["latency"]:
        lines += ["", "WebRTC: the same questions, each from a fresh headless Chromium whose microphone is the clean spoken "
                  "question (`benchmarks.webrtc_latency`, loopback-only network namespace). `webrtc server`: the true end of "
                  "speech reaching the server to the first RTP packet sent; `webrtc page`: the end of speech in the page's "
                  "microphone to the first reply sound the page played (capture, Opus, jitter buffer and playout included)."]
    lines += ["", "## Server stages (ms after the server's end of speech, websocket)", ""]
    for mode, s in result["latency"]["websocket"].items():
        lines += [f"**{mode}**", "", "| stage " + DIST_HEADER, "|---" * 9 + "|"]
        lines += [_dist_row(stage, s["stages_ms"][stage]) for stage in STAGES if stage in s["stages_ms"]]  # older results lack new stages
        lines.append("")
    lines += ["## Accuracy against delay (round-trip Whisper transcript of the reply against the known answers)", "",
              "| mode | reasoning budget | accuracy | p50 ms | p90 ms | CPU s per turn | by kind |",
              "|---|---|---|---|---|---|---|"]
    for point in result["accuracy"]:
        kinds = result["latency"]["websocket"][point["mode"]]["accuracy_by_kind"]
        lines.append(f"| {point['mode']} | {point['budget']} | {point['accuracy']} | {point['p50_ms']} | {point['p90_ms']} | "
                     f"{point['cpu_s_per_turn']} | " + ", ".join(f"{k} {v}" for k, v in kinds.items()) + " |")
    lines += measures_section(result["latency"]["websocket"])
    lines += ["", "## Concurrency (websocket, agent)", "",
              "| sessions | turns | p50 | p90 | p99 | max | underruns (turns) | underrun ms | CPU s per session "
              "| peak MB per session |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for c in result["concurrency"]:
        d = c["first_packet_delay_ms"]
        lines.append(f"| {c['sessions']} | {c['turns']} | {d['p50']} | {d['p90']} | {d['p99']} | {d['max']} "
                     f"| {c['underruns']} ({c['turns_with_underrun']}) | {c['underrun_ms']} | {c['cpu_s_per_session']} "
                     f"| {c['peak_mb_per_session']} |")
    barge = result["barge_in"]
    if barge:
        lines += ["", f"## Barge-in ({barge['interrupted']}/{barge['trials']} interrupted; "
                  "ms from the true onset of the new speech)", "",
                  "| to " + DIST_HEADER, "|---" * 9 + "|"]
        for key in ("onset_to_cleared_ms", "onset_to_truncated_ms", "onset_to_done_ms", "onset_to_last_audio_ms",
                    "onset_to_silence_ms"):
            lines.append(_dist_row(key.removeprefix("onset_to_").removesuffix("_ms"), barge[key]))
        lines += ["", f"Reply statuses: {barge['statuses']}. `truncated`: a reply already written but still playing was cut; "
                  "`done`: the reply's `response.done` (cut while being written). `silence`: when a client that flushes "
                  "its buffer on `output_audio_buffer.cleared` stops playing; "
                  "`last_audio`: the last reply audio received (negative: all of it had arrived before the onset)."]
    if result.get("cutoffs"):
        lines += ["", f"## False cut-offs per turn detection ({result['cutoffs']['questions']} questions, paused ones voiced "
                  f"{result['cutoffs'].get('rendering', 'separate')})", "",
                  *cutoffs.table(result["cutoffs"]), "", cutoffs.NOTE]
    if result.get("backchannels"):
        lines += ["", "## Backchannels and interruptions over a reply", "", *backchannels.table(result["backchannels"]), "",
                  backchannels.NOTE]
    if result.get("end_of_turn_real"):
        lines += ["", "## End of turn on real recorded speech", "", *end_of_turn_real.tables(result["end_of_turn_real"]), "",
                  end_of_turn_real.NOTE]
    lines += ["", "## Resources (server processes, one session at a time)", "",
              "| server | CPU s per turn | idle RSS MB | peak RSS MB | peak over idle MB per session |",
              "|---|---|---|---|---|"]
    for name, r in result["resources"].items():
        lines.append(f"| {name} | {r['cpu_s_per_turn']} | {r['idle_rss_mb']} | {r['peak_rss_mb']} "
                     f"| {r['peak_mb_per_session']} |")
    lines += ["", "CPU: user + system time of the server process during the turn (/proc/PID/stat), all turns of the "
              "agent's budgets together. Memory: VmHWM after the phase minus VmRSS before it (the peak reset with "
              "`clear_refs`); the allocator keeps freed memory, so later phases show only new growth."]
    lines += ["", "Plots: " + ", ".join(f"![{p}]({p})" for p in result.get("plots", []))]
    return "\n".join(lines) + "\n"


MEASURES_NOTE = (
    "Heard: the server's transcript of the question against its text (word error rate, and the share heard word for "
    "word). Answered right: the reply's text as the agent wrote it holds a known answer (questions with an answer key; "
    "conversational turns judged on topic and polite, apart). Can be heard: Whisper base's transcript of the reply "
    "audio against the written reply (word error rate), the share right by that round trip, and of the replies written "
    "right, the share still right once spoken (what the voice and the grader lose). Texts normalised alike (case, "
    "punctuation, numerals as words) before any comparison."
)


def measures_section(modes: dict[str, Any]) -> list[str]:
    """Markdown: the three accuracy measures per mode, overall and per rendition condition (older results: none)."""
    rows = [(mode, "all", s["measures"]) for mode, s in modes.items() if s.get("measures")]
    rows += [(mode, c, m) for mode, s in modes.items() if s.get("measures") for c, m in s["measures"]["by_condition"].items()]
    if not rows:
        return []
    lines = ["", "## Accuracy, three measures (websocket)", "",
             "| mode | voices | turns | heard WER | heard exactly | answered right | conversation judged | audible WER "
             "| round trip right | kept right when spoken |", "|---|---|---|---|---|---|---|---|---|---|"]
    for mode, condition, m in sorted(rows, key=lambda r: (list(modes).index(r[0]), r[1] != "all", r[1])):
        cells = [m[k] for k in ("turns", "heard_wer", "heard_exact", "answered_right", "conversation_judged", "audible_wer",
                                "round_trip", "kept_right")]
        lines.append(f"| {mode} | {condition} | " + " | ".join(str(c) for c in cells) + " |")
    return [*lines, "", MEASURES_NOTE]
