"""Grading the three accuracy measures of a spoken turn, each against its own reference:

1. **heard**: the user's transcript (the server's ``input_audio_transcription``) against the question's text;
2. **answered right**: the text the agent wrote (its ``output_audio_transcript``) against the known answers;
3. **can be heard**: a Whisper transcript of the reply's audio (the round trip) against the text the agent wrote.

Word error rates come from ``jiwer`` (a maintained library) on texts normalised alike (:func:`normalise`: case,
punctuation, numerals as words, common contractions), so "2 plus 2" and "two plus two" are the same words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jiwer
from num2words import num2words

from tts.normalize import spoken_form

if TYPE_CHECKING:
    from benchmarks.corpus import Question

_CONTRACTIONS = {
    "what's": "what is", "it's": "it is", "that's": "that is", "there's": "there is", "i'm": "i am", "you're": "you are",
    "we're": "we are", "they're": "they are", "isn't": "is not", "aren't": "are not", "don't": "do not",
    "doesn't": "does not", "can't": "cannot", "won't": "will not", "let's": "let us", "i've": "i have", "i'll": "i will",
    "how's": "how is", "he's": "he is", "she's": "she is",
}
_ORDINAL = re.compile(r"(\d+)(?:st|nd|rd|th)\b")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_DROP = re.compile(r"[^a-z0-9' ]+")


def normalise(text: str) -> str:
    """Money, units, years and titles as the voice says them (:func:`tts.normalize.spoken_form`, which Whisper writes
    back as symbols), lower case, numerals and ordinals ("15th") spelled out (``num2words``), British unit spellings, hyphens and
    punctuation as spaces, contractions expanded."""
    text = spoken_form(text.replace("’", "'")).lower().replace(",", "").replace("meter", "metre").replace("liter", "litre")
    text = _ORDINAL.sub(lambda m: " " + num2words(int(m.group(1)), to="ordinal") + " ", text)
    text = _NUMBER.sub(lambda m: " " + num2words(float(m.group()) if "." in m.group() else int(m.group())) + " ", text)
    words = _DROP.sub(" ", text.replace("-", " ")).split()
    return " ".join(_CONTRACTIONS.get(w, w).strip("'") for w in words)


def word_error_rate(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word errors, reference words) of ``hypothesis`` against ``reference`` after :func:`normalise`; sums of both
    over many turns give the corpus rate. An empty reference counts every hypothesis word as an error."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    if not ref:
        return len(hyp.split()), 0
    if not hyp:
        return len(ref.split()), len(ref.split())
    out = jiwer.process_words(ref, hyp)
    return out.substitutions + out.deletions + out.insertions, len(ref.split())


def rate(pairs: list[tuple[int, int]]) -> float | None:
    """The corpus word error rate of (errors, words) pairs (None with no reference words)."""
    words = sum(w for _, w in pairs)
    return round(sum(e for e, _ in pairs) / words, 4) if words else None


@dataclass(frozen=True)
class TurnGrades:
    """One turn's three measures. ``heard_errors`` / ``audible_errors``: (word errors, reference words)."""

    question_heard: str | None
    """The server's transcript of the question (None: it sent none)."""
    written: str | None
    """The reply's text as the agent wrote it (None: it sent none)."""
    heard_errors: tuple[int, int] | None
    answered_right: bool | None
    """The written reply holds a known answer (conversational turns: judged; None: no reply text)."""
    audible_errors: tuple[int, int] | None
    """The round-trip transcript of the reply audio against the written reply."""
    round_trip_right: bool | None

    def row(self) -> dict[str, object]:
        return {"question_heard": self.question_heard, "written": self.written, "heard_errors": self.heard_errors,
                "answered_right": self.answered_right, "audible_errors": self.audible_errors}


def grade_turn(question: Question, question_heard: str | None, written: str | None, round_trip: str) -> TurnGrades:
    """The three measures of a turn: its question as heard, the written reply, the reply's audio transcribed."""
    return TurnGrades(
        question_heard,
        written,
        word_error_rate(question.text, question_heard) if question_heard is not None else None,
        question.correct(written) if written is not None else None,
        word_error_rate(written, round_trip) if written else None,
        question.correct(round_trip),
    )


def measures(graded: list[tuple[Question, str, TurnGrades]]) -> dict[str, Any]:
    """The three measures over turns (question, rendition condition, grades): overall and per condition (clean,
    accented, noisy) and per kind. ``heard_wer``: corpus word error rate of the question transcripts; ``heard_exact``:
    share heard word for word; ``answered_right``: share of written replies right (questions with an answer key;
    ``conversation_judged`` apart); ``audible_wer``: round trip against the written reply; ``round_trip``: share
    right by the round trip; ``kept_right``: of the written replies that were right, the share still right once spoken
    and transcribed (what the voice and the grader lose)."""

    def of(rows: list[tuple[Question, str, TurnGrades]]) -> dict[str, Any]:
        keyed = [g for q, _, g in rows if q.answers]
        heard = [g.heard_errors for _, _, g in rows if g.heard_errors is not None]
        right = [g.answered_right for g in keyed if g.answered_right is not None]
        trip = [g.round_trip_right for g in keyed if g.round_trip_right is not None]
        kept = [g.round_trip_right for g in keyed if g.answered_right and g.round_trip_right is not None]
        judged = [g.answered_right for q, _, g in rows if not q.answers and g.answered_right is not None]
        return {
            "turns": len(rows),
            "heard_wer": rate(heard),
            "heard_exact": _share([e == 0 for e, _ in heard]),
            "answered_right": _share(right),
            "conversation_judged": _share(judged),
            "audible_wer": rate([g.audible_errors for _, _, g in rows if g.audible_errors is not None]),
            "round_trip": _share(trip),
            "kept_right": _share(kept),
        }

    conditions = sorted({c for _, c, _ in graded})
    kinds = sorted({q.kind for q, _, _ in graded})
    return {
        **of(graded),
        "by_condition": {c: of([r for r in graded if r[1] == c]) for c in conditions},
        "by_kind": {k: of([r for r in graded if r[0].kind == k]) for k in kinds},
    }


def _share(flags: list[bool]) -> float | None:
    return round(sum(flags) / len(flags), 3) if flags else None
