"""First audio and total time of one clause: Piper (whole sentence per call) against the chunked decoder.

Clauses of 4-30 words are made from the corpus (``benchmarks/questions.jsonl``): each question's known answer
said three ways, short ("The answer is Paris."), medium (the question restated) and long (a restatement with a
preamble). Each run speaks one clause with both synthesisers, alternating which goes first, through their public
``stream(text, trim_lead=True)`` (a reply's first clause, as the pipeline asks for it), timing the first chunk
and the last. Both share the voice file and the machine; nothing else of the agent is loaded.

    .venv/bin/python -m benchmarks.tts_first_audio --runs 60 --label cpu2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
from pathlib import Path

import numpy as np

from benchmarks.corpus import load_questions
from benchmarks.report import Record, distribution, machine, now_iso, write_results
from tts import PiperSynthesizer, StreamingPiperSynthesizer, Synthesizer
from tts.streaming_piper import GAIN, LEFT_FRAMES, RIGHT_FRAMES, SCHEDULE

BUCKETS = ((4, 8), (9, 16), (17, 30))
"""Clause lengths in words, both ends included."""

_OPEN_REPLY = "I am glad you asked"


def clauses() -> list[str]:
    """Every clause of the benchmark: three per corpus question, all of 4-30 words."""
    out = []
    for question in load_questions():
        asked = question.text.rstrip("?!.").lower()
        answer = question.answers[0] if question.answers else None
        if answer is None:
            out += [f"{_OPEN_REPLY}.", f"You said {asked}, and {_OPEN_REPLY.lower()}.",
                    f"Thank you for telling me that you said {asked}, it is always nice to talk with you about anything at all."]
        else:
            out += [f"The answer is {answer}.", f"You asked {asked}, and the answer is {answer}.",
                    f"That is a good question: you asked {asked}, and as far as I can tell from everything I know, the answer is {answer}."]
    return [c for c in out if BUCKETS[0][0] <= len(c.split()) <= BUCKETS[-1][1]]


def bucket_of(words: int) -> str:
    return next(f"{lo}-{hi}" for lo, hi in BUCKETS if lo <= words <= hi)


def pick(runs: int, seed: int = 0) -> list[str]:
    """``runs`` clauses, as evenly spread over the length buckets as the corpus allows."""
    by_bucket: dict[str, list[str]] = {}
    for clause in clauses():
        by_bucket.setdefault(bucket_of(len(clause.split())), []).append(clause)
    rng = random.Random(seed)
    for group in by_bucket.values():
        rng.shuffle(group)
    picked: list[str] = []
    while len(picked) < runs and any(by_bucket.values()):
        for group in by_bucket.values():
            if group and len(picked) < runs:
                picked.append(group.pop())
    return picked


async def time_one(synth: Synthesizer, text: str) -> Record:
    start = time.perf_counter()
    first = None
    chunks: list[np.ndarray] = []
    async for chunk in synth.stream(text, trim_lead=True):
        if first is None:
            first = time.perf_counter() - start
        chunks.append(chunk)
    total = time.perf_counter() - start
    audio = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) if len(audio) else 0.0
    return {
        "first_audio_ms": round((first if first is not None else total) * 1000, 1),
        "total_ms": round(total * 1000, 1),
        "chunks": len(chunks),
        "audio_s": round(len(audio) / synth.sample_rate, 3),
        "peak": round(float(np.abs(audio).max()) if len(audio) else 0.0, 4),
        "rms_dbfs": round(20 * np.log10(max(rms, 1e-9)), 2),
    }


async def run(count: int, label: str) -> Path:
    synths: dict[str, Synthesizer] = {"piper": PiperSynthesizer(), "streaming": StreamingPiperSynthesizer()}
    for synth in synths.values():  # ONNX Runtime's first runs allocate and optimise: not part of a clause's cost
        for text in ("Hello there.", "The answer is four, as far as I know."):
            await time_one(synth, text)
    runs: list[Record] = []
    load_before = os.getloadavg()
    for i, text in enumerate(pick(count)):
        order = list(synths) if i % 2 == 0 else list(reversed(synths))
        record: Record = {"text": text, "words": len(text.split()), "bucket": bucket_of(len(text.split())), "first": order[0]}
        for name in order:
            record[name] = await time_one(synths[name], text)
        runs.append(record)
        print(f"{i + 1}/{count} {record['words']:2d} words  first audio piper {record['piper']['first_audio_ms']:6.1f} ms, "
              f"streaming {record['streaming']['first_audio_ms']:6.1f} ms", flush=True)
    result: Record = {
        "benchmark": "tts-first-audio",
        "label": label,
        "date": now_iso(),
        "machine": machine(),
        "load_average_1min": {"before": round(load_before[0], 2), "after": round(os.getloadavg()[0], 2)},
        "streaming": {"left_frames": LEFT_FRAMES, "right_frames": RIGHT_FRAMES, "schedule": list(SCHEDULE), "gain": GAIN},
        "summary": summary(runs),
        "runs": runs,
    }
    return write_results("tts-first-audio", label, result, markdown(result))


def summary(runs: list[Record]) -> Record:
    """Per length bucket (and over all): first audio and total time of each synthesiser, and the level difference."""
    groups = {f"{lo}-{hi}": [r for r in runs if r["bucket"] == f"{lo}-{hi}"] for lo, hi in BUCKETS} | {"all": runs}
    out: Record = {}
    for bucket, group in groups.items():
        if not group:
            continue
        out[bucket] = {
            name: {
                "first_audio_ms": distribution([r[name]["first_audio_ms"] for r in group]),
                "total_ms": distribution([r[name]["total_ms"] for r in group]),
                "chunks_p50": float(np.median([r[name]["chunks"] for r in group])),
            }
            for name in ("piper", "streaming")
        }
        out[bucket]["level_db_streaming_minus_piper"] = distribution(
            [round(r["streaming"]["rms_dbfs"] - r["piper"]["rms_dbfs"], 2) for r in group]
        )
    return out


def markdown(result: Record) -> str:
    s = result["streaming"]
    lines = [
        f"# TTS first audio: Piper against the chunked decoder ({result['label']}, {result['date']})",
        "",
        f"One clause per run through `stream(text, trim_lead=True)`, both synthesisers on the same clause, alternating which "
        f"goes first; {len(result['runs'])} runs on {result['machine']['cpus']} CPUs (1-minute load average "
        f"{result['load_average_1min']['before']} before, {result['load_average_1min']['after']} after: the machine is shared). "
        f"Chunked decoder (`streaming-vits`): "
        f"margins L{s['left_frames']}/R{s['right_frames']} frames, schedule {s['schedule']}, gain {s['gain']}.",
        "",
        "| words | runs | first audio p50/p90 ms, Piper | first audio p50/p90 ms, streaming | total p50/p90 ms, Piper "
        "| total p50/p90 ms, streaming | chunks p50 (streaming) | level difference p50 dB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for bucket, b in result["summary"].items():
        p, st = b["piper"], b["streaming"]
        lines.append(
            f"| {bucket} | {p['first_audio_ms']['n']} | {p['first_audio_ms']['p50']} / {p['first_audio_ms']['p90']} "
            f"| {st['first_audio_ms']['p50']} / {st['first_audio_ms']['p90']} | {p['total_ms']['p50']} / {p['total_ms']['p90']} "
            f"| {st['total_ms']['p50']} / {st['total_ms']['p90']} | {st['chunks_p50']} | {b['level_db_streaming_minus_piper']['p50']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=60, help="clauses, spread over the length buckets (default 60)")
    parser.add_argument("--label", default="cpu2")
    args = parser.parse_args()
    print(asyncio.run(run(args.runs, args.label)))


if __name__ == "__main__":
    main()
