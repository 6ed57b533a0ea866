"""The spoken-question corpus: texts with known answers, voiced at run time by Debian voices that are
not the agent's (flite and espeak-ng variants, at several speeds), padded with silence, some mixed
with coloured noise (:mod:`benchmarks.noise`). No audio is ever written into the repository."""

from __future__ import annotations

import dataclasses
import json
import random
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from audio.samples import PIPELINE_RATE, read_audio, write_wav

QUESTIONS = Path(__file__).with_name("questions.jsonl")
VOICES = (
    "flite:kal", "flite:slt", "flite:rms", "flite:awb", "espeak:en-us", "espeak:en-gb", "espeak:en-us+f3", "espeak:en-gb-x-rp"
)


KINDS = ("fact", "arithmetic", "yes-no", "conversation")


POLAR = frozenset({"yes", "no"})
"""The words that answer a yes/no question."""
NEGATIONS = frozenset(
    "not never nor isn't aren't wasn't weren't don't doesn't didn't can't cannot won't hasn't haven't hadn't wouldn't "
    "couldn't shouldn't mustn't".split()
)
"""Words that, shortly before an answer in the same clause, deny it."""
POLAR_FOLLOWERS = frozenset("it it's they he she that this there i you we the a an not of".split())
"""Words after which a clause's opening "yes" or "no" answers the question ("No it is not", but not "No doubt")."""
CLAUSE_BREAK = re.compile(r"[;:!?]|,(?!\d{3})|\.(?!\d)|\bbut\b")
"""Where a clause ends: punctuation (not a number's "," or "."), and "but" ("not Lyon but Paris")."""
WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)*")


def _clauses(text: str) -> list[list[str]]:
    """The lower-case words of each clause of ``text`` (:data:`CLAUSE_BREAK`); a hyphen or a quote splits words, an
    apostrophe inside one does not ("isn't"), and a possessive is its noun ("jupiter's" is "jupiter")."""
    text = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    return [[w.removesuffix("'s") for w in WORD.findall(clause)] for clause in CLAUSE_BREAK.split(text)]


def _affirmed(clauses: list[list[str]], answer: list[str]) -> bool:
    """Whether the words ``answer`` occur in a clause where none of the three words before them denies them
    (:data:`NEGATIONS`; "not only" does not deny)."""
    n = len(answer)
    for words in clauses:
        for i in range(len(words) - n + 1):
            before = words[max(0, i - 3):i]
            denied = any(w in NEGATIONS and words[j + 1:j + 2] != ["only"] for j, w in enumerate(before, start=max(0, i - 3)))
            if words[i:i + n] == answer and not denied:
                return True
    return False


def _polar(clauses: list[list[str]]) -> str | None:
    """The reply's first "yes" or "no" that answers: a clause of that word alone, or opening a clause before one of
    :data:`POLAR_FOLLOWERS` (None: neither said so)."""
    for words in clauses:
        if words and words[0] in POLAR and (len(words) == 1 or words[1] in POLAR_FOLLOWERS):
            return words[0]
    return None


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
        """Whether ``reply`` gives a known answer; for a conversational turn, :meth:`judged` (None without topics).

        An answer counts where its clause does not deny it (:func:`_affirmed`: "a tomato is not a fruit" does not
        answer "fruit"; "not Lyon, Paris" answers "paris"). A yes/no question whose key says yes or no is graded by the
        reply's own yes or no when it says one (:func:`_polar`: "No, tomatoes are vegetables" is wrong, whatever else it
        says; "No doubt, it is a fruit" says neither)."""
        if not self.answers:
            return self.judged(reply) if self.topics else None
        clauses = _clauses(reply)
        polar = [a for a in self.answers if a in POLAR]
        said = _polar(clauses) if self.kind == "yes-no" and polar else None
        if said is not None:
            return said in polar
        return any(_affirmed(clauses, [w for clause in _clauses(answer) for w in clause]) for answer in self.answers)

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


def _synthesise(text: str, voice: str, wav: Path, *, speed: float = 1.0, ssml: bool = False, phones: bool = False) -> str:
    """Run flite or espeak-ng for ``voice`` (``flite:NAME`` or ``espeak:VOICE``), writing ``wav``; ``speed`` above 1
    speaks faster; ``ssml``: espeak-ng reads SSML markup; ``phones``: flite prints each segment with its end time
    (``-psdur``). Returns what the synthesiser printed. Raises ``ValueError`` for an unknown engine or an option the
    engine lacks."""
    engine, _, name = voice.partition(":")
    if engine == "flite" and not ssml:
        # only when asked: the voices' own duration_stretch is not 1 (kal at 1.0 speaks too fast to follow)
        stretch = ["--setf", f"duration_stretch={1 / speed:.3f}"] if speed != 1.0 else []
        command = ["flite", "-voice", name or "kal", *stretch, *(["-psdur"] if phones else []), "-t", text, "-o", str(wav)]
    elif engine == "espeak" and not phones:
        command = ["espeak-ng", "-v", name or "en-us", "-s", str(round(165 * speed)), *(["-m"] if ssml else []),
                   "-w", str(wav), text]
    else:
        raise ValueError(f"cannot voice {voice!r} with ssml={ssml}, phones={phones}")
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


QUIET = 3e-4
"""Samples below this magnitude are the synthesisers' digital silence."""
EDGE_S = 0.03
"""Faint edge kept around a voiced part's sound (fricatives: "France" loses its "s" otherwise)."""


def _sound_span(speech: np.ndarray, rate: int) -> slice:
    """Where ``speech``'s sound lies, keeping :data:`EDGE_S` of faint edges; all of it when silent."""
    sound = np.flatnonzero(np.abs(speech) > QUIET)
    if not len(sound):
        return slice(0, len(speech))
    margin = round(EDGE_S * rate)
    return slice(max(0, int(sound[0]) - margin), int(sound[-1]) + 1 + margin)


def speak(text: str, voice: str = "flite:kal", rate: int = PIPELINE_RATE, *, speed: float = 1.0) -> np.ndarray:
    """``voice`` is ``flite:NAME`` or ``espeak:VOICE``; float32 mono at ``rate``, leading and trailing silence
    cut; ``speed`` above 1 speaks faster."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "q.wav"
        _synthesise(text, voice, wav, speed=speed)
        speech = read_audio(wav, rate)
        return speech[_sound_span(speech, rate)]


def speak_paused(first: str, second: str, voice: str, pause_s: float, *, speed: float = 1.0,
                 rate: int = PIPELINE_RATE) -> tuple[np.ndarray, int]:
    """``first second`` voiced as **one** sentence with a pause of ``pause_s`` seconds before ``second``, so that
    ``first`` keeps the pitch of a sentence that goes on rather than falling as a finished one does (voicing the
    parts apart gives ``first`` a final fall: espeak-ng en-us ends "What is the capital of" at ~80 Hz alone, at ~110 Hz
    inside the sentence). espeak-ng: an SSML ``<break time="..."/>`` (exact to ~10 ms; :func:`_espeak_paused`); flite, which
    ignores ``<break>``: the sentence is voiced whole and cut where its segment timings (``-psdur``) put the end of
    ``first``'s last phone, with silence and 5 ms fades inserted. Returns float32 mono at ``rate`` (leading and
    trailing silence cut as by :func:`speak`) and the sample where ``second``'s sound resumes (espeak-ng: 30 ms before its
    onset, the faint edge :func:`speak` keeps; flite: the cut). Raises ``ValueError`` when the pause cannot be
    placed."""
    engine = voice.partition(":")[0]
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "q.wav"
        if engine == "espeak":
            audio, onset = _espeak_paused(first, second, voice, pause_s, speed, wav, rate)
            resumes = max(0, onset - round(EDGE_S * rate))
        else:
            timings = _synthesise(f"{first} {second}", voice, wav, speed=speed, phones=True)
            audio = read_audio(wav, rate)
            cut = round(_phones_end(timings, _phones(first, voice, speed)) * rate)
            fade = np.sin(np.linspace(0, np.pi / 2, rate * 5 // 1000, dtype=np.float32)) ** 2
            head, rest = audio[:cut].copy(), audio[cut:].copy()
            head[len(head) - len(fade):] *= fade[::-1]
            rest[: len(fade)] *= fade
            gap = np.zeros(round(pause_s * rate), np.float32)
            audio, resumes = np.concatenate([head, gap, rest]), cut + len(gap)
    span = _sound_span(audio, rate)
    return audio[span], resumes - span.start


LONGER_S = 0.5
"""How much longer the second break of :func:`_espeak_paused` is."""


def _espeak_paused(first: str, second: str, voice: str, pause_s: float, speed: float, wav: Path,
                   rate: int) -> tuple[np.ndarray, int]:
    """espeak-ng's rendering of ``first <break> second`` and the sample where ``second`` begins. The sentence is voiced
    twice, with the break and with it :data:`LONGER_S` longer: the two are the same up to where the shorter one's
    second part begins (silence alone cannot tell: en-us+f3 echoes its words for ~250 ms, filling short pauses as
    it fills stop closures). Raises ``ValueError`` unless the renderings differ by that length."""
    renderings = []
    for break_s in (pause_s, pause_s + LONGER_S):
        markup = f'<speak>{escape(first)} <break time="{round(break_s * 1000)}ms"/> {escape(second)}</speak>'
        _synthesise(markup, voice, wav, speed=speed, ssml=True)
        renderings.append(read_audio(wav, rate))
    audio, longer = renderings
    differ = np.flatnonzero(np.abs(audio - longer[: len(audio)]) > QUIET)
    if abs(len(longer) - len(audio) - LONGER_S * rate) > rate // 50 or not len(differ):
        raise ValueError(f"espeak-ng did not pause {pause_s} s in {first!r} / {second!r}")
    return audio, int(differ[0])


def _phones(text: str, voice: str, speed: float) -> list[str]:
    """The segments (pauses left out) flite voices ``text`` with."""
    with tempfile.TemporaryDirectory() as tmp:
        printed = _synthesise(text, voice, Path(tmp) / "p.wav", speed=speed, phones=True)
    return [name for name, _ in _segments(printed) if name != "pau"]


def _segments(printed: str) -> list[tuple[str, float]]:
    """flite's ``-psdur`` output ("pau:0.220 w:0.262 ...") as (segment, end time in s)."""
    return [(name, float(end)) for name, _, end in (item.rpartition(":") for item in printed.split()) if name]


def _phones_end(printed: str, first: list[str]) -> float:
    """When the segments ``first`` end inside the sentence flite printed (``-psdur``), in seconds: a word boundary.
    flite voices the words before it alike in the sentence and alone, but for the last segment (a final "a" is "ey"
    alone, "ax" inside). Raises ``ValueError`` when they differ otherwise (a number or abbreviation read another
    way), rather than cutting inside a word."""
    phones = [(name, end) for name, end in _segments(printed) if name != "pau"]
    count = len(first)
    if not 0 < count < len(phones) or [name for name, _ in phones[: count - 1]] != first[:-1]:
        raise ValueError(f"the segments {first} do not begin the sentence's {[name for name, _ in phones]}")
    return phones[count - 1][1]


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
    """The pause put between the two parts, in seconds (:func:`render_paused`)."""
    second_start_s: float = 0.0
    """Where the second voiced part begins in ``audio`` (at most 30 ms before its onset)."""
    rendering: str = "continuous"
    """One of :data:`RENDERINGS`."""


RENDERINGS = ("continuous", "separate")
"""How a paused question is voiced: ``continuous`` as one sentence with the pause inside (:func:`speak_paused`: the
first part's pitch goes on, as a speaker's does who is still looking for a word); ``separate`` each part voiced on its
own (the first part ends with a finished sentence's fall: harder for an end-of-turn model that listens to prosody, and
what the benchmark used until 2026-12-02)."""


def render_paused(
    question: Question, how: Rendition, rng: random.Random, *, lead_s: float = 0.5, tail_s: float = 0.2, seed: int = 0,
    rendering: str = "continuous",
) -> PausedSample:
    """Voice ``question`` with a pause drawn from :data:`PAUSE_S` at a word boundary (:func:`split_text`), in one of
    :data:`RENDERINGS`; ``pause_s`` is the silence inserted or asked for (espeak-ng's break comes out ~5-10 ms
    longer; the parts apart keep 30 ms of faint edges each).
    Raises ``ValueError`` for an unknown ``rendering``."""
    first, second = split_text(question.text, rng)
    pause_s = round(rng.uniform(*PAUSE_S), 3)
    if rendering == "continuous":
        speech, resumes = speak_paused(first, second, how.voice, pause_s, speed=how.speed)
    elif rendering == "separate":
        head, rest = (speak(part, how.voice, speed=how.speed) for part in (first, second))
        gap = np.zeros(round(pause_s * PIPELINE_RATE), np.float32)
        speech, resumes = np.concatenate([head, gap, rest]), len(head) + len(gap)
    else:
        raise ValueError(f"unknown rendering {rendering!r}: one of {RENDERINGS}")
    whole = _placed(question, how, speech, lead_s, tail_s, seed)
    return PausedSample(**{f.name: getattr(whole, f.name) for f in dataclasses.fields(SpokenSample)},
                        first=first, second=second, pause_s=pause_s,
                        second_start_s=(int(lead_s * PIPELINE_RATE) + resumes) / PIPELINE_RATE, rendering=rendering)


def pick(questions: list[Question], count: int | None) -> list[Question]:
    """``count`` questions spread evenly over the list (so every kind is represented); all if None."""
    if count is None or count >= len(questions):
        return list(questions)
    step = len(questions) / count
    return [questions[int(i * step)] for i in range(count)]
