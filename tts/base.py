"""What a speech synthesiser offers the pipeline."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Protocol, runtime_checkable

import numpy as np


class Synthesizer(Protocol):
    """Streams speech for one clause at a time.

    Cancelling the consuming task (or closing the iterator) stops synthesis promptly; nothing is
    yielded after that, and the synthesiser is ready for the next clause.
    """

    sample_rate: int

    def stream(self, text: str, *, trim_lead: bool = True) -> AsyncGenerator[np.ndarray, None]:
        """float32 mono chunks at :attr:`sample_rate`; ``trim_lead`` drops the silence before the first
        phoneme (for a reply's first clause: it only delays the first packet; later clauses keep it as
        the natural pause between clauses)."""


@runtime_checkable
class TextStreamingSynthesizer(Synthesizer, Protocol):
    """A synthesiser that also takes the answer's text as it is written (bi-streaming), in one synthesis."""

    def stream_text(self, texts: AsyncIterator[str], *, trim_lead: bool = True) -> AsyncGenerator[np.ndarray, None]:
        """float32 mono chunks at :attr:`sample_rate` for the text ``texts`` yields, spoken as one utterance."""
