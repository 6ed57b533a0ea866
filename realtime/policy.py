"""The turn-taking policy: a small pure state machine over VAD windows, in media time (samples).

It decides when the user started speaking (long enough not to be a click or a cough), when a pause
may end the turn (start the reply speculatively), when the pause is long enough to end it (commit),
when speech resumed (discard the speculation), and when speech over the agent's playback is a
barge-in. No I/O, no clocks: the same input always gives the same decisions.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

RATE = 16_000


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

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError("threshold must be between 0 and 1")
        durations = (self.min_speech_ms, self.speculate_silence_ms, self.end_of_turn_silence_ms, self.resume_ms, self.barge_in_ms, self.max_gap_ms)
        if min(durations) < 0:
            raise ValueError("durations must not be negative")
        if self.speculate_silence_ms > self.end_of_turn_silence_ms:
            raise ValueError("speculate_silence_ms must not exceed end_of_turn_silence_ms")


class Decision(Enum):
    SPEECH_STARTED = "speech_started"
    """The user started a turn; ``sample`` is the onset."""
    BARGE_IN = "barge_in"
    """The user speaks over the agent's reply; stop it (right after SPEECH_STARTED)."""
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

    @property
    def user_speaking(self) -> bool:
        """True from SPEECH_STARTED until END_OF_TURN."""
        return self._state in (_State.SPEAKING, _State.PAUSE)

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
                return self._confirm_onset(agent_active)
            return []
        if self._state is _State.ONSET:
            if speech:
                self._speech_run += size
                self._gap = 0
                return self._confirm_onset(agent_active)
            self._gap += size
            if self._gap > _samples(self.config.max_gap_ms):
                self._state = _State.IDLE
            return []
        if self._state is _State.SPEAKING:
            if not speech:
                self._state, self._speech_end, self._gap, self._speech_run, self._paused = _State.PAUSE, start, size, 0, False
                return self._check_pause()
            return []
        # PAUSE
        if speech:
            if self._speech_run == 0:
                self._onset = start
            self._speech_run += size
            if self._speech_run >= _samples(self.config.resume_ms):
                self._state = _State.SPEAKING
                resumed = [Event(Decision.RESUMED, self._onset)] if self._paused else []
                self._paused = False
                return resumed
            return []
        self._speech_run = 0
        self._gap = end - self._speech_end
        return self._check_pause()

    def _confirm_onset(self, agent_active: bool) -> list[Event]:
        needed = self.config.barge_in_ms if agent_active else self.config.min_speech_ms
        if self._speech_run < _samples(needed):
            return []
        self._state = _State.SPEAKING
        started = Event(Decision.SPEECH_STARTED, self._onset)
        return [started, Event(Decision.BARGE_IN, self._onset)] if agent_active else [started]

    def _check_pause(self) -> list[Event]:
        events = []
        if not self._paused and self._gap >= _samples(self.config.speculate_silence_ms):
            self._paused = True
            events.append(Event(Decision.PAUSED, self._speech_end))
        if self._gap >= _samples(self.config.end_of_turn_silence_ms):
            self._state = _State.IDLE
            events.append(Event(Decision.END_OF_TURN, self._speech_end))
        return events
