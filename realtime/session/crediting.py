"""Which words a stretch of bi-streamed audio speaks, estimated at a speaking rate.

A text-streaming synthesiser (CosyVoice2) speaks the whole answer as one utterance and does not say which words a
chunk of audio holds. Audio is credited to the clauses in the order they were handed over, at
:data:`SECONDS_PER_WORD` a word; the last clause handed over takes any excess, and clauses left uncredited when the
synthesis ends were spoken too. The credit decides the cut to what was heard after a barge-in.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from realtime.session.turn import SpokenClause

SECONDS_PER_WORD = 0.35
"""Estimated speaking time of a word (s): ~170 words a minute, a typical conversational rate."""


class WordRateCredit:
    """Credits audio samples (at ``rate`` Hz) to clauses in order; ``started(clause)`` is called as each clause's
    audio begins (the session then shows its words and counts it as spoken)."""

    def __init__(self, rate: int, spoken: list[SpokenClause], started: Callable[[SpokenClause], None]) -> None:
        self._per_word = int(SECONDS_PER_WORD * rate)
        self._spoken = spoken
        self._started = started
        self._handed: deque[SpokenClause] = deque()

    def hand_over(self, text: str) -> None:
        """A clause was given to the synthesiser."""
        self._handed.append(SpokenClause(text, 0))

    def credit(self, samples: int) -> None:
        """``samples`` more samples of audio were synthesised."""
        while samples:
            current = self._spoken[-1] if self._spoken else None
            room = len(current.text.split()) * self._per_word - current.samples if current else 0
            if room <= 0 and self._handed:
                self._start_next()
                continue
            if current is None:
                return
            take = samples if room <= 0 else min(room, samples)
            current.samples += take
            samples -= take

    def finish(self) -> None:
        """The synthesis ended: every clause handed over was spoken."""
        while self._handed:
            self._start_next()

    def _start_next(self) -> None:
        clause = self._handed.popleft()
        self._spoken.append(clause)
        self._started(clause)
