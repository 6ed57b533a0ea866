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
import dataclasses
import tempfile
from collections.abc import Callable
from pathlib import Path

from audio.samples import PIPELINE_RATE, read_audio
from benchmarks.corpus import VOICES, load_questions, spoken_question
from benchmarks.report import EMBEDDED_MODELS, Record, delay_table, machine, now_iso, stage_table, summarise, write_results
from realtime.models import Models
from realtime.respond import respond
from realtime.session import SessionConfig

MODES: dict[str, Callable[[], SessionConfig]] = {"agent": SessionConfig, "naive": SessionConfig.naive}


async def run(count: int, label: str, end_of_turn_ms: int | None) -> Path:
    models = Models.load_embedded()
    await models.warm_up()
    questions = load_questions(count)
    runs: dict[str, list[Record]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        for index, question in enumerate(questions):
            voice = VOICES[index % len(VOICES)]
            wav = Path(tmp) / f"q{index}.wav"
            true_end = spoken_question(question.text, voice, wav)
            for mode, make_config in MODES.items():
                config = make_config()
                if end_of_turn_ms is not None:
                    config = dataclasses.replace(config, policy=type(config.policy)(end_of_turn_silence_ms=end_of_turn_ms))
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
    result: Record = {
        "benchmark": "respond_latency",
        "date": now_iso(),
        "label": label,
        "machine": machine(),
        "models": EMBEDDED_MODELS,
        "end_of_turn_silence_ms": (end_of_turn_ms or SessionConfig().policy.end_of_turn_silence_ms),
        "summary": summary,
        "p50_ratio_naive_over_agent": round(naive / agent, 2) if agent and naive else None,
        "runs": runs,
    }
    text = markdown(result)
    print(text)
    return write_results("respond", label, result, text)


def markdown(result: Record) -> str:
    summary = result["summary"]
    lines = [
        f"# respond path, first-packet delay ({result['label']}, {result['date']})",
        "",
        f"{result['machine']['cpus']} CPUs; {result['models']}; end-of-turn silence "
        f"{result['end_of_turn_silence_ms']} ms; each question streamed in real time, modes alternating.",
        "",
        *delay_table(summary),
        "",
        f"Naive p50 / agent p50: **{result['p50_ratio_naive_over_agent']}x**",
        "",
        "Median of each stage, ms after the true end of speech:",
        "",
        *stage_table(summary),
    ]
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
