"""Did it hear? Word error rate of each recognition profile on real recorded speech with exact transcripts.

The recordings are Debian's Asterisk prompts (``asterisk-core-sounds-en-g722``: 568 studio phone prompts by one
voice actor, 16 kHz G.722, CC-BY-SA-3.0; transcripts in ``asterisk-core-sounds-en``'s ``core-sounds-en.txt``),
installed by ``scripts/setup.sh`` and never committed. Prompts whose transcript is not plain words (tones in
brackets, keypad symbols such as "*" and "#") are left out. Each prompt is transcribed whole by each Whisper
(:data:`realtime.asr.WHISPER_MODELS`) and scored with :func:`benchmarks.grading.word_error_rate`.

    .venv/bin/python -m benchmarks.recognition_wer --clips 200 --label cpu2
"""

from __future__ import annotations

import argparse
import gzip
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audio.samples import read_audio
from benchmarks.grading import rate, word_error_rate
from benchmarks.report import distribution, machine, now_iso, write_results
from realtime.asr import WHISPER_MODELS, WhisperTranscriber

SOUNDS = Path("/usr/share/asterisk/sounds/en")
TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
_PLAIN = re.compile(r"^[A-Za-z0-9 ,.?!'-]+$")


class RecordingsMissing(RuntimeError):
    """The Asterisk prompt packages are not installed (``scripts/setup.sh`` installs them)."""


@dataclass(frozen=True)
class Prompt:
    path: Path
    text: str


def prompts(limit: int | None = None) -> list[Prompt]:
    """The prompts with a plain-word transcript and a G.722 recording, in transcript order, spread evenly over the
    list when ``limit`` is given. Raises :class:`RecordingsMissing` without the packages."""
    if not TRANSCRIPTS.is_file() or not SOUNDS.is_dir():
        raise RecordingsMissing("install asterisk-core-sounds-en and asterisk-core-sounds-en-g722 (scripts/setup.sh)")
    found = []
    with gzip.open(TRANSCRIPTS, "rt", encoding="utf-8", errors="replace") as lines:
        listed = list(lines)
    for line in listed:
        name, sep, text = line.partition(":")
        path = SOUNDS / f"{name.strip()}.g722"
        if sep and not line.startswith(";") and _PLAIN.match(text.strip()) and path.is_file():
            found.append(Prompt(path, text.strip()))
    if limit is None or limit >= len(found):
        return found
    return [found[int(i * len(found) / limit)] for i in range(limit)]


def measure(models: list[str], limit: int | None) -> dict[str, Any]:
    """Every model on the same prompts: the corpus word error rate, the share transcribed word for word, the time per
    prompt (ms; two threads), the runaway transcripts (more than twice the reference's words plus three: a decoding
loop) and the worst prompts."""
    chosen = prompts(limit)
    audio = [read_audio(p.path) for p in chosen]
    results = {}
    for model in models:
        asr = WhisperTranscriber(model=model)
        asr.transcribe(audio[0])  # warm
        errors: list[tuple[int, int]] = []
        times: list[int] = []
        rows: list[dict[str, object]] = []
        for prompt, samples in zip(chosen, audio, strict=True):
            started = time.monotonic()
            text = asr.transcribe(samples).text
            times.append(round((time.monotonic() - started) * 1000))
            errors.append(word_error_rate(prompt.text, text))
            rows.append({"prompt": prompt.path.stem, "reference": prompt.text, "heard": text, "errors": errors[-1]})
        order = sorted(range(len(rows)), key=lambda i: errors[i][0] / max(errors[i][1], 1), reverse=True)
        worst = [rows[i] for i in order[:8]]
        results[model] = {
            "wer": rate(errors),
            "exact": round(sum(e == 0 for e, _ in errors) / len(errors), 3),
            "runaway": sum(len(str(r["heard"]).split()) > 2 * len(prompt.text.split()) + 3
                           for r, prompt in zip(rows, chosen, strict=True)),
            "ms_per_prompt": distribution([float(t) for t in times]),
            "worst": worst,
        }
        print(f"[{model}] WER {results[model]['wer']}, exact {results[model]['exact']}", flush=True)
    return {"prompts": len(chosen), "audio_s": round(sum(len(a) for a in audio) / 16_000, 1), "models": results}


def table(result: dict[str, Any]) -> list[str]:
    lines = ["| recognition | WER | prompts heard word for word | runaway transcripts | ms per prompt p50 / p90 |",
             "|---|---|---|---|---|"]
    for model, r in result["models"].items():
        lines.append(f"| Whisper {model} | {r['wer']:.3f} | {r['exact']:.0%} | {r['runaway']} | {r['ms_per_prompt']['p50']} / "
                     f"{r['ms_per_prompt']['p90']} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, help="this many prompts, spread over the list (default: all)")
    parser.add_argument("--models", default=",".join(WHISPER_MODELS))
    parser.add_argument("--label", default="cpu")
    args = parser.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if bad := [m for m in models if m not in WHISPER_MODELS]:
        parser.error(f"unknown models: {bad}")
    result = measure(models, args.clips)
    record = {"benchmark": "recognition_wer", "date": now_iso(), "label": args.label, "machine": machine(), **result}
    text = "\n".join([f"# Recognition on real recorded speech ({args.label}, {record['date']})", "",
                      f"{result['prompts']} Asterisk prompts ({result['audio_s']} s, one voice actor, studio, 16 kHz "
                      "G.722), plain-word transcripts; texts normalised alike (case, punctuation, numerals) before "
                      "scoring.", "", *table(result)])
    print(text)
    print(write_results("recognition", args.label, record, text + "\n"))


if __name__ == "__main__":
    main()
