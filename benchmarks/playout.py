"""A client's playout buffer, simulated from when reply audio arrived: underruns and when playback ended."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Playout:
    started: float | None
    """When playback began (the first chunk's arrival plus the prebuffer); None: no audio."""
    ended: float | None
    """When the last audio finished playing, or was flushed."""
    underruns: int
    """Times the buffer ran dry before the reply's audio ended."""
    underrun_s: float
    """Total time it was dry."""


def simulate(chunks: Sequence[tuple[float, float]], *, prebuffer_s: float = 0.0, flush_at: float | None = None) -> Playout:
    """Play ``chunks`` (arrival time, duration in seconds, in arrival order) from a buffer that starts
    ``prebuffer_s`` after the first arrival; a chunk arriving after the buffered audio ran out plays at
    once, after a gap (an underrun). ``flush_at``: the client drops everything then (a barge-in)."""
    if not chunks:
        return Playout(None, None, 0, 0.0)
    started = chunks[0][0] + prebuffer_s
    end, underruns, dry = started, 0, 0.0
    for arrival, duration in chunks:
        if flush_at is not None and arrival >= flush_at:
            break
        if arrival > end:
            underruns += 1
            dry += arrival - end
            end = arrival
        end += duration
    if flush_at is not None:
        end = min(end, max(flush_at, started))
    return Playout(started, end, underruns, round(dry, 4))
