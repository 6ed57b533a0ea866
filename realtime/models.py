"""Loading the models once per process (they are shared by every session).

Three brains: the embedded cascade (Whisper -> a text LLM on llama.cpp -> Piper); the Step-Audio-R1 audio LLM
from a local checkpoint, which hears the audio itself (Whisper then only writes the user's transcript); and a
model served on an OpenAI-compatible server (vLLM, llama.cpp's server), given either the local transcript
(a text model) or the audio itself (Step-Audio-R1).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from realtime.asr import WhisperTranscriber
from realtime.chat_client import ChatClient, ChatEndpoint
from realtime.conversation import Conversation
from realtime.decoder import DecoderError, LlamaCppDecoder, TextDecoder
from realtime.reasoning import Piece, ReplyMode
from tts import PiperSynthesizer, Synthesizer

log = logging.getLogger(__name__)

BRAINS = ("embedded", "step-audio-r1", "openai-compatible")

RemoteInput = Literal["text", "audio"]


class AudioListener(Protocol):
    """One session's turns on an audio LLM that hears the user's audio as it arrives."""

    async def hear(self, samples: np.ndarray) -> None: ...
    def rewind_to_heard(self) -> None: ...
    def reply(
        self, *, max_tokens: int, reasoning_budget: int | None = None, temperature: float = 0.0, mode: ReplyMode = "budget"
    ) -> AsyncIterator[Piece]: ...
    async def finish_turn(self, heard_answer: str) -> None: ...
    def close(self) -> None: ...


class AudioBrain(Protocol):
    """An audio LLM shared by every session."""

    def conversation(self, instructions: str, *, block_seconds: float = 2.0) -> AudioListener: ...


@dataclass
class Models:
    """The models a session runs on: ``decoder`` for the cascade, or ``audio_llm``."""

    asr: WhisperTranscriber
    decoder: TextDecoder | None
    tts: Synthesizer
    audio_llm: AudioBrain | None = None

    @classmethod
    def load(
        cls,
        brain: str = "embedded",
        model_dir: str | Path | None = None,
        *,
        endpoint: ChatEndpoint | None = None,
        remote_input: RemoteInput = "text",
        tts: Synthesizer | None = None,
        threads: int = 2,
    ) -> Models:
        """The models of ``brain`` (one of :data:`BRAINS`): ``model_dir`` is the Step-Audio-R1 checkpoint,
        ``endpoint`` the server of ``openai-compatible``, which gets the transcript or the audio itself;
        ``tts`` the voice (default: Piper)."""
        if brain == "embedded":
            return cls.load_embedded(tts=tts, threads=threads)
        if brain == "step-audio-r1":
            if model_dir is None:
                raise ValueError("--brain step-audio-r1 needs --model-dir, a local checkpoint directory")
            return cls.load_step_audio(model_dir, tts=tts, threads=threads)
        if brain == "openai-compatible":
            if endpoint is None:
                raise ValueError("--brain openai-compatible needs --base-url and --model")
            return cls.load_remote(endpoint, remote_input, tts=tts, threads=threads)
        raise ValueError(f"unknown brain {brain!r}; choose one of {', '.join(BRAINS)}")

    @classmethod
    def load_embedded(cls, *, tts: Synthesizer | None = None, threads: int = 2) -> Models:
        """Whisper base, Qwen2.5-Coder-0.5B (llama.cpp) and Piper joe, from their packages."""
        return cls(asr=WhisperTranscriber(threads=threads), decoder=LlamaCppDecoder(threads=threads), tts=tts or PiperSynthesizer())

    @classmethod
    def load_step_audio(cls, model_dir: str | Path, *, tts: Synthesizer | None = None, threads: int = 2) -> Models:
        """Step-Audio-R1 (or Step-Audio-2-mini) from ``model_dir`` (bf16 on CUDA), Whisper for transcripts, Piper."""
        from realtime.step_audio import StepAudioBrain  # torch: only where this brain is chosen

        return cls(
            asr=WhisperTranscriber(threads=threads), decoder=None, tts=tts or PiperSynthesizer(),
            audio_llm=StepAudioBrain.load(model_dir),
        )

    @classmethod
    def load_remote(
        cls, endpoint: ChatEndpoint, remote_input: RemoteInput = "text", *, tts: Synthesizer | None = None, threads: int = 2
    ) -> Models:
        """A model on an OpenAI-compatible server, given the local transcript (``text``) or the audio itself."""
        from realtime.remote_brain import RemoteAudioBrain, RemoteTextDecoder

        if remote_input not in ("text", "audio"):
            raise ValueError(f"remote input must be 'text' or 'audio', not {remote_input!r}")
        client = ChatClient(endpoint)
        audio = remote_input == "audio"
        return cls(
            asr=WhisperTranscriber(threads=threads), decoder=None if audio else RemoteTextDecoder(client),
            tts=tts or PiperSynthesizer(), audio_llm=RemoteAudioBrain(client) if audio else None,
        )

    async def warm_up(self) -> None:
        """Run each model once so the first user turn does not pay for lazy initialisation (a served decoder
        is asked for two tokens; a server that is not answering yet is only logged)."""
        await self.asr.transcribe_async(np.zeros(16_000, dtype=np.float32))
        if self.decoder is not None:
            try:
                async for _ in self.decoder.generate(Conversation().reply_prompt("Hello"), max_tokens=2):
                    pass
            except DecoderError as exc:  # a served model may come up later; each reply then reports its error
                log.warning("the language model did not answer the warm-up: %s", exc)
        async for _ in self.tts.stream("Hello."):
            pass
