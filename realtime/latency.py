"""One monotonic clock for every stage of a turn, and the per-turn latency record."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

now = time.monotonic
"""The clock every stage stamps with."""

STAGES = (
    "speech_end",
    "end_of_turn_signal",
    "end_of_turn",
    "speculation_start",
    "final_transcript",
    "first_token",
    "first_answer_token",
    "first_clause",
    "first_tts_audio",
    "first_audio_out",
)
"""Stages in pipeline order. ``speech_end`` is when the last speech sample reached the agent; ``end_of_turn_signal``
when the pause was judged (semantic end of turn), ``end_of_turn`` when the turn was committed; ``first_clause`` when
the first clause of the answer was written whole and handed to the synthesiser."""


@dataclass
class LatencyRecord:
    """Monotonic stamps of one turn's stages (seconds; ``None`` where a stage did not happen)."""

    turn_id: str
    stamps: dict[str, float] = field(default_factory=dict)
    true_speech_end: float | None = None
    """When the true end of speech (known from the input, not from VAD) reached the agent, if known."""
    end_of_turn_probability: float | None = None
    """Semantic end of turn: the audio model's probability that the turn was finished (None: not judged by it)."""
    end_of_turn_complete: bool | None = None
    """Semantic end of turn: whether the pause was judged to end a complete turn (None: not judged)."""
    clock: Callable[[], float] = field(default=now, repr=False, compare=False)
    """The clock stamps are taken on (a session's; a virtual one in tests)."""

    def mark(self, stage: str, at: float | None = None) -> None:
        """Stamp ``stage`` once (later stamps of the same stage are ignored)."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}")
        self.stamps.setdefault(stage, self.clock() if at is None else at)

    @property
    def reference(self) -> float | None:
        return self.true_speech_end if self.true_speech_end is not None else self.stamps.get("speech_end")

    @property
    def first_packet_delay_ms(self) -> float | None:
        """End of the user's speech to the first reply audio out."""
        out, ref = self.stamps.get("first_audio_out"), self.reference
        return None if out is None or ref is None else round((out - ref) * 1000.0, 1)

    def as_dict(self) -> dict[str, object]:
        """Each stage in ms after the end of speech (negative: before it)."""
        ref = self.reference
        stages = {
            stage: None if stage not in self.stamps or ref is None else round((self.stamps[stage] - ref) * 1000.0, 1)
            for stage in STAGES
        }
        return {
            "turn_id": self.turn_id,
            "first_packet_delay_ms": self.first_packet_delay_ms,
            "reference": "true_speech_end" if self.true_speech_end is not None else "vad_speech_end",
            "stages_ms": stages,
            "end_of_turn": {"probability": self.end_of_turn_probability, "complete": self.end_of_turn_complete},
        }
