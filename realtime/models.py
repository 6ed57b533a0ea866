"""Loading the models once per process (they are shared by every session).

Three brains: the embedded cascade (Whisper -> a text LLM on llama.cpp -> Piper); the Step-Audio-R1 audio LLM
from a local checkpoint, which hears the audio itself (Whisper then only writes the user's transcript); and a
model served on an OpenAI-compatible server (vLLM, llama.cpp's server), given either the local transcript
(a text model) or the audio itself (Step-Audio-R1).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from realtime.asr import WhisperTranscriber
from realtime.brain import Brain, ReplyRequest
from realtime.cascade import CascadeBrain
from realtime.chat_client import ChatClient, ChatEndpoint
from realtime.conversation import Conversation
from realtime.decoder import DecoderError, LlamaCppDecoder
from realtime.priority import FirstAudioFirst
from tts import PiperSynthesizer, Synthesizer
from vad.smart_turn import SmartTurn

if TYPE_CHECKING:
    from realtime.assets import ModelAsset

log = logging.getLogger(__name__)

BRAINS = ("embedded", "step-audio-r1", "openai-compatible")

RemoteInput = Literal["text", "audio"]

LLM_PROFILES = ("fast", "accurate")
"""The embedded language model: ``fast`` is Qwen2.5-Coder-0.5B-Instruct Q4_K_M (~20 tok/s decode on two cores),
``accurate`` Qwen2.5-Coder-1.5B-Instruct Q4_K_M (~10 tok/s, first clause ~250 ms later; right far more often: see the
README's profile table, measured by ``realtime bench --profiles``)."""


def llm_asset(profile: str) -> ModelAsset:
    """The model asset of an :data:`LLM_PROFILES` name; raises ``ValueError`` for another name."""
    from realtime.assets import QWEN_05B_GGUF, QWEN_15B_GGUF

    assets = {"fast": QWEN_05B_GGUF, "accurate": QWEN_15B_GGUF}
    if profile not in assets:
        raise ValueError(f"unknown language model profile {profile!r}; choose one of {', '.join(LLM_PROFILES)}")
    return assets[profile]


@dataclass(frozen=True)
class Recognition:
    """Which Whisper (:data:`~realtime.asr.WHISPER_MODELS`) writes the final transcript of a turn and which the partial
    transcripts while the user speaks (None: the same model). By default base writes the final transcript and tiny.en
    the partials (half base's time on two cores, so they crowd the reply less; their words are only prefilled, never
    answered unconfirmed). tiny.en for the final one too answers ~200 ms sooner, with the same round-trip accuracy on 32 of the
    bench's questions but more mishearings (flite's "capital of France" became "cap that you put to our friends").

    The final transcript is decoded with a beam of ``beam`` hypotheses (1: greedy); the partials are always greedy.
    Measured on two cores (``benchmarks.recognition_wer``, every profile on each clip in turn): on the bench's 86
    spoken questions a beam of 5 cut base's word error rate from 0.175 to 0.127 for +13 ms a question (p50; +136 ms
    p90); on 200 real Asterisk recordings from 0.067 to 0.064 for +65 ms.

    With ``rescore`` the final transcript's hypotheses are rescored by a small language model (:mod:`realtime.rescoring`;
    needs a beam of two or more) in a worker process: more questions are heard word for word, for ~700 MB of memory,
    ~16 s more at start and replies ~55 ms later at the median on two cores (the scoring; measured in the README's
    answer-quality section)."""

    final: str = "base"
    partial: str | None = "tiny.en"
    beam: int = 5
    rescore: bool = False


@dataclass
class Models:
    """The models a session runs on: ``asr`` writes the user's words, ``brain`` the replies, ``tts`` speaks them;
    ``partial_asr``, when given, makes the partial transcripts while the user speaks (a faster model than ``asr``,
    and not queued behind it)."""

    asr: WhisperTranscriber
    brain: Brain
    tts: Synthesizer
    partial_asr: WhisperTranscriber | None = None
    turn_detector: SmartTurn | None = None
    """The audio end-of-turn model of ``semantic_vad`` (None: the wording of the transcript alone judges a pause)."""
    priority: FirstAudioFirst = field(default_factory=FirstAudioFirst)
    """Which replies go first when the sessions sharing these models compete for the CPU."""

    @property
    def listening_asr(self) -> WhisperTranscriber:
        """The model of the partial transcripts."""
        return self.partial_asr or self.asr

    @classmethod
    def load(
        cls,
        brain: str = "embedded",
        model_dir: str | Path | None = None,
        *,
        endpoint: ChatEndpoint | None = None,
        remote_input: RemoteInput = "text",
        tts: Synthesizer | None = None,
        asr: Recognition | None = None,
        llm: str = "fast",
        threads: int = 2,
    ) -> Models:
        """The models of ``brain`` (one of :data:`BRAINS`): ``model_dir`` is the Step-Audio-R1 checkpoint,
        ``endpoint`` the server of ``openai-compatible``, which gets the transcript or the audio itself;
        ``tts`` the voice (default: Piper); ``asr`` the recognition models (default: :class:`Recognition`'s);
        ``llm`` the embedded language model's profile (:data:`LLM_PROFILES`)."""
        if brain == "embedded":
            return cls.load_embedded(tts=tts, asr=asr, llm=llm, threads=threads)
        if brain == "step-audio-r1":
            if model_dir is None:
                raise ValueError("--brain step-audio-r1 needs --model-dir, a local checkpoint directory")
            return cls.load_step_audio(model_dir, tts=tts, asr=asr, threads=threads)
        if brain == "openai-compatible":
            if endpoint is None:
                raise ValueError("--brain openai-compatible needs --base-url and --model")
            return cls.load_remote(endpoint, remote_input, tts=tts, asr=asr, threads=threads)
        raise ValueError(f"unknown brain {brain!r}; choose one of {', '.join(BRAINS)}")

    @classmethod
    def load_embedded(
        cls, *, tts: Synthesizer | None = None, asr: Recognition | None = None, llm: str = "fast", threads: int = 2
    ) -> Models:
        """Whisper, Qwen2.5-Coder (0.5B for ``fast``, 1.5B for ``accurate``; llama.cpp) and Piper joe, from their
        packages. Raises ``ValueError`` for an unknown ``llm`` profile."""
        decoder = LlamaCppDecoder(llm_asset(llm).path("model.gguf"), threads=threads)
        return cls._with(CascadeBrain(decoder), tts, asr, threads)

    @classmethod
    def load_step_audio(
        cls, model_dir: str | Path, *, tts: Synthesizer | None = None, asr: Recognition | None = None, threads: int = 2
    ) -> Models:
        """Step-Audio-R1 (or Step-Audio-2-mini) from ``model_dir`` (bf16 on CUDA), Whisper for transcripts, Piper."""
        from realtime.step_audio import StepAudioBrain  # torch: only where this brain is chosen

        return cls._with(StepAudioBrain.load(model_dir), tts, asr, threads)

    @classmethod
    def load_remote(
        cls, endpoint: ChatEndpoint, remote_input: RemoteInput = "text", *, tts: Synthesizer | None = None,
        asr: Recognition | None = None, threads: int = 2,
    ) -> Models:
        """A model on an OpenAI-compatible server, given the local transcript (``text``) or the audio itself."""
        from realtime.remote_brain import RemoteAudioBrain, RemoteTextDecoder

        if remote_input not in ("text", "audio"):
            raise ValueError(f"remote input must be 'text' or 'audio', not {remote_input!r}")
        client = ChatClient(endpoint)
        brain: Brain = RemoteAudioBrain(client) if remote_input == "audio" else CascadeBrain(RemoteTextDecoder(client))
        return cls._with(brain, tts, asr, threads)

    @classmethod
    def _with(cls, brain: Brain, tts: Synthesizer | None, asr: Recognition | None, threads: int) -> Models:
        """``brain`` with the recognition models of ``asr`` and the voice ``tts`` (default: Piper)."""
        asr = asr or Recognition()
        rescorer = None
        if asr.rescore:
            from realtime.rescoring import NBestRescorer

            rescorer = NBestRescorer()
        final = WhisperTranscriber(model=asr.final, threads=threads, beam_size=asr.beam, rescorer=rescorer)
        partial = None if asr.partial in (None, asr.final) else WhisperTranscriber(model=asr.partial, threads=threads)
        return cls(asr=final, brain=brain, tts=tts or PiperSynthesizer(), partial_asr=partial)

    def hear_turn_ends(self) -> None:
        """Load the audio end-of-turn model (Smart Turn v3.2, sha256-checked; one thread, the other core is the
        reply's) for ``semantic_vad``. Without it a pause is judged on the transcript's wording alone: on the
        benchmark's synthetic voices the model judged a third of finished questions unfinished (each then waits the
        long silence) and caught few cut-off ones, so it is opt-in (``realtime serve --smart-turn``)."""
        from realtime.assets import SMART_TURN

        self.turn_detector = SmartTurn(SMART_TURN.path("smart-turn-v3.2-cpu.onnx"), threads=1)

    async def warm_up(self) -> None:
        """Run each model once so the first user turn does not pay for lazy initialisation: the brain answers a
        typed "Hello" with two tokens on a session of its own (a server that is not answering yet is only logged)."""
        for asr in dict.fromkeys((self.asr, self.listening_asr)):
            await asr.transcribe_async(np.zeros(16_000, dtype=np.float32))
        if self.turn_detector is not None:
            await self.turn_detector.probability_async(np.zeros(16_000, dtype=np.float32))
        session = self.brain.open(Conversation())
        try:
            async for _ in session.reply(ReplyRequest("Hello", max_tokens=2)):
                pass
        except DecoderError as exc:  # a served model may come up later; each reply then reports its error
            log.warning("the language model did not answer the warm-up: %s", exc)
        finally:
            session.close()
        async for _ in self.tts.stream("Hello."):
            pass
