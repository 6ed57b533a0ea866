"""First-packet delay through the websocket endpoint, measured by a client.

``realtime serve`` runs in its own process on loopback; for each spoken question a client
(:mod:`benchmarks.client`) connects, streams the padded question in real time (20 ms
``input_audio_buffer.append`` events) and keeps streaming silence until ``response.done``. The delay
runs from the moment the frame holding the true last speech sample was sent to the arrival of the
first ``response.output_audio.delta``. Replies are transcribed afterwards (with the server stopped)
and checked against the known answers.

    .venv/bin/python -m benchmarks.ws_latency --questions 24 --label cpu2

``realtime bench`` (:mod:`benchmarks.harness`) measures this and much more in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from audio.samples import PIPELINE_RATE, read_audio
from benchmarks.client import AGENT, exchange, running
from benchmarks.corpus import VOICES, load_questions, spoken_question
from benchmarks.report import EMBEDDED_MODELS, Record, delay_table, machine, now_iso, stage_table, summarise, write_results
from realtime.asr import WhisperTranscriber
from realtime.respond import speech_segments


async def run(count: int, label: str) -> Path:
    questions = load_questions(count)
    runs: list[Record] = []
    with running(AGENT) as (server,), tempfile.TemporaryDirectory() as tmp:
        for index, question in enumerate(questions):
            voice = VOICES[index % len(VOICES)]
            wav = Path(tmp) / f"q{index}.wav"
            spoken_question(question.text, voice, wav)
            audio = read_audio(wav, PIPELINE_RATE)
            true_end = speech_segments(audio)[-1][1] / PIPELINE_RATE  # as `realtime respond` finds it
            seen = await exchange(server.url, audio, true_end)
            runs.append({"question": question, "voice": voice, "true_speech_end_s": round(true_end, 3), **seen.record(),
                         "reply": seen.reply_audio()})
            print(f"{question.text!r:60} {seen.first_packet_delay_ms!s:>7} ms", flush=True)
    asr = WhisperTranscriber()
    for entry in runs:
        reply = entry.pop("reply")
        question = entry.pop("question")
        entry["heard"] = asr.transcribe(reply).text if len(reply) else ""
        entry["question"], entry["correct"] = question.text, question.correct(entry["heard"])
    summary = {"websocket": summarise(runs)}
    result: Record = {
        "benchmark": "ws_latency",
        "date": now_iso(),
        "label": label,
        "machine": machine(),
        "models": EMBEDDED_MODELS,
        "summary": summary,
        "runs": runs,
    }
    text = "\n".join([
        f"# websocket endpoint, first-packet delay measured by the client ({label}, {result['date']})",
        "",
        f"{result['machine']['cpus']} CPUs; {EMBEDDED_MODELS}; `realtime serve` in its own process, defaults; "
        "each question streamed in real time as 20 ms PCM16 24 kHz appends; delay from sending the frame with the "
        "true last speech sample to receiving the first `response.output_audio.delta`.",
        "",
        *delay_table(summary),
        "",
        "Median of each stage as the server recorded it (ms after its VAD's end of speech):",
        "",
        *stage_table(summary),
    ]) + "\n"
    print(text)
    return write_results("websocket", label, result, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=24)
    parser.add_argument("--label", default="cpu")
    args = parser.parse_args()
    asyncio.run(run(args.questions, args.label))


if __name__ == "__main__":
    main()
