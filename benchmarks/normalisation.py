"""Can it be heard? The effect of the text normalisation before synthesis (:func:`tts.normalize.spoken_form`).

Sentences of the kinds a model writes (money, units, years, titles, plain numbers) are spoken by the embedded Piper
voice as written and as normalised, three times each (Piper's synthesis is random: the voice's noise scales), each
transcribed by Whisper base and scored (:func:`benchmarks.grading.word_error_rate`)
against what a listener should hear: the normalised text.

    .venv/bin/python -m benchmarks.normalisation --label cpu2
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from audio.samples import PIPELINE_RATE, resample
from benchmarks.grading import rate, word_error_rate
from benchmarks.report import machine, now_iso, write_results
from tts.normalize import spoken_form

SENTENCES = (
    "The ticket costs $5.99 today.",
    "A coffee is $3.50 here.",
    "The bike was $1,200.",
    "Water boils at 100°C at sea level.",
    "It is 25°C outside.",
    "Cheetahs run at about 110 km/h.",
    "The speed limit is 30 mph.",
    "A baby weighs about 3.5 kg.",
    "The box is 40 cm wide.",
    "Mount Everest is 8,849 m tall.",
    "The Berlin Wall fell in 1989.",
    "The war ended in 1945.",
    "The first iPhone came out in 2007.",
    "Dr. Smith will see you now.",
    "Mr. Brown lives next door.",
    "There are 7 days in a week.",
    "Two plus two is 4.",
    "About 50% of people agree.",
)
"""Sentences of the kinds that need normalisation, and plain ones (numbers, percent) that espeak-ng reads well."""
REPEATS = 3


def measure() -> dict[str, Any]:
    from piper import PiperVoice

    from realtime.asr import WhisperTranscriber
    from realtime.assets import PIPER_JOE

    voice = PiperVoice.load(PIPER_JOE.path("voice.onnx"), PIPER_JOE.path("voice.onnx.json"))
    asr = WhisperTranscriber()

    def heard(text: str) -> str:
        audio = np.concatenate([c.audio_float_array for c in voice.synthesize(text)]).astype(np.float32)
        return asr.transcribe(resample(audio, voice.config.sample_rate, PIPELINE_RATE)).text

    rows: list[dict[str, Any]] = []
    for written in SENTENCES:
        target = spoken_form(written)
        for _ in range(REPEATS):
            raw, normalised = heard(written), heard(target)
            rows.append({"written": written, "should_hear": target, "as_written": raw, "normalised": normalised,
                         "errors_as_written": word_error_rate(target, raw),
                         "errors_normalised": word_error_rate(target, normalised)})
            print(f"{written!r}: as written {raw!r}, normalised {normalised!r}", flush=True)
    changed = [r for r in rows if r["written"] != r["should_hear"]]
    return {
        "sentences": len(SENTENCES),
        "changed": len({r["written"] for r in changed}),
        "repeats": REPEATS,
        "wer_as_written": rate([r["errors_as_written"] for r in rows]),
        "wer_normalised": rate([r["errors_normalised"] for r in rows]),
        "wer_as_written_changed": rate([r["errors_as_written"] for r in changed]),
        "wer_normalised_changed": rate([r["errors_normalised"] for r in changed]),
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label", default="cpu")
    args = parser.parse_args()
    result = measure()
    record = {"benchmark": "normalisation", "date": now_iso(), "label": args.label, "machine": machine(), **result}
    text = "\n".join([
        f"# Text normalisation before synthesis: can it be heard? ({args.label}, {record['date']})", "",
        f"{result['sentences']} sentences ({result['changed']} changed by the normaliser), each spoken {REPEATS} times by "
        "Piper joe, transcribed by "
        "Whisper base, word error rate against the normalised text (what a listener should hear).", "",
        "| sentences | spoken as written | spoken normalised |", "|---|---|---|",
        f"| all {result['sentences']} | {result['wer_as_written']} | {result['wer_normalised']} |",
        f"| the {result['changed']} changed | {result['wer_as_written_changed']} | {result['wer_normalised_changed']} |",
    ])
    print(text)
    print(write_results("normalisation", args.label, record, text + "\n"))


if __name__ == "__main__":
    main()
