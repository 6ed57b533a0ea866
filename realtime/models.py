"""Loading the models once per process (they are shared by every session).

Two brains: the embedded cascade (Whisper -> a text LLM on llama.cpp -> Piper), and the Step-Audio-R1 audio
LLM from a local checkpoint, which hears the audio itself (Whisper then only writes the user's transcript).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from realtime.asr import WhisperTranscriber
from realtime.decoder import LlamaCppDecoder, TextDecoder
from tts import PiperSynthesizer, Synthesizer

if TYPE_CHECKING:
    from realtime.step_audio import StepAudioBrain

BRAINS = ("embedded", "step-audio-r1")


@dataclass
class Models:
    """The models a session runs on: ``decoder`` for the cascade, or ``audio_llm``."""

    asr: WhisperTranscriber
    decoder: TextDecoder | None
    tts: Synthesizer
    audio_llm: StepAudioBrain | None = None

    @classmethod
    def load(cls, brain: str = "embedded", model_dir: str | Path | None = None, *, threads: int = 2) -> Models:
        """The models of ``brain`` (one of :data:`BRAINS`); ``model_dir`` is the Step-Audio-R1 checkpoint."""
        if brain == "embedded":
            return cls.load_embedded(threads=threads)
        if brain == "step-audio-r1":
            if model_dir is None:
                raise ValueError("--brain step-audio-r1 needs --model-dir, a local checkpoint directory")
            return cls.load_step_audio(model_dir, threads=threads)
        raise ValueError(f"unknown brain {brain!r}; choose one of {', '.join(BRAINS)}")

    @classmethod
    def load_embedded(cls, *, threads: int = 2) -> Models:
        """Whisper base, Qwen2.5-Coder-0.5B (llama.cpp) and Piper joe, from their packages."""
        return cls(asr=WhisperTranscriber(threads=threads), decoder=LlamaCppDecoder(threads=threads), tts=PiperSynthesizer())

    @classmethod
    def load_step_audio(cls, model_dir: str | Path, *, threads: int = 2) -> Models:
        """Step-Audio-R1 (or Step-Audio-2-mini) from ``model_dir`` (bf16 on CUDA), Whisper for transcripts, Piper."""
        from realtime.step_audio import StepAudioBrain  # torch: only where this brain is chosen

        return cls(
            asr=WhisperTranscriber(threads=threads), decoder=None, tts=PiperSynthesizer(),
            audio_llm=StepAudioBrain.load(model_dir),
        )

    async def warm_up(self) -> None:
        """Run each model once so the first user turn does not pay for lazy initialisation."""
        await self.asr.transcribe_async(np.zeros(16_000, dtype=np.float32))
        if self.decoder is not None:
            async for _ in self.decoder.generate("Hello", max_tokens=2):
                pass
        async for _ in self.tts.stream("Hello."):
            pass
