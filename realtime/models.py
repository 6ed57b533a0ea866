"""Loading the embedded models once per process (they are shared by every session)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from realtime.asr import WhisperTranscriber
from realtime.decoder import LlamaCppDecoder, TextDecoder
from tts import PiperSynthesizer, Synthesizer


@dataclass
class Models:
    """The models a session runs on."""

    asr: WhisperTranscriber
    decoder: TextDecoder
    tts: Synthesizer

    @classmethod
    def load_embedded(cls, *, threads: int = 2) -> "Models":
        """Whisper base, Qwen2.5-Coder-0.5B (llama.cpp) and Piper joe, from their packages."""
        return cls(
            asr=WhisperTranscriber(threads=threads),
            decoder=LlamaCppDecoder(threads=threads),
            tts=PiperSynthesizer(),
        )

    async def warm_up(self) -> None:
        """Run each model once so the first user turn does not pay for lazy initialisation."""
        await self.asr.transcribe_async(np.zeros(16_000, dtype=np.float32))
        async for _ in self.decoder.generate("Hello", max_tokens=2):
            pass
        async for _ in self.tts.stream("Hello."):
            pass

