"""First-packet delay through the browser path: headless Chromium talks to the server over WebRTC.

The server runs in this process (its sessions' records and input are read directly) and every question
gets a fresh browser whose microphone is the padded spoken question (the page asks for echo
cancellation, noise suppression and gain control, as on a real microphone). Both run in a loopback-only
network namespace: the script re-runs itself inside one unless it already is in one (root needed).
Two delays per reply:

- server: from the arrival of the true last speech sample (found in the session's input as
  ``realtime respond`` finds it) to the first RTP packet of the reply handed to the sender;
- page: from the end of speech in what the page's microphone captured to the first sound the page
  played, both on the page's audio clock (capture, Opus, network, jitter buffer and playout included).

Replies are transcribed from the page's recording afterwards and checked against the known answers.
Each reply is also traced on one clock (the page's and the server's wall clock; same machine): when the
end of speech reached the session, the server's stages, the first frame handed to aiortc's sender and its
Opus packet sent, the page's first sound; with the page's jitter buffer statistics, the gaps between sent
frames and the CPU the server and the browser used (:func:`attribution`). ``--compare`` lays out groups of
``--runs-json`` files side by side (before/after runs, alternated):

    .venv/bin/python -m benchmarks.webrtc_latency --label cpu2 --compare before=a.json,c.json after=b.json,d.json

    .venv/bin/python -m benchmarks.webrtc_latency --questions 12 --label cpu2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from benchmarks.browser import CHROMIUM, EncoderTrace, PageCall, in_loopback_namespace, seen, talk, tapped_server
from benchmarks.corpus import VOICES, Question, load_questions, spoken_question
from benchmarks.report import (
    EMBEDDED_MODELS,
    Record,
    cdf,
    delay_table,
    machine,
    now_iso,
    percentile,
    stage_table,
    summarise,
    write_results,
)
from realtime.models import Models

LEAD_S = 3.0
"""Silence before the question: the page connects while it plays (Chromium starts the file with the microphone)."""
TAIL_S = 40.0
"""Silence after it, longer than any reply (Chromium loops the file)."""


TRACE = ("true_speech_end", "speech_end", "end_of_turn", "final_transcript", "first_token", "first_tts_audio",
         "first_audio_out", "first_frame", "first_packet")
"""The server's stamps of a reply, in order, on the wall clock: each is reported in ms after the end of speech
in the page's microphone, and the page's first reply sound ends the trace (``page_first_sound``)."""


class CpuMeter:
    """CPU seconds used by this process and by its descendants (the browser), sampled every 0.25 s while
    entered (a browser process that ends between samples loses its last quarter second)."""

    def __init__(self) -> None:
        self._seen: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CpuMeter:
        self._base = self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def seconds(self) -> dict[str, float]:
        """{"server": ..., "browser": ...}: CPU seconds used while entered."""
        used = {"server": 0.0, "browser": 0.0}
        for pid, (who, cpu) in self._seen.items():
            used[who] += cpu - self._base.get(pid, (who, 0.0))[1]
        return {who: round(cpu, 2) for who, cpu in used.items()}

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self._sample()

    def _sample(self) -> dict[int, tuple[str, float]]:
        me, parents, cpu = os.getpid(), {}, {}
        tick = os.sysconf("SC_CLK_TCK")
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                parents[int(entry.name)] = int(fields[1])
                cpu[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
        sample = {}
        for pid in cpu:
            ancestor = pid
            while ancestor not in (me, 0, 1) and ancestor in parents:
                ancestor = parents[ancestor]
            if ancestor == me:
                sample[pid] = ("server" if pid == me else "browser", cpu[pid])
        self._seen.update(sample)
        return sample


def page_trace(call: PageCall, stamps: dict[str, float]) -> dict[str, float | None]:
    """The reply's stages in ms after the end of speech in the page's microphone, on the wall clock."""
    spoken, played = call.speech_end_and_first_reply()
    if spoken is None:
        return {}
    ms = lambda at: None if at is None else round((at - spoken) * 1000, 1)  # noqa: E731
    return {**{stage: ms(stamps.get(stage)) for stage in TRACE}, "page_first_sound": ms(played)}


def page_stats(call: PageCall) -> dict[str, float | None]:
    """The page's view of the reply's audio: its jitter buffer's mean delay and target, and its playout delay."""
    def per(total: str, count: str, kind: str = "inbound-rtp") -> float | None:
        t, n = call.stat(kind, total, kind="audio"), call.stat(kind, count, kind="audio")
        return None if t is None or not n else round(1000 * t / n, 1)

    return {
        "jitter_buffer_delay_ms": per("jitterBufferDelay", "jitterBufferEmittedCount"),
        "jitter_buffer_target_ms": per("jitterBufferTargetDelay", "jitterBufferEmittedCount"),
        "jitter_buffer_minimum_ms": per("jitterBufferMinimumDelay", "jitterBufferEmittedCount"),
        "playout_delay_ms": per("totalPlayoutDelay", "totalSamplesCount", "media-playout"),
        "concealed_samples": call.stat("inbound-rtp", "concealedSamples", kind="audio"),
    }


async def measure(questions: list[tuple[int, Question]]) -> list[Record]:
    """Ask each (corpus index, question) from a fresh browser; the runs, graded."""
    models = Models.load_embedded()
    await models.warm_up()
    runs: list[Record] = []
    replies = []
    async with tapped_server(models) as (server, sessions):
        with tempfile.TemporaryDirectory() as tmp:
            for index, question in questions:
                voice = VOICES[index % len(VOICES)]
                wav = Path(tmp) / f"q{index}.wav"
                spoken_question(question.text, voice, wav, lead_s=LEAD_S, tail_s=TAIL_S)
                with CpuMeter() as cpu, EncoderTrace() as encodes:
                    call = await talk(server.url, wav, seen("response.latency"))
                records = sessions[-1].first_packet_delays()
                record = records[0] if records else {"first_rtp_packet_ms": None, "stages_ms": {}}
                stamps = sessions[-1].wall_clock_stamps(encodes)
                waits = encodes.executor_waits_ms()
                runs.append({
                    "question": question.text, "voice": voice,
                    "server_first_packet_delay_ms": record["first_rtp_packet_ms"],
                    "page_first_packet_delay_ms": call.first_reply_delay_ms(),
                    "stages_ms": record["stages_ms"],
                    "trace_ms": page_trace(call, stamps[0]) if stamps else {},
                    "page_stats": page_stats(call),
                    "encoder_wait_ms": {"max": max(waits, default=None), "over_5ms": sum(w > 5 for w in waits),
                                        "frames": len(waits)},
                    "send_gaps_ms": encodes.gaps_ms(),
                    "cpu_s": cpu.seconds(),
                })
                replies.append((question, call))
                print(f"{question.text!r:60} server {runs[-1]['server_first_packet_delay_ms']!s:>7} ms"
                      f"  page {runs[-1]['page_first_packet_delay_ms']!s:>7} ms", runs[-1]["trace_ms"],
                      runs[-1]["page_stats"], runs[-1]["send_gaps_ms"], runs[-1]["cpu_s"], flush=True)
    for entry, (question, call) in zip(runs, replies, strict=True):
        reply = call.reply_audio()
        entry["heard"] = models.asr.transcribe(reply).text if len(reply) else ""
        entry["correct"] = question.correct(entry["heard"])
    return runs


def summaries(runs: list[Record]) -> dict[str, Record]:
    """One summary (with its CDF) per way of measuring: at the server and at the page."""
    summary = {}
    for mode, key in (("webrtc server", "server"), ("webrtc page", "page")):
        renamed = [{**r, "first_packet_delay_ms": r[f"{key}_first_packet_delay_ms"]} for r in runs]
        delays = [r["first_packet_delay_ms"] for r in renamed if r["first_packet_delay_ms"] is not None]
        summary[mode] = {**summarise(renamed), "cdf": cdf(delays)}
    return summary


def measure_in_namespace(indices: list[int]) -> dict[str, Record]:
    """Run :func:`measure` on these corpus questions in a loopback-only namespace; their summaries."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "runs.json"
        picked = ",".join(map(str, indices))
        command = [sys.executable, "-m", "benchmarks.webrtc_latency", "--pick", picked, "--runs-json", str(out)]
        subprocess.run(command if isolated() else in_loopback_namespace(command), check=True)
        return summaries(json.loads(out.read_text()))


async def run(count: int, label: str) -> Path:
    runs = await measure(list(enumerate(load_questions(count))))
    summary = summaries(runs)
    browser = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True).stdout.strip()
    stages = attribution(runs)
    result: Record = {
        "benchmark": "webrtc_latency", "date": now_iso(), "label": label, "machine": {**machine(), "browser": browser},
        "models": EMBEDDED_MODELS, "summary": summary, "attribution": stages, "runs": runs,
    }
    text = "\n".join([
        f"# WebRTC from a browser, first-packet delay ({label}, {result['date']})",
        "",
        f"{result['machine']['cpus']} CPUs; {EMBEDDED_MODELS}; server defaults; {browser}, headless, one fresh browser per "
        "question, its microphone the padded spoken question (echo cancellation, noise suppression and gain control on); "
        "server and browser in a loopback-only network namespace. Server: true end of speech arriving at the server to the "
        "first RTP packet of the reply sent. Page: end of speech in the page's microphone to the first reply sound the page "
        "played (the page's audio clock; capture, Opus, network, jitter buffer and playout included).",
        "",
        *delay_table(summary),
        "",
        "Median of each stage as the server recorded it (ms after the true end of speech reached the server):",
        "",
        *stage_table({"webrtc": summary["webrtc server"]}),
        "",
        "The path of the first reply audio (ms after the end of speech in the page's microphone, one clock):",
        "",
        "| stage | p50 | p90 |",
        "|---|---|---|",
        *(f"| {name} | {row['p50']} | {row['p90']} |" for name, row in stages.items()),
    ]) + "\n"
    print(text)
    return write_results("webrtc", label, result, text)


SEGMENTS: dict[str, tuple[str | None, str]] = {
    "input: page's end of speech -> it reached the session": (None, "true_speech_end"),
    "VAD: true end -> its end of speech": ("true_speech_end", "speech_end"),
    "server: true end -> first reply audio queued on the track": ("true_speech_end", "first_audio_out"),
    "track: queued -> first frame handed to the sender": ("first_audio_out", "first_frame"),
    "sender: frame -> Opus packet sent": ("first_frame", "first_packet"),
    "output: packet sent -> page's first sound": ("first_packet", "page_first_sound"),
    "page: end of speech -> first sound (all)": (None, "page_first_sound"),
}
"""The path of a reply's first audio, split where the trace has stamps (ms; None: the page's end of speech)."""
MEASURES: dict[str, tuple[str, str]] = {
    "page jitter buffer, mean delay ms": ("page_stats", "jitter_buffer_delay_ms"),
    "page jitter buffer, mean target ms": ("page_stats", "jitter_buffer_target_ms"),
    "sender: gap between frames, p99 ms (20 when steady)": ("send_gaps_ms", "p99"),
    "sender: longest gap between frames, ms": ("send_gaps_ms", "max"),
    "encoder wait for the executor, max ms": ("encoder_wait_ms", "max"),
    "server CPU s per call": ("cpu_s", "server"),
    "browser CPU s per call": ("cpu_s", "browser"),
}


def attribution(runs: list[Record]) -> dict[str, dict[str, float | int | None]]:
    """p50 and p90 of each segment of :data:`SEGMENTS` and each of :data:`MEASURES` over ``runs``."""
    def spread(values: list[float]) -> dict[str, float | int | None]:
        return {"n": len(values), "p50": percentile(values, 50), "p90": percentile(values, 90)}

    table = {}
    for name, (start, end) in SEGMENTS.items():
        values = []
        for run in runs:
            trace = run.get("trace_ms", {})
            first, last = 0.0 if start is None else trace.get(start), trace.get(end)
            if first is not None and last is not None:
                values.append(round(last - first, 1))
        table[name] = spread(values)
    for name, (group, key) in MEASURES.items():
        table[name] = spread([v for run in runs if (v := (run.get(group) or {}).get(key)) is not None])
    for key in ("server_first_packet_delay_ms", "page_first_packet_delay_ms"):
        table[key] = spread([run[key] for run in runs if run.get(key) is not None])
    return table


def compare(groups: dict[str, list[Path]], label: str, notes: str = "") -> Path:
    """The attribution of each group of runs files (``--runs-json`` outputs), side by side, as results files."""
    runs = {name: [run for path in paths for run in json.loads(path.read_text())] for name, paths in groups.items()}
    tables = {name: attribution(group) for name, group in runs.items()}
    names = list(tables)
    rows = list(next(iter(tables.values())))
    lines = [f"# The WebRTC path, first-packet delay attributed per stage ({label}, {now_iso()})", "", notes, "",
             "| stage (ms unless named) | " + " | ".join(f"{n} p50 | {n} p90" for n in names) + " |",
             "|---|" + "---|---|" * len(names)]
    for row in rows:
        cells = [f"{tables[n][row]['p50']} | {tables[n][row]['p90']}" for n in names]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    lines += ["", "Turns per group: " + ", ".join(f"{n}: {len(runs[n])}" for n in names)]
    result: Record = {"benchmark": "webrtc_path", "date": now_iso(), "label": label, "machine": machine(),
                      "models": EMBEDDED_MODELS, "attribution": tables, "runs": runs}
    return write_results("webrtc-path", label, result, "\n".join(lines) + "\n")


def isolated() -> bool:
    """Whether this process sees no network interface but loopback."""
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=12)
    parser.add_argument("--label", default="cpu")
    parser.add_argument("--pick", help="comma-separated corpus indices instead of the first --questions (for realtime bench)")
    parser.add_argument("--runs-json", type=Path,
                        help="write the graded runs here instead of result files (for realtime bench)")
    parser.add_argument("--compare", nargs="+", metavar="NAME=RUNS.json[,RUNS.json]",
                        help="write the per-stage attribution of these groups of --runs-json files (no calls)")
    parser.add_argument("--notes", default="", help="a paragraph for --compare's report")
    args = parser.parse_args()
    if args.compare:
        groups = {name: [Path(f) for f in files.split(",")] for name, files in (g.split("=", 1) for g in args.compare)}
        print(compare(groups, args.label, args.notes))
        return
    if not isolated():
        command = in_loopback_namespace([sys.executable, "-m", "benchmarks.webrtc_latency", *sys.argv[1:]])
        os.execvp(command[0], command)
    if args.runs_json:
        every = load_questions()
        picked = [(i, every[i]) for i in map(int, args.pick.split(","))] if args.pick else list(enumerate(every[: args.questions]))
        args.runs_json.write_text(json.dumps(asyncio.run(measure(picked))))
        return
    asyncio.run(run(args.questions, args.label))


if __name__ == "__main__":
    main()
