"""Cutting a streamed answer into clauses that can be spoken as soon as they are complete.

The first clause is cut early so speech starts quickly: at any clause punctuation after a few words,
or after ``first_max_words`` words even without punctuation (Piper speaks a clause only once it is
whole, and a 0.5B model on two cores writes ~25 tokens a second). Not fewer than 8: a short answer cut
before its last word ("The capital of Italy is" / "Rome.") leaves Piper a one-word sentence that a
listener (and Whisper, in our round-trip tests) often mishears. Later clauses are longer for natural
prosody. A '.' is only a sentence end once the next character
shows it is not part of a number ("3.5") or an abbreviation ("e.g.", "Dr.", "U.S.").
"""

from __future__ import annotations

import re
import unicodedata

_SENTENCE_END = ".!?…"
_CLAUSE_END = ",;:—"
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "st", "vs", "etc", "e.g", "i.e", "jr", "sr", "prof", "inc", "no", "approx"}
_FENCE = re.compile(r"```.*?(```|$)", re.S)
_URL = re.compile(r"https?://([^/\s]+)\S*")
_MARKUP = re.compile(r"[*_`#>|~]+")
_BULLET = re.compile(r"(^|\n)\s*(?:[-+•]|\d+[.)])\s+")


def speakable(text: str) -> str:
    """Text as it should be read aloud: no markdown, code, emoji or raw URLs; single spaces."""
    text = _FENCE.sub(" ", text)
    text = _URL.sub(lambda m: m.group(1), text)
    text = _BULLET.sub(r"\1", text)
    text = _MARKUP.sub("", text)
    text = "".join(c for c in text if unicodedata.category(c) not in ("So", "Cs", "Co", "Cn") or c.isspace())
    return " ".join(text.split())


class ClauseSegmenter:
    """``push`` streamed text, get back the clauses it completed; ``flush`` at the end."""

    def __init__(self, first_min_words: int = 1, min_words: int = 8, max_words: int = 30, first_max_words: int = 8) -> None:
        if not 1 <= first_min_words <= first_max_words or not 1 <= min_words <= max_words:
            raise ValueError("word limits must satisfy 1 <= min <= max words")
        self.first_min_words = first_min_words
        self.first_max_words = first_max_words
        self.min_words = min_words
        self.max_words = max_words
        self._buffer = ""
        self._emitted = 0

    def push(self, delta: str) -> list[str]:
        self._buffer += delta
        clauses: list[str] = []
        while (cut := self._next_cut()) is not None:
            clause, self._buffer = self._buffer[:cut], self._buffer[cut:].lstrip()
            self._add(clauses, clause)
        return clauses

    def flush(self) -> list[str]:
        clauses: list[str] = []
        self._add(clauses, self._buffer)
        self._buffer = ""
        return clauses

    def _add(self, clauses: list[str], clause: str) -> None:
        spoken = speakable(clause)
        if any(c.isalnum() for c in spoken):
            clauses.append(spoken)
            self._emitted += 1

    def _next_cut(self) -> int | None:
        """Index just past the first complete clause in the buffer, if there is one."""
        text = self._buffer
        first = self._emitted == 0
        min_words = self.first_min_words if first else self.min_words
        max_words = self.first_max_words if first else self.max_words
        words = 0
        last_space = None
        for i, char in enumerate(text):
            nxt = text[i + 1] if i + 1 < len(text) else None
            if char.isspace():
                if i > 0 and not text[i - 1].isspace():
                    words += 1
                    last_space = i
                if char == "\n" and words:
                    return i
                if words >= max_words and last_space is not None:
                    return last_space
                continue
            if nxt is None or not nxt.isspace():
                continue  # a boundary needs the following whitespace to be sure
            if char in _SENTENCE_END and not (char == "." and _is_abbreviation(text[: i + 1])):
                return i + 1
            if char in _CLAUSE_END and words + 1 >= min_words:
                return i + 1
        return None


def _is_abbreviation(text: str) -> bool:
    """Whether the '.' ending ``text`` closes an abbreviation ("Dr.", "e.g.", "U.S.") rather than a sentence."""
    token = text.split()[-1].lstrip("(\"'").rstrip(".").lower()
    return token in _ABBREVIATIONS or "." in token


class RepetitionGuard:
    """Greedy decoding of a small model can repeat a sentence forever: a clause said before ends the answer."""

    def __init__(self) -> None:
        self._said: set[str] = set()

    def repeats(self, clause: str) -> bool:
        key = " ".join("".join(c for c in clause.lower() if c.isalnum() or c.isspace()).split())
        if key in self._said:
            return True
        self._said.add(key)
        return False
