"""The spoken-question corpus: texts with known answers, voiced at run time by Debian voices that are
not the agent's (flite and espeak-ng variants), padded with silence."""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realtime.audio import PIPELINE_RATE, read_audio, write_wav

QUESTIONS = Path(__file__).with_name("questions.jsonl")
VOICES = ("flite:kal", "flite:slt", "flite:rms", "flite:awb", "espeak:en-us", "espeak:en-gb", "espeak:en-us+f3", "espeak:en-gb-x-rp")


@dataclass(frozen=True)
class Question:
    text: str
    answers: tuple[str, ...]

    def correct(self, reply: str) -> bool | None:
        """Whether ``reply`` contains a known answer (None for open conversational turns)."""
        if not self.answers:
            return None
        words = " " + " ".join(reply.lower().replace("-", " ").split()) + " "
        cleaned = "".join(c if c.isalnum() or c == " " else " " for c in words)
        return any(f" {a.replace('-', ' ')} " in cleaned or f" {a} " in words for a in self.answers)


def load_questions(limit: int | None = None) -> list[Question]:
    lines = [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line.strip()]
    questions = [Question(q["text"], tuple(q["answers"])) for q in lines]
    return questions[:limit] if limit else questions


def speak(text: str, voice: str = "flite:kal", rate: int = PIPELINE_RATE) -> np.ndarray:
    """``voice`` is ``flite:NAME`` or ``espeak:VOICE``; float32 mono at ``rate``, leading and trailing silence cut."""
    engine, _, name = voice.partition(":")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "q.wav"
        if engine == "flite":
            command = ["flite", "-voice", name or "kal", "-t", text, "-o", str(wav)]
        elif engine == "espeak":
            command = ["espeak-ng", "-v", name or "en-us", "-s", "165", "-w", str(wav), text]
        else:
            raise ValueError(f"unknown voice {voice!r}")
        subprocess.run(command, check=True, capture_output=True)
        speech = read_audio(wav, rate)
    sound = np.flatnonzero(np.abs(speech) > 3e-4)
    if not len(sound):
        return speech
    margin = rate * 30 // 1000  # keep the faint edges of fricatives ("France" loses its "s" otherwise)
    return speech[max(0, sound[0] - margin) : sound[-1] + 1 + margin]


def spoken_question(text: str, voice: str, path: Path, *, lead_s: float = 0.5, tail_s: float = 0.2) -> float:
    """Write the padded question to ``path``; return the true end of speech in seconds."""
    speech = speak(text, voice)
    lead = np.zeros(int(lead_s * PIPELINE_RATE), np.float32)
    tail = np.zeros(int(tail_s * PIPELINE_RATE), np.float32)
    write_wav(path, np.concatenate([lead, speech, tail]), PIPELINE_RATE)
    return lead_s + len(speech) / PIPELINE_RATE
