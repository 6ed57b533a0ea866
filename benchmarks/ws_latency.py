"""First-packet delay through the websocket endpoint, measured by a client.

``realtime serve`` runs in its own process on loopback; for each spoken question a client connects,
streams the padded question in real time (20 ms ``input_audio_buffer.append`` events) and keeps
streaming silence until ``response.done``. The delay runs from the moment the frame holding the true last
speech sample was sent to the arrival of the first ``response.output_audio.delta``. Replies are
transcribed afterwards (with the server stopped) and checked against the known answers.

    .venv/bin/python -m benchmarks.ws_latency --questions 24 --label cpu2
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from websockets.asyncio.client import connect

from benchmarks.corpus import VOICES, load_questions, spoken_question
from benchmarks.report import EMBEDDED_MODELS, delay_table, machine, now_iso, stage_table, summarise, write_results
from realtime.asr import WhisperTranscriber
from realtime.audio import PIPELINE_RATE, read_audio, resample, to_pcm16
from realtime.respond import speech_segments

WIRE_RATE = 24_000
FRAME = WIRE_RATE // 50


def start_server() -> tuple[subprocess.Popen[str], str]:
    """``realtime serve`` on a free loopback port; returns the process and its websocket URL."""
    server = subprocess.Popen(
        [sys.executable, "-m", "realtime.cli", "serve", "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    assert server.stdout is not None
    for line in server.stdout:
        if line.startswith("listening on "):
            return server, line.split()[-1]
    raise RuntimeError("realtime serve exited before listening")


async def ask(url: str, audio16k: np.ndarray, true_end_s: float, timeout_s: float = 60.0) -> dict[str, object]:
    """Stream one question; return the client-side delay, the server's stage record and the reply audio."""
    wire = resample(audio16k, PIPELINE_RATE, WIRE_RATE)
    first_audio: float | None = None
    reply, latency, status = [], {}, None
    async with connect(url, max_size=None) as ws:
        await ws.recv()  # session.created
        start = time.monotonic()
        speech_sent = start + true_end_s  # the frame holding the last speech sample leaves at this time

        async def send() -> None:
            index = 0
            while True:
                await asyncio.sleep(max(0.0, start + index * 0.02 - time.monotonic()))
                chunk = wire[index * FRAME : (index + 1) * FRAME]
                chunk = chunk if len(chunk) else np.zeros(FRAME, np.float32)
                await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(to_pcm16(chunk)).decode()}))
                index += 1

        sender = asyncio.create_task(send())
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    event = json.loads(await ws.recv())
                    if event["type"] == "response.output_audio.delta":
                        first_audio = first_audio or time.monotonic()
                        reply.append(base64.b64decode(event["delta"]))
                    elif event["type"] == "response.done":
                        status = event["response"]["status"]
                    elif event["type"] == "response.latency":
                        latency = event["latency"]
                        break
        finally:
            sender.cancel()
    samples = np.frombuffer(b"".join(reply), "<i2").astype(np.float32) / 32768.0
    return {
        "first_packet_delay_ms": round((first_audio - speech_sent) * 1000, 1) if first_audio else None,
        "stages_ms": latency.get("stages_ms", {}),
        "server_first_packet_delay_ms": latency.get("first_packet_delay_ms"),
        "status": status,
        "reply": samples,
    }


async def run(count: int, label: str) -> Path:
    questions = load_questions(count)
    server, url = start_server()
    runs = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for index, question in enumerate(questions):
                voice = VOICES[index % len(VOICES)]
                wav = Path(tmp) / f"q{index}.wav"
                spoken_question(question.text, voice, wav)
                audio = read_audio(wav, PIPELINE_RATE)
                true_end = speech_segments(audio)[-1][1] / PIPELINE_RATE  # as `realtime respond` finds it
                outcome = await ask(url, audio, true_end)
                runs.append({"question": question, "voice": voice, "true_speech_end_s": round(true_end, 3), **outcome})
                print(f"{question.text!r:60} {outcome['first_packet_delay_ms']!s:>7} ms", flush=True)
    finally:
        server.terminate()
        server.wait(30)
    asr = WhisperTranscriber()
    for entry in runs:
        reply = entry.pop("reply")
        question = entry.pop("question")
        entry["heard"] = asr.transcribe(resample(reply, WIRE_RATE, PIPELINE_RATE)).text if len(reply) else ""
        entry["question"], entry["correct"] = question.text, question.correct(entry["heard"])
    summary = {"websocket": summarise(runs)}
    result = {
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
