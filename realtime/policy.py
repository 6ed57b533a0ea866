"""The turn-taking policy: a small pure state machine over VAD windows, in media time (samples).

It decides when the user started speaking (long enough not to be a click or a cough), when a pause
may end the turn (start the reply speculatively), when the pause is long enough to end it (commit),
when speech resumed (discard the speculation), and when speech over the agent's playback is a
barge-in. No I/O, no clocks: the same input always gives the same decisions.

Speech over a reply (with ``min_interruption_ms`` set, the default): its first speech window pauses the reply
(:attr:`Decision.OVERLAP`); a sound that never becomes speech resumes it (:attr:`Decision.OVERLAP_ENDED`); speech that
lasts ``min_interruption_ms`` confirms the interruption (:attr:`Decision.BARGE_IN`). Shorter speech is judged by its
words when its transcript is known (:func:`interrupts`): a backchannel ("mm-hmm", "yeah") or noise (no words) does
not interrupt. Unset, any ``barge_in_ms`` of speech over a reply interrupts it at once (the behaviour before pauses).

With semantic end of turn (OpenAI's ``semantic_vad``), how long a pause must be depends on a judgment of the turn
made during the pause (:meth:`TurnPolicy.judge`: the speech sounds and reads finished): a turn judged complete ends
after ``complete_silence_ms``, any other waits ``end_of_turn_silence_ms``. (A session hands a "complete" judgment over
only once the pause's reply has begun to answer: :mod:`realtime.session.endpointing`.) The eagerness presets
(:data:`EAGERNESS`) are this project's, chosen by the false cut-off and latency measurements of ``realtime bench``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from enum import Enum

RATE = 16_000

BACKCHANNELS: tuple[str, ...] = (
    "yeah", "yes", "yep", "yup", "ya", "uh-huh", "uh huh", "mm-hmm", "mm hmm", "mhm", "mmhmm", "hmm", "hm", "mm", "mmm",
    "uh", "um", "ah", "oh", "okay", "ok", "right", "sure", "alright", "all right", "i see", "got it", "cool", "wow",
    "nice", "great", "true", "exactly", "indeed", "really", "ha", "hah", "haha", "heh",
)
"""Words and phrases that acknowledge a speaker without taking the turn (the common English backchannels of the
conversation-analysis literature, plus Whisper's spellings of them: "Mm-hmm.", "Mhm.", "Uh-huh.", and of laughter:
"Ha, ha, ha.")."""
INTERRUPT_WORDS: tuple[str, ...] = ("stop", "wait", "hold", "pause", "no", "nope", "sorry", "pardon", "excuse", "hey", "actually")
"""Words that take the turn even alone ("Stop!", "Wait."): one of them interrupts whatever ``min_interruption_words``
asks."""


@dataclass(frozen=True)
class PolicyConfig:
    """Knobs, in milliseconds where they are durations."""

    threshold: float = 0.5
    """Speech probability at or above which a VAD window counts as speech."""
    min_speech_ms: int = 160
    """Speech shorter than this never starts a user turn (clicks, coughs, breath)."""
    speculate_silence_ms: int = 160
    """Silence after speech that starts a speculative reply. Silero calls speech over before a final
    fricative fades ("France" ends in a faint "s"); cut 64 ms after that, Whisper hears "friends"."""
    end_of_turn_silence_ms: int = 480
    """Silence after speech that ends the user's turn (the reply is committed and plays)."""
    resume_ms: int = 64
    """Speech this long after a pause means the user goes on (a speculative reply is discarded)."""
    barge_in_ms: int = 192
    """Speech this long while the agent is replying interrupts it."""
    max_gap_ms: int = 96
    """Silence that resets a speech onset that has not yet reached ``min_speech_ms``."""
    complete_silence_ms: int | None = None
    """Semantic end of turn: the silence that ends a turn judged complete. None: every turn waits
    ``end_of_turn_silence_ms`` (``server_vad``)."""
    eagerness: str | None = None
    """The ``semantic_vad`` eagerness these pause lengths came from (:meth:`semantic`), reported back to clients."""
    min_interruption_ms: int | None = 1000
    """Speech over a reply first pauses it; this much speech (ms, counted from the onset) confirms the interruption
    before any words are known. None: speech over a reply interrupts it after ``barge_in_ms``, without a pause."""
    min_interruption_words: int = 2
    """Words, besides :attr:`backchannels`, that the overlapping speech must hold to interrupt (0: any words do;
    speech with no words never does), unless one of them is an :attr:`interrupt_words` word. Two, because a short
    acknowledgement misheard as one word ("Sure" as "Share", a synthetic "uh-huh" as "Amir") is the commonest false
    interruption measured by ``benchmarks.backchannels``, and a one-word interruption is nearly always a command."""
    min_interruption_speech_ms: int = 500
    """Speech over a reply that pauses sooner than this after its onset (ms) interrupts only with an
    :attr:`interrupt_words` word; other words are answered after the reply. Whisper hears a short synthetic "uh-huh"
    or "yeah" as two words ("Emma. Emma.", "of that.", "You add.": 3 of 24 backchannels wrongly stopped the reply in
    ``benchmarks.backchannels`` without this rule). 500 ms is LiveKit Agents' ``min_interruption_duration``."""
    backchannels: tuple[str, ...] = field(default=BACKCHANNELS)
    """Words and phrases that never count toward :attr:`min_interruption_words` (lower case)."""
    interrupt_words: tuple[str, ...] = field(default=INTERRUPT_WORDS)
    """Words that interrupt even alone (lower case)."""

    def semantic(self, eagerness: str) -> PolicyConfig:
        """These knobs with the pause lengths of ``eagerness`` (a key of :data:`EAGERNESS`, or ``auto``: medium).
        Raises ``ValueError`` for another eagerness."""
        if eagerness not in (*EAGERNESS, "auto"):
            raise ValueError(f"eagerness must be one of low, medium, high, auto, not {eagerness!r}")
        complete, incomplete = EAGERNESS["medium" if eagerness == "auto" else eagerness]
        speculate = min(self.speculate_silence_ms, complete)
        return replace(
            self, complete_silence_ms=complete, end_of_turn_silence_ms=incomplete, speculate_silence_ms=speculate, eagerness=eagerness
        )

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError("threshold must be between 0 and 1")
        durations = (
            self.min_speech_ms, self.speculate_silence_ms, self.end_of_turn_silence_ms, self.resume_ms, self.barge_in_ms,
            self.max_gap_ms, self.min_interruption_ms or 0, self.min_interruption_words, self.min_interruption_speech_ms,
        )
        if min(durations) < 0:
            raise ValueError("durations must not be negative")
        if self.speculate_silence_ms > self.end_of_turn_silence_ms:
            raise ValueError("speculate_silence_ms must not exceed end_of_turn_silence_ms")
        complete = self.complete_silence_ms
        if complete is not None and not self.speculate_silence_ms <= complete <= self.end_of_turn_silence_ms:
            raise ValueError("complete_silence_ms must lie between speculate_silence_ms and end_of_turn_silence_ms")


EAGERNESS: dict[str, tuple[int, int]] = {"high": (160, 800), "medium": (256, 1400), "low": (416, 2000)}
"""``semantic_vad`` eagerness -> (silence that ends a turn judged complete, silence that ends any other), in ms."""


class Decision(Enum):
    SPEECH_STARTED = "speech_started"
    """The user started a turn; ``sample`` is the onset."""
    BARGE_IN = "barge_in"
    """The user speaks over the agent's reply; stop it (right after SPEECH_STARTED, or, after OVERLAP, once the
    speech lasted ``min_interruption_ms``)."""
    OVERLAP = "overlap"
    """A sound over the agent's reply that may be speech: pause the reply; ``sample`` is its first window."""
    OVERLAP_ENDED = "overlap_ended"
    """The sound after OVERLAP was too short to be speech: resume the reply."""
    PAUSED = "paused"
    """A pause that may end the turn; ``sample`` is the end of speech."""
    RESUMED = "resumed"
    """Speech resumed after PAUSED: the turn goes on."""
    END_OF_TURN = "end_of_turn"
    """The pause is long enough: the turn ended at ``sample`` (end of speech)."""


@dataclass(frozen=True)
class Event:
    decision: Decision
    sample: int


class _State(Enum):
    IDLE = 0
    ONSET = 1
    SPEAKING = 2
    PAUSE = 3


def _samples(ms: int) -> int:
    return ms * RATE // 1000


class TurnPolicy:
    """Feed it every VAD window in order with :meth:`window`; it returns what was decided."""

    def __init__(self, config: PolicyConfig | None = None) -> None:
        self.config = config or PolicyConfig()
        self._state = _State.IDLE
        self._onset = 0
        self._speech_run = 0
        self._gap = 0
        self._speech_end = 0
        self._paused = False
        self._complete = False
        """The current pause was judged to end a complete turn (semantic end of turn)."""
        self._overlap: int | None = None
        """Speech samples heard of the utterance that began over a reply, until its interruption is confirmed."""

    @property
    def user_speaking(self) -> bool:
        """True from SPEECH_STARTED until END_OF_TURN."""
        return self._state in (_State.SPEAKING, _State.PAUSE)

    @property
    def in_silence(self) -> bool:
        """True while the user's turn is open but the last window was silence (from the first silent window on)."""
        return self._state is _State.PAUSE

    @property
    def paused(self) -> bool:
        """True from PAUSED until RESUMED or END_OF_TURN."""
        return self._state is _State.PAUSE and self._paused

    def window(self, start: int, end: int, probability: float, *, agent_active: bool = False) -> list[Event]:
        """One VAD window ``[start, end)``; ``agent_active`` while a reply is committed and not yet over."""
        speech = probability >= self.config.threshold
        size = end - start
        if self._state is _State.IDLE:
            if speech:
                self._state, self._onset, self._speech_run, self._gap = _State.ONSET, start, size, 0
                overlap = agent_active and self.config.min_interruption_ms is not None
                self._overlap = 0 if overlap else None
                return [Event(Decision.OVERLAP, start)] * overlap + self._confirm_onset(agent_active)
            return []
        if self._state is _State.ONSET:
            if speech:
                self._speech_run += size
                self._gap = 0
                return self._confirm_onset(agent_active)
            self._gap += size
            if self._gap > _samples(self.config.max_gap_ms):
                self._state = _State.IDLE
                if self._overlap is not None:
                    self._overlap = None
                    return [Event(Decision.OVERLAP_ENDED, self._onset)]
            return []
        if self._state is _State.SPEAKING:
            if not speech:
                self._state, self._speech_end, self._gap, self._speech_run, self._paused = _State.PAUSE, start, size, 0, False
                self._complete = False
                return self._check_pause()
            return self._overlap_heard(size)
        # PAUSE
        if speech:
            if self._speech_run == 0:
                self._onset = start
            self._speech_run += size
            confirmed = self._overlap_heard(size)
            if self._speech_run >= _samples(self.config.resume_ms):
                self._state = _State.SPEAKING
                resumed = [Event(Decision.RESUMED, self._onset)] if self._paused else []
                self._paused = False
                return resumed + confirmed
            return confirmed
        self._speech_run = 0
        self._gap = end - self._speech_end
        return self._check_pause()

    def judge(self, complete: bool) -> list[Event]:
        """The turn paused on was judged to be complete (or not): with semantic end of turn, a complete one ends once
        its silence reaches ``complete_silence_ms`` (at once, if it already has). Ignored outside a pause (PAUSED to
        RESUMED or END_OF_TURN) and without semantic end of turn."""
        if self.config.complete_silence_ms is None or not self.paused:
            return []
        self._complete = complete
        return self._check_pause()

    def _confirm_onset(self, agent_active: bool) -> list[Event]:
        if self._overlap is not None:  # the reply is paused already: a turn starts as any other, then is judged
            needed, barge_in = self.config.min_speech_ms, False
        else:
            needed, barge_in = (self.config.barge_in_ms if agent_active else self.config.min_speech_ms), agent_active
        if self._speech_run < _samples(needed):
            return []
        self._state = _State.SPEAKING
        started = Event(Decision.SPEECH_STARTED, self._onset)
        if self._overlap is not None:
            self._overlap = 0
            return [started, *self._overlap_heard(self._speech_run)]
        return [started, Event(Decision.BARGE_IN, self._onset)] if barge_in else [started]

    def _overlap_heard(self, samples: int) -> list[Event]:
        """``samples`` more of speech over the reply: BARGE_IN once they add up to ``min_interruption_ms``."""
        if self._overlap is None:
            return []
        self._overlap += samples
        limit = self.config.min_interruption_ms  # None: switched off during the overlap, which then interrupts at once
        if limit is not None and self._overlap < _samples(limit):
            return []
        self._overlap = None
        return [Event(Decision.BARGE_IN, self._onset)]

    def _check_pause(self) -> list[Event]:
        events = []
        if not self._paused and self._gap >= _samples(self.config.speculate_silence_ms):
            self._paused = True
            events.append(Event(Decision.PAUSED, self._speech_end))
        needed = self.config.complete_silence_ms if self._complete else None
        if self._gap >= _samples(self.config.end_of_turn_silence_ms if needed is None else needed):
            self._state, self._overlap = _State.IDLE, None
            events.append(Event(Decision.END_OF_TURN, self._speech_end))
        return events


_WORD = re.compile(r"[a-z0-9']+(?:-[a-z0-9']+)*")
_HUM = re.compile(r"[mhn]+(?:-[mhn]+)*")
"""A hum, however Whisper spells it: "mm", "hmm", "mhm", "mm-m-h-m", or the letters of "M M H H M M"."""


def content_words(text: str, backchannels: tuple[str, ...] = BACKCHANNELS) -> int:
    """How many words of ``text`` are not backchannels (a phrase of ``backchannels`` is taken whole, longest first;
    case and punctuation are ignored) nor hums (words of the letters m, h and n only)."""
    words = _WORD.findall(text.lower())
    phrases = sorted((tuple(_WORD.findall(p.lower())) for p in backchannels), key=len, reverse=True)
    count, index = 0, 0
    while index < len(words):
        match = next((len(p) for p in phrases if p and tuple(words[index : index + len(p)]) == p), 0)
        count += match == 0 and not _HUM.fullmatch(words[index])
        index += max(match, 1)
    return count


def interrupts(text: str, config: PolicyConfig, speech_ms: float | None = None) -> bool:
    """Whether speech over a reply whose transcript is ``text`` interrupts it: it has words ("" is noise, a cough,
    a laugh), one of them is an interrupt word, or at least ``min_interruption_words`` of them are not backchannels
    and the speech lasted (``speech_ms``, from its onset to its pause; None: long enough) at least
    ``min_interruption_speech_ms``."""
    words = _WORD.findall(text.lower())
    if not words:
        return False
    if not set(words).isdisjoint(config.interrupt_words):
        return True
    long_enough = speech_ms is None or speech_ms >= config.min_interruption_speech_ms
    return long_enough and content_words(text, config.backchannels) >= config.min_interruption_words
