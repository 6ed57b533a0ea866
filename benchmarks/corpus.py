"""The spoken-question corpus: texts with known answers, voiced at run time by Debian voices that are
not the agent's (flite and espeak-ng variants, at several speeds), padded with silence, some mixed
with coloured noise (:mod:`benchmarks.noise`). No audio is ever written into the repository."""

from __future__ import annotations

import dataclasses
import json
import random
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audio.samples import PIPELINE_RATE, read_audio, write_wav

QUESTIONS = Path(__file__).with_name("questions.jsonl")
VOICES = (
    "flite:kal", "flite:slt", "flite:rms", "flite:awb", "espeak:en-us", "espeak:en-gb", "espeak:en-us+f3", "espeak:en-gb-x-rp"
)


KINDS = ("fact", "arithmetic", "yes-no", "conversation")


RUDE = frozenset("stupid idiot dumb shut hate ugly boring whatever".split())
"""Words no polite reply to a conversational turn contains."""


@dataclass(frozen=True)
class Question:
    text: str
    answers: tuple[str, ...]
    kind: str = "fact"
    """One of :data:`KINDS`; conversational turns have no answer key but ``topics``."""
    topics: tuple[str, ...] = ()
    """For a conversational turn: words of which an on-topic reply holds at least one."""

    def correct(self, reply: str) -> bool | None:
        """Whether ``reply`` contains a known answer; for a conversational turn, :meth:`judged` (None without topics)."""
        if not self.answers:
            return self.judged(reply) if self.topics else None
        words = " " + " ".join(reply.lower().replace("-", " ").split()) + " "
        cleaned = "".join(c if c.isalnum() or c == " " else " " for c in words)
        return any(f" {a.replace('-', ' ')} " in cleaned or f" {a} " in words for a in self.answers)

    def judged(self, reply: str) -> bool:
        """A conversational reply is good when it is on topic (holds one of ``topics``) and polite (a sentence of
        at least three words, none of :data:`RUDE`, no refusal): a transparent word rule, not a model's opinion."""
        words = set("".join(c if c.isalnum() or c in " '" else " " for c in reply.lower()).split())
        refused = "sorry, i can't" in reply.lower() or "i cannot help" in reply.lower()
        return len(words) >= 3 and not words & RUDE and not refused and bool(words & set(self.topics))


def load_questions(limit: int | None = None) -> list[Question]:
    lines = [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line.strip()]
    questions = [Question(q["text"], tuple(q["answers"]), q.get("kind", "fact"), tuple(q.get("topics", ()))) for q in lines]
    return questions[:limit] if limit else questions


def speak(text: str, voice: str = "flite:kal", rate: int = PIPELINE_RATE, *, speed: float = 1.0) -> np.ndarray:
    """``voice`` is ``flite:NAME`` or ``espeak:VOICE``; float32 mono at ``rate``, leading and trailing silence
    cut; ``speed`` above 1 speaks faster."""
    engine, _, name = voice.partition(":")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "q.wav"
        if engine == "flite":
            # only when asked: the voices' own duration_stretch is not 1 (kal at 1.0 speaks too fast to follow)
            stretch = ["--setf", f"duration_stretch={1 / speed:.3f}"] if speed != 1.0 else []
            command = ["flite", "-voice", name or "kal", *stretch, "-t", text, "-o", str(wav)]
        elif engine == "espeak":
            command = ["espeak-ng", "-v", name or "en-us", "-s", str(round(165 * speed)), "-w", str(wav), text]
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


ACCENTED = ("flite:awb", "espeak:en-gb", "espeak:en-gb-x-rp")
"""Voices reported as accented: flite's Scottish English speaker and espeak-ng's British English ones (the others are
US English)."""
SPEEDS = (1.0, 0.85, 1.2)
SNRS_DB = (20.0, 10.0)
"""Signal-to-noise ratios of the noisy renditions (every third question is noisy)."""


@dataclass(frozen=True)
class Rendition:
    """How a question is voiced: a voice, a speed, and optionally background noise at ``snr_db``."""

    voice: str
    speed: float = 1.0
    snr_db: float | None = None

    def describe(self) -> dict[str, object]:
        return {"voice": self.voice, "speed": self.speed, "snr_db": self.snr_db}

    @property
    def condition(self) -> str:
        """``noisy`` (any background noise), ``accented`` (a voice of :data:`ACCENTED`) or ``clean``."""
        return "noisy" if self.snr_db is not None else "accented" if self.voice in ACCENTED else "clean"


@dataclass
class SpokenSample:
    """A voiced, padded question (16 kHz float32) and where its speech truly starts and ends."""

    question: Question
    rendition: Rendition
    audio: np.ndarray
    speech_start_s: float
    speech_end_s: float


def rendition(index: int) -> Rendition:
    """The ``index``-th question's voicing: voices, speeds and noise cycle through fixed lists."""
    noisy = index % 3 == 2
    snr_db = SNRS_DB[(index // 3) % len(SNRS_DB)] if noisy else None
    return Rendition(VOICES[index % len(VOICES)], SPEEDS[index % len(SPEEDS)], snr_db)


def render(question: Question, how: Rendition, *, lead_s: float = 0.5, tail_s: float = 0.2, seed: int = 0) -> SpokenSample:
    """Voice ``question``; the true speech bounds are found in the clean clip (as ``realtime respond``
    finds them), before any noise is mixed in."""
    return _placed(question, how, speak(question.text, how.voice, speed=how.speed), lead_s, tail_s, seed)


def clean_bounds(clean: np.ndarray, *, within_db: float = 40.0) -> tuple[int, int]:
    """Where speech starts and ends (samples at 16 kHz) in a synthetic clip padded with digital silence: the first and
    last 10 ms frames within ``within_db`` of the loudest. Exact for such clips, unlike a voice activity detector (which
    may end ~100 ms late), so the benchmark's first-packet delays run from the true end; (0, len) for a silent clip."""
    hop = PIPELINE_RATE // 100
    count = len(clean) // hop
    power = np.square(clean[: count * hop].reshape(count, hop), dtype=np.float64).mean(axis=1)
    level = 10 * np.log10(np.maximum(power, 1e-20))
    loud = np.flatnonzero(level > level.max() - within_db) if count else np.zeros(0, int)
    if not len(loud) or level.max() < -100:
        return 0, len(clean)
    return int(loud[0]) * hop, (int(loud[-1]) + 1) * hop


def _placed(question: Question, how: Rendition, speech: np.ndarray, lead_s: float, tail_s: float, seed: int) -> SpokenSample:
    """``speech`` padded with silence, its true bounds found in the clean clip, then any noise mixed in."""
    from benchmarks.noise import background, mix_at_snr

    lead, tail = np.zeros(int(lead_s * PIPELINE_RATE), np.float32), np.zeros(int(tail_s * PIPELINE_RATE), np.float32)
    clean = np.concatenate([lead, speech, tail])
    start, end = clean_bounds(clean)
    audio = clean if how.snr_db is None else mix_at_snr(clean, background(len(clean), seed), how.snr_db, slice(start, end))
    return SpokenSample(question, how, audio, start / PIPELINE_RATE, end / PIPELINE_RATE)


PAUSE_S = (0.3, 0.7)
"""The range of a natural mid-sentence pause ("What is the capital of ... France?")."""
FUNCTION_WORDS = frozenset(
    "a an the of in on at to for from by with and or is are was do does did you your my me i it what which who how "
    "when where there this that than we have has can".split()
)


def pausable(question: Question) -> bool:
    """Whether the question has words enough to pause inside (at least three)."""
    return len(question.text.split()) >= 3


def split_text(text: str, rng: random.Random) -> tuple[str, str]:
    """Cut ``text`` at a word boundary before its last content word or two (the rest of the question is what the
    speaker is still looking for); the first part keeps at least two words."""
    words = text.split()
    if len(words) < 3:
        raise ValueError(f"too short to pause inside: {text!r}")
    content = [i for i, w in enumerate(words) if i >= 2 and w.strip("?,.!").lower() not in FUNCTION_WORDS]
    last = content[-1] if content else len(words) - 1
    at = content[-2] if len(content) > 1 and content[-2] == last - 1 and rng.random() < 0.5 else last
    at = max(2, min(at, len(words) - 1))
    return " ".join(words[:at]), " ".join(words[at:])


@dataclass
class PausedSample(SpokenSample):
    """A question spoken in two parts with a pause between them; ``speech_end_s`` is the end of the second part."""

    first: str = ""
    second: str = ""
    pause_s: float = 0.0
    """The silence put between the two voiced parts (each part keeps 30 ms of its own faint edges)."""
    second_start_s: float = 0.0
    """Where the second voiced part begins in ``audio``."""


def render_paused(
    question: Question, how: Rendition, rng: random.Random, *, lead_s: float = 0.5, tail_s: float = 0.2, seed: int = 0
) -> PausedSample:
    """Voice ``question`` with a pause drawn from :data:`PAUSE_S` at a word boundary (:func:`split_text`), both
    parts in the same voice at the same speed."""
    first, second = split_text(question.text, rng)
    pause_s = round(rng.uniform(*PAUSE_S), 3)
    head, rest = (speak(part, how.voice, speed=how.speed) for part in (first, second))
    gap = np.zeros(round(pause_s * PIPELINE_RATE), np.float32)
    whole = _placed(question, how, np.concatenate([head, gap, rest]), lead_s, tail_s, seed)
    second_start = (int(lead_s * PIPELINE_RATE) + len(head) + len(gap)) / PIPELINE_RATE
    return PausedSample(**{f.name: getattr(whole, f.name) for f in dataclasses.fields(SpokenSample)},
                        first=first, second=second, pause_s=pause_s, second_start_s=second_start)


def pick(questions: list[Question], count: int | None) -> list[Question]:
    """``count`` questions spread evenly over the list (so every kind is represented); all if None."""
    if count is None or count >= len(questions):
        return list(questions)
    step = len(questions) / count
    return [questions[int(i * step)] for i in range(count)]
