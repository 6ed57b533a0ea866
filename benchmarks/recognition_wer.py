"""Did it hear? Word error rate of each recognition profile on real recorded speech with exact transcripts, and on
the harness's spoken questions.

The recordings are Debian's Asterisk prompts (``asterisk-core-sounds-en-g722``: 568 studio phone prompts by one
voice actor, 16 kHz G.722, CC-BY-SA-3.0; transcripts in ``asterisk-core-sounds-en``'s ``core-sounds-en.txt``),
installed by ``scripts/setup.sh`` and never committed. Prompts whose transcript is not plain words (tones in
brackets, keypad symbols such as "*" and "#") are left out. The spoken questions are the corpus's, voiced as the
harness voices them (:func:`benchmarks.corpus.rendition`: synthetic voices, three speeds, a third under noise).

A profile is a Whisper (:data:`realtime.asr.WHISPER_MODELS`) and a beam width, written ``base`` (greedy) or
``base:beam5``, and ``base:beam5:lm`` for the beam's hypotheses rescored by a language model
(:mod:`realtime.rescoring`). Every profile transcribes each clip in turn (so all see the same machine load) and is scored with
:func:`benchmarks.grading.word_error_rate`.

    .venv/bin/python -m benchmarks.recognition_wer --clips 200 --profiles base,base:beam5,base:beam5:lm,tiny.en --label cpu2
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from audio.samples import read_audio
from benchmarks.corpus import load_questions, render, rendition
from benchmarks.grading import rate, word_error_rate
from benchmarks.report import distribution, machine, now_iso, write_results
from realtime.asr import WHISPER_MODELS, WhisperTranscriber
from realtime.rescoring import NBestRescorer

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


def asterisk(limit: int | None) -> tuple[list[str], list[np.ndarray]]:
    """The Asterisk prompts' transcripts and recordings (16 kHz float32)."""
    chosen = prompts(limit)
    return [p.text for p in chosen], [read_audio(p.path) for p in chosen]


def questions(limit: int | None) -> tuple[list[str], list[np.ndarray]]:
    """The corpus's questions and their harness renditions (16 kHz float32, with the renditions' noise)."""
    chosen = load_questions(limit)
    return [q.text for q in chosen], [render(q, rendition(i), seed=i).audio for i, q in enumerate(chosen)]


SETS = {"asterisk": asterisk, "questions": questions}
"""The clip sets: name -> loader of (reference texts, clips)."""


def transcriber(profile: str, rescorer: Callable[[], NBestRescorer]) -> WhisperTranscriber:
    """The transcriber of ``profile`` (``MODEL``, ``MODEL:beamN`` or ``MODEL:beamN:lm``, the last rescored by
    ``rescorer()``). Raises ``ValueError`` for another spelling."""
    model, *options = profile.split(":")
    beam = options.pop(0) if options and options[0].startswith("beam") else "beam1"
    rescored = options == ["lm"]
    if not (beam[4:].isdigit() and int(beam[4:]) >= (2 if rescored else 1)) or options not in ([], ["lm"]):
        raise ValueError(f"bad profile {profile!r}: write MODEL, MODEL:beamN or MODEL:beamN:lm (N >= 2)")
    return WhisperTranscriber(model=model, beam_size=int(beam[4:]), rescorer=rescorer() if rescored else None)


def measure(profiles: list[str], texts: list[str], audio: list[np.ndarray]) -> dict[str, Any]:
    """Every profile on the same clips, clip by clip: the corpus word error rate, the share transcribed word for word,
    the time per clip (ms; two threads), the runaway transcripts (more than twice the reference's words plus three: a
    decoding loop) and the worst clips."""
    lm = cache(NBestRescorer)  # one language model for every rescored profile, loaded only if one is
    asrs = {profile: transcriber(profile, lm) for profile in profiles}
    for asr in asrs.values():
        asr.transcribe(audio[0])  # warm
    rows: dict[str, list[dict[str, Any]]] = {profile: [] for profile in profiles}
    for reference, samples in zip(texts, audio, strict=True):
        for profile, asr in asrs.items():
            started = time.monotonic()
            heard = asr.transcribe(samples).text
            ms = round((time.monotonic() - started) * 1000)
            rows[profile].append({"reference": reference, "heard": heard, "errors": word_error_rate(reference, heard), "ms": ms})
    results = {}
    for profile, group in rows.items():
        errors = [r["errors"] for r in group]
        worst = sorted(group, key=lambda r: r["errors"][0] / max(r["errors"][1], 1), reverse=True)[:8]
        results[profile] = {
            "wer": rate(errors),
            "exact": round(sum(e == 0 for e, _ in errors) / len(errors), 3),
            "runaway": sum(len(r["heard"].split()) > 2 * len(r["reference"].split()) + 3 for r in group),
            "ms_per_clip": distribution([float(r["ms"]) for r in group]),
            "worst": [{k: r[k] for k in ("reference", "heard", "errors")} for r in worst],
        }
        print(f"[{profile}] WER {results[profile]['wer']}, exact {results[profile]['exact']}", flush=True)
    return {"clips": len(texts), "audio_s": round(sum(len(a) for a in audio) / 16_000, 1), "profiles": results}


def table(result: dict[str, Any]) -> list[str]:
    lines = ["| recognition | WER | clips heard word for word | runaway transcripts | ms per clip p50 / p90 |",
             "|---|---|---|---|---|"]
    for profile, r in result["profiles"].items():
        lines.append(f"| Whisper {profile} | {r['wer']:.3f} | {r['exact']:.0%} | {r['runaway']} | {r['ms_per_clip']['p50']} / "
                     f"{r['ms_per_clip']['p90']} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", choices=sorted(SETS), default="asterisk", help="the clips: real recordings or the corpus's questions")
    parser.add_argument("--clips", type=int, help="this many clips, spread over the set (default: all)")
    parser.add_argument("--profiles", default=",".join(WHISPER_MODELS), help="comma-separated MODEL or MODEL:beamN")
    parser.add_argument("--label", default="cpu")
    args = parser.parse_args()
    profiles = [p.strip() for p in args.profiles.split(",") if p.strip()]
    if bad := [p for p in profiles if p.partition(":")[0] not in WHISPER_MODELS]:
        parser.error(f"unknown models in {bad}: choose from {', '.join(WHISPER_MODELS)}")
    texts, audio = SETS[args.set](args.clips)
    result = measure(profiles, texts, audio)
    what = (f"{result['clips']} Asterisk prompts ({result['audio_s']} s, one voice actor, studio, 16 kHz G.722), plain-word "
            "transcripts" if args.set == "asterisk" else
            f"{result['clips']} corpus questions ({result['audio_s']} s) voiced as the harness voices them (synthetic voices, "
            "three speeds, a third under noise)")
    record = {"benchmark": "recognition_wer", "set": args.set, "date": now_iso(), "label": args.label, "machine": machine(),
              "load": " ".join(f"{x:.2f}" for x in os.getloadavg()), **result}
    text = "\n".join([f"# Recognition: {args.set} ({args.label}, {record['date']})", "",
                      f"{what}; texts normalised alike (case, punctuation, numerals) before scoring; every profile "
                      f"transcribes each clip in turn (load average {record['load']} at the end).", "", *table(result)])
    print(text)
    print(write_results(f"recognition-{args.set}", args.label, record, text + "\n"))


if __name__ == "__main__":
    main()
