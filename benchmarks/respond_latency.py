"""First-packet delay of the embedded agent through the ``respond`` path, against the naive cascade.

Each spoken question is streamed in real time (20 ms frames) through the full pipeline twice, once
by the agent (listen-while-think, speculation, clause-by-clause speech) and once by the naive cascade
(wait for the end of turn, transcribe, write the whole answer, synthesise it), alternating, on the
same audio and the same loaded models. The delay runs from the true end of speech in the input to
the first reply audio out. The reply's round-trip transcript is checked against the known answers.

    .venv/bin/python -m benchmarks.respond_latency --questions 24 --label cpu2
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import platform
import statistics
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.corpus import VOICES, load_questions, spoken_question
from realtime.audio import PIPELINE_RATE, read_audio
from realtime.latency import STAGES
from realtime.models import Models
from realtime.respond import respond
from realtime.session import SessionConfig

RESULTS = Path(__file__).with_name("results")
MODES = {"agent": SessionConfig, "naive": SessionConfig.naive}


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def summarise(runs: list[dict[str, object]]) -> dict[str, object]:
    delays = [r["first_packet_delay_ms"] for r in runs if r["first_packet_delay_ms"] is not None]
    graded = [r["correct"] for r in runs if r["correct"] is not None]
    stages = {
        stage: percentile([r["stages_ms"][stage] for r in runs if r["stages_ms"].get(stage) is not None], 50)
        for stage in STAGES
    }
    return {
        "turns": len(runs),
        "replied": len(delays),
        "first_packet_delay_ms": {
            "p50": percentile(delays, 50),
            "p90": percentile(delays, 90),
            "p99": percentile(delays, 99),
            "mean": round(statistics.fmean(delays), 1) if delays else None,
            "min": min(delays, default=None),
            "max": max(delays, default=None),
        },
        "stage_median_ms": stages,
        "accuracy": round(sum(graded) / len(graded), 3) if graded else None,
    }


async def run(count: int, label: str, end_of_turn_ms: int | None) -> Path:
    models = Models.load_embedded()
    await models.warm_up()
    questions = load_questions(count)
    runs: dict[str, list[dict[str, object]]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        for index, question in enumerate(questions):
            voice = VOICES[index % len(VOICES)]
            wav = Path(tmp) / f"q{index}.wav"
            true_end = spoken_question(question.text, voice, wav)
            for mode, make_config in MODES.items():
                config = make_config()
                if end_of_turn_ms is not None:
                    config.policy = type(config.policy)(end_of_turn_silence_ms=end_of_turn_ms)
                reply = Path(tmp) / f"r{index}-{mode}.wav"
                turns = (await respond(wav, reply, models, config=config)).turns
                turn = turns[0] if turns else {"first_packet_delay_ms": None, "stages_ms": {}, "reply_text": ""}
                heard = (await models.asr.transcribe_async(read_audio(reply, PIPELINE_RATE))).text if turns else ""
                runs[mode].append(
                    {
                        "question": question.text,
                        "voice": voice,
                        "true_speech_end_s": round(true_end, 3),
                        "turns": len(turns),
                        "first_packet_delay_ms": turn["first_packet_delay_ms"],
                        "stages_ms": turn["stages_ms"],
                        "reply_text": turn["reply_text"],
                        "heard": heard,
                        "correct": question.correct(heard),
                    }
                )
                print(f"[{mode:5}] {question.text!r:60} {turn['first_packet_delay_ms']!s:>7} ms  {heard!r}", flush=True)
    summary = {mode: summarise(r) for mode, r in runs.items()}
    agent, naive = (summary[m]["first_packet_delay_ms"]["p50"] for m in ("agent", "naive"))
    result = {
        "benchmark": "respond_latency",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "label": label,
        "machine": {"cpus": __import__("os").cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "models": "whisper-base int8 (CTranslate2) + Qwen2.5-Coder-0.5B Q4_K_M (llama.cpp) + Piper joe medium",
        "end_of_turn_silence_ms": (end_of_turn_ms or SessionConfig().policy.end_of_turn_silence_ms),
        "summary": summary,
        "p50_ratio_naive_over_agent": round(naive / agent, 2) if agent and naive else None,
        "runs": runs,
    }
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"{dt.date.today().isoformat()}-respond-{label}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return stem.with_suffix(".md")


def markdown(result: dict[str, object]) -> str:
    summary = result["summary"]
    lines = [
        f"# respond path, first-packet delay ({result['label']}, {result['date']})",
        "",
        f"{result['machine']['cpus']} CPUs; {result['models']}; end-of-turn silence "
        f"{result['end_of_turn_silence_ms']} ms; each question streamed in real time, modes alternating.",
        "",
        "| mode | turns | p50 ms | p90 ms | p99 ms | mean ms | accuracy |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode, s in summary.items():
        d = s["first_packet_delay_ms"]
        lines.append(f"| {mode} | {s['replied']}/{s['turns']} | {d['p50']} | {d['p90']} | {d['p99']} | {d['mean']} | {s['accuracy']} |")
    lines += ["", f"Naive p50 / agent p50: **{result['p50_ratio_naive_over_agent']}x**", "", "Median of each stage, ms after the true end of speech:", ""]
    lines.append("| stage | " + " | ".join(summary) + " |")
    lines.append("|---|" + "---|" * len(summary))
    for stage in STAGES:
        lines.append(f"| {stage} | " + " | ".join(str(s["stage_median_ms"][stage]) for s in summary.values()) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=24)
    parser.add_argument("--label", default="cpu")
    parser.add_argument("--end-of-turn-ms", type=int)
    args = parser.parse_args()
    asyncio.run(run(args.questions, args.label, args.end_of_turn_ms))


if __name__ == "__main__":
    main()
