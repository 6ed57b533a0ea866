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
from pathlib import Path

from benchmarks.browser import CHROMIUM, in_loopback_namespace, seen, talk, tapped_server
from benchmarks.corpus import VOICES, Question, load_questions, spoken_question
from benchmarks.report import (
    EMBEDDED_MODELS,
    Record,
    cdf,
    delay_table,
    machine,
    now_iso,
    stage_table,
    summarise,
    write_results,
)
from realtime.models import Models

LEAD_S = 3.0
"""Silence before the question: the page connects while it plays (Chromium starts the file with the microphone)."""
TAIL_S = 40.0
"""Silence after it, longer than any reply (Chromium loops the file)."""


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
                call = await talk(server.url, wav, seen("response.latency"))
                records = sessions[-1].first_packet_delays()
                record = records[0] if records else {"first_rtp_packet_ms": None, "stages_ms": {}}
                runs.append({
                    "question": question.text, "voice": voice,
                    "server_first_packet_delay_ms": record["first_rtp_packet_ms"],
                    "page_first_packet_delay_ms": call.first_reply_delay_ms(),
                    "stages_ms": record["stages_ms"],
                })
                replies.append((question, call))
                print(f"{question.text!r:60} server {runs[-1]['server_first_packet_delay_ms']!s:>7} ms"
                      f"  page {runs[-1]['page_first_packet_delay_ms']!s:>7} ms", flush=True)
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
    result: Record = {
        "benchmark": "webrtc_latency", "date": now_iso(), "label": label, "machine": {**machine(), "browser": browser},
        "models": EMBEDDED_MODELS, "summary": summary, "runs": runs,
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
    ]) + "\n"
    print(text)
    return write_results("webrtc", label, result, text)


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
    args = parser.parse_args()
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
