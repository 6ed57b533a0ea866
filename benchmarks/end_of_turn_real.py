"""End of turn on real recorded speech: a real noise floor, real pauses, real turn switches (no synthetic voice).

Recordings (fetched on demand into the model cache, sha256-checked, never committed):

- ``pyannote``: the ``pyannote-audio==4.0.7`` wheel's ``pyannote/audio/sample/``: a 30 s real two-speaker phone
  conversation (16 kHz, telephone band) with its speaker turns (``sample.rttm``); ``pip download --no-deps``, only
  that folder unzipped (no torch).
- ``vk5qi``, ``ve9qrp``: Debian ``codec2-examples`` (``/usr/share/codec2/wav``): real speech with real background
  noise, 8 kHz, no transcript (``apt-get install codec2-examples``); skipped when the package is absent.

Each recording (resampled to 16 kHz by the project's resampler, then 2 s of silence) is streamed in real time to
``realtime serve`` once per turn-detection setting (:data:`benchmarks.cutoffs.SETTINGS`), replies on, and every
``speech_started`` / ``speech_stopped`` and reply is recorded. For the pyannote conversation the true turns come
from the rttm (:func:`true_turns`: a speaker's segments joined across pauses under 1 s, a backchannel inside the
other's speech dropped); a true end is **detected** when a ``speech_stopped`` places the end of speech within
-0.3/+0.6 s of it, its delay runs from sending the true end to receiving that ``speech_stopped``, and a
``speech_stopped`` placed inside a speaker's turn (not at its end) is a **false end**. For the codec2 files: the
counts of ``speech_started`` / ``speech_stopped`` and the share of the file the server judged speech.

    .venv/bin/python -m benchmarks.end_of_turn_real --fetch            # set-up: fetch and check, nothing else
    .venv/bin/python -m benchmarks.end_of_turn_real --label cpu2       # measure (about 3 min per setting)
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audio.samples import PIPELINE_RATE, read_audio
from benchmarks.client import AGENT, Exchange, Stamped, exchange, running
from benchmarks.cutoffs import SETTINGS, unsupported
from benchmarks.report import EMBEDDED_MODELS, distribution, machine, now_iso, write_results
from realtime.assets import ModelAsset, ModelFile, WheelPart, fetch_wheels

_PYANNOTE_WHEEL = (
    "pyannote-audio==4.0.7", "pyannote_audio-4.0.7-py3-none-any.whl",
    "852ea15c4d85bc34773e618267603ffca6a521669a74d33742692cc67fc700d6",
)
PYANNOTE_SAMPLE = ModelAsset(
    name="pyannote-sample",
    description="a real two-speaker phone conversation and its speaker turns, from the pyannote-audio 4.0.7 wheel",
    files=tuple(
        ModelFile(name, digest, (WheelPart(*_PYANNOTE_WHEEL, f"pyannote/audio/sample/{name}"),))
        for name, digest in (
            ("sample.wav", "c319b4abca767b124e41432d364fd7df006cb26bb79d09326c487d606a134e6e"),
            ("sample.rttm", "d78fe62c69d8e6dcbb42c26adfce83faccb374c5a1e6d987fe37f85f1c173c87"),
        )
    ),
)
CODEC2_DIR = Path("/usr/share/codec2/wav")
CODEC2_FILES = {
    "vk5qi.wav": "4ce2a31b4165a4becfa0bfa50cb256f6a80e54dbfb51c3bfb3e97e365056888b",
    "ve9qrp.wav": "d242333c60d551e010965e591f65ed77372207f36852b98adceb713975c590a0",
}
RECORDINGS = ("pyannote", "vk5qi", "ve9qrp")
TAIL_S = 2.0
MERGE_S = 1.0
"""A speaker's segments closer than this are one turn (a pause inside it)."""
EARLY_S, LATE_S = 0.3, 0.6
"""A ``speech_stopped`` placed this much before / after a true end detects it."""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pyannote_sample() -> Path:
    """The folder with ``sample.wav`` and ``sample.rttm``: from the model cache, or taken from the wheel (downloaded
    with pip, sha256-checked) like the models' own wheel files (:func:`realtime.assets.fetch_wheels`)."""
    fetch_wheels((PYANNOTE_SAMPLE,))
    return PYANNOTE_SAMPLE.path()


@dataclass(frozen=True)
class TrueTurn:
    start_s: float
    end_s: float
    speaker: str
    gap_after_s: float | None
    """From this turn's end to the next turn's start (negative: they overlap); None for the last."""


def read_rttm(text: str) -> list[tuple[float, float, str]]:
    """(start, end, speaker) of each ``SPEAKER`` line."""
    rows = [line.split() for line in text.splitlines() if line.startswith("SPEAKER")]
    return [(float(r[3]), float(r[3]) + float(r[4]), r[7]) for r in rows]


def true_turns(segments: list[tuple[float, float, str]], merge_s: float = MERGE_S) -> list[TrueTurn]:
    """Turns from speaker segments: a segment inside another speaker's is a backchannel (dropped), a speaker's
    consecutive segments less than ``merge_s`` apart are one turn."""
    kept = [s for s in segments if not any(o[2] != s[2] and o[0] <= s[0] and s[1] <= o[1] for o in segments)]
    merged: list[list[Any]] = []
    for start, end, speaker in sorted(kept):
        if merged and merged[-1][2] == speaker and start - merged[-1][1] < merge_s:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end, speaker])
    return [TrueTurn(s, e, who, round(merged[i + 1][0] - e, 3) if i + 1 < len(merged) else None)
            for i, (s, e, who) in enumerate(merged)]


def stops(timeline: list[Stamped], start: float) -> list[tuple[float, float]]:
    """(where the server put the end of speech, when its ``speech_stopped`` arrived), seconds from the first frame."""
    return [(info["audio_end_ms"] / 1000, t - start) for t, kind, info in timeline
            if kind == "input_audio_buffer.speech_stopped" and "audio_end_ms" in info]


def score(turns: list[TrueTurn], stopped: list[tuple[float, float]]) -> dict[str, Any]:
    """True ends detected (and the delay to each), false ends inside a turn, other ends (in silence or noise)."""
    used: set[int] = set()
    ends: list[dict[str, Any]] = []
    for turn in turns:
        match = next((i for i, (placed, _) in enumerate(stopped)
                      if i not in used and turn.end_s - EARLY_S <= placed <= turn.end_s + LATE_S), None)
        if match is not None:
            used.add(match)
        placed, arrived = stopped[match] if match is not None else (None, None)
        ends.append({"end_s": turn.end_s, "speaker": turn.speaker, "gap_after_s": turn.gap_after_s,
                     "detected": match is not None,
                     "delay_ms": None if arrived is None else round((arrived - turn.end_s) * 1000, 1),
                     "placed_ms": None if placed is None else round((placed - turn.end_s) * 1000, 1)})
    rest = [placed for i, (placed, _) in enumerate(stopped) if i not in used]
    inside = [p for p in rest if any(t.start_s < p < t.end_s - EARLY_S for t in turns)]
    return {
        "true_ends": len(ends),
        "detected": sum(e["detected"] for e in ends),
        "delay_ms": distribution([float(e["delay_ms"]) for e in ends if e["delay_ms"] is not None]),
        "false_ends": len(inside),
        "false_end_at_s": [round(p, 2) for p in inside],
        "other_ends": len(rest) - len(inside),
        "ends": ends,
    }


def activity(timeline: list[Stamped], duration_s: float) -> dict[str, Any]:
    """``speech_started`` / ``speech_stopped`` counts and the share of the recording between them (by the times the
    server gave them)."""
    started = [i["audio_start_ms"] / 1000 for _, k, i in timeline if k == "input_audio_buffer.speech_started" and "audio_start_ms" in i]
    ended = [i["audio_end_ms"] / 1000 for _, k, i in timeline if k == "input_audio_buffer.speech_stopped" and "audio_end_ms" in i]
    speech, open_at = 0.0, None
    for at, is_start in sorted([(s, True) for s in started] + [(e, False) for e in ended]):
        if is_start and open_at is None:
            open_at = at
        elif not is_start and open_at is not None:
            speech, open_at = speech + min(at, duration_s) - min(open_at, duration_s), None
    if open_at is not None:
        speech += max(0.0, duration_s - open_at)
    return {"speech_started": len(started), "speech_stopped": len(ended),
            "speech_share": round(speech / duration_s, 3) if duration_s else None}


def replies(seen: Exchange) -> dict[str, int]:
    done = [i.get("status") for _, k, i in seen.timeline if k == "response.done"]
    return {"responses": sum(k == "response.created" for _, k, _ in seen.timeline),
            "voiced": sum(k == "response.output_audio.delta" for _, k, _ in seen.timeline),
            "cancelled": sum(s == "cancelled" for s in done)}


@dataclass(frozen=True)
class Recording:
    name: str
    audio: np.ndarray
    """16 kHz float32."""
    turns: list[TrueTurn] | None
    """The true turns, where a transcript gives them."""

    @property
    def duration_s(self) -> float:
        return len(self.audio) / PIPELINE_RATE


def recordings(names: tuple[str, ...] = RECORDINGS) -> tuple[list[Recording], dict[str, str]]:
    """The recordings at hand, and why each missing one is missing."""
    found, missing = [], {}
    for name in names:
        if name == "pyannote":
            try:
                folder = pyannote_sample()
            except (OSError, RuntimeError, subprocess.CalledProcessError, ValueError) as exc:  # ModelIntegrityError too
                missing[name] = f"could not fetch {_PYANNOTE_WHEEL[0]}: {exc}"
                continue
            turns = true_turns(read_rttm((folder / "sample.rttm").read_text()))
            found.append(Recording(name, read_audio(folder / "sample.wav", PIPELINE_RATE), turns))
            continue
        path = CODEC2_DIR / f"{name}.wav"
        if not path.is_file():
            missing[name] = f"{path} absent: apt-get install codec2-examples"
        elif sha256(path) != CODEC2_FILES[path.name]:
            missing[name] = f"{path}: not the file pinned"
        else:
            found.append(Recording(name, read_audio(path, PIPELINE_RATE), None))
    return found, missing


async def one(url: str, recording: Recording, asked: dict[str, Any]) -> dict[str, Any]:
    """Stream the recording with its tail of silence and read the events against the truth."""
    audio = np.concatenate([recording.audio, np.zeros(int(TAIL_S * PIPELINE_RATE), np.float32)])
    last = recording.turns[-1].end_s if recording.turns else recording.duration_s
    seen = await exchange(url, audio, last, turn_detection=asked, finish="listen", timeout_s=len(audio) / PIPELINE_RATE + 0.5)
    start = seen.speech_end - last
    record: dict[str, Any] = {**activity(seen.timeline, recording.duration_s), **replies(seen)}
    if recording.turns is not None:
        record.update(score(recording.turns, stops(seen.timeline, start)))
    return record


async def measure(url: str, settings: dict[str, dict[str, Any]] | None = None,
                  names: tuple[str, ...] = RECORDINGS) -> dict[str, Any]:
    """Every recording at hand through every setting the server takes (a setting refused is recorded, not run)."""
    found, missing = recordings(names)
    results: dict[str, Any] = {}
    for name, asked in (settings or SETTINGS).items():
        probe = await exchange(url, np.zeros(PIPELINE_RATE // 10, np.float32), 0.0, turn_detection=asked, finish="listen",
                               timeout_s=0.3)
        if (reason := unsupported(probe, asked)) is not None:
            results[name] = {"turn_detection": asked, "status": "unsupported", "reason": reason}
            print(f"[real speech {name:19}] unsupported: {reason}", flush=True)
            continue
        runs = {}
        for recording in found:
            runs[recording.name] = await one(url, recording, asked)
            r = runs[recording.name]
            print(f"[real speech {name:19}] {recording.name:8} started {r['speech_started']} stopped {r['speech_stopped']} "
                  f"speech {r['speech_share']}" + (f", ends detected {r['detected']}/{r['true_ends']}, false ends "
                                                    f"{r['false_ends']}" if "true_ends" in r else ""), flush=True)
        results[name] = {"turn_detection": asked, "status": "measured", "reason": None, "recordings": runs}
    return {"recordings": {r.name: round(r.duration_s, 2) for r in found}, "missing": missing, "settings": results}


def tables(real: dict[str, Any]) -> list[str]:
    """Markdown: per setting and recording the counts; then, for the conversation, each true end's delay."""
    lines = ["| turn detection | recording | speech_started | speech_stopped | judged speech | true ends detected "
             "| delay p50 / max ms | false ends (in a turn) | other ends | replies (voiced, cancelled) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    conversation: dict[str, list[dict[str, Any]]] = {}
    for name, s in real["settings"].items():
        if s["status"] != "measured":
            lines.append(f"| {name} | unsupported: {s['reason']} | | | | | | | | |")
            continue
        for recording, r in s["recordings"].items():
            ends = [f"{r['detected']}/{r['true_ends']}", f"{r['delay_ms']['p50']} / {r['delay_ms']['max']}",
                    str(r["false_ends"]), str(r["other_ends"])] if "true_ends" in r else ["", "", "", ""]
            lines.append(f"| {name} | {recording} | {r['speech_started']} | {r['speech_stopped']} | {r['speech_share']:.0%} | "
                         + " | ".join(ends) + f" | {r['responses']} ({r['voiced']}, {r['cancelled']}) |")
            if "ends" in r:
                conversation[name] = r["ends"]
    if real.get("missing"):
        lines += ["", "Missing: " + "; ".join(f"{k}: {v}" for k, v in real["missing"].items())]
    if conversation:
        names = list(conversation)
        lines += ["", "pyannote conversation, each true turn end: ms from the true end to `speech_stopped` (- not detected)",
                  "", "| end s | speaker | gap to next speech s | " + " | ".join(names) + " |",
                  "|---|---|---|" + "---|" * len(names)]
        for i, end in enumerate(conversation[names[0]]):
            cells = [str(conversation[n][i]["delay_ms"]) if conversation[n][i]["detected"] else "-" for n in names]
            lines.append(f"| {end['end_s']:.2f} | {end['speaker']} | {end['gap_after_s']} | " + " | ".join(cells) + " |")
    return lines


NOTE = ("Real recordings streamed in real time with 2 s of silence after them, replies on. pyannote: a 30 s two-speaker "
        f"phone conversation, true turns from its rttm (segments under {MERGE_S:g} s apart joined, backchannels dropped); "
        f"detected: a `speech_stopped` placed within -{EARLY_S}/+{LATE_S} s of a true end; false end: one placed inside a "
        "turn. codec2 (vk5qi 13.5 s, ve9qrp 112 s): real speech over real background noise, no transcript. Judged "
        "speech: the share of the file between the server's speech_started and speech_stopped.")


async def _main(settings: dict[str, dict[str, Any]], names: tuple[str, ...], label: str) -> None:
    with running(AGENT) as (server,):
        real = await measure(server.url, settings, names)
    record = {"benchmark": "end_of_turn_real", "date": now_iso(), "label": label, "machine": machine(),
              "models": EMBEDDED_MODELS, "end_of_turn_real": real}
    text = "\n".join([f"# End of turn on real recorded speech ({label}, {record['date']})", "",
                      f"{machine()['cpus']} CPUs; {EMBEDDED_MODELS}.", "", *tables(real), "", NOTE])
    print(text)
    print(write_results("end-of-turn-real", label, record, text + "\n"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fetch", action="store_true", help="fetch and check the recordings, then stop")
    parser.add_argument("--settings", default=",".join(SETTINGS), help=f"comma-separated, from: {', '.join(SETTINGS)}")
    parser.add_argument("--recordings", default=",".join(RECORDINGS), help=f"comma-separated, from: {', '.join(RECORDINGS)}")
    parser.add_argument("--label", default="cpu")
    args = parser.parse_args()
    names = tuple(n.strip() for n in args.recordings.split(",") if n.strip())
    chosen = [n.strip() for n in args.settings.split(",") if n.strip()]
    if unknown := [n for n in chosen if n not in SETTINGS] + [n for n in names if n not in RECORDINGS]:
        parser.error(f"unknown settings or recordings: {unknown}")
    if args.fetch:
        found, missing = recordings(names)
        for recording in found:
            print(f"{recording.name}: {recording.duration_s:.1f} s" + (f", {len(recording.turns)} true turns" if recording.turns else ""))
        for name, why in missing.items():
            print(f"{name}: MISSING: {why}")
        raise SystemExit(1 if missing else 0)
    asyncio.run(_main({n: SETTINGS[n] for n in chosen}, names, args.label))


if __name__ == "__main__":
    main()
