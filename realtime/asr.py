"""Speech recognition with Whisper on CTranslate2 (base, or tiny.en for speed), sized for short conversational turns.

faster-whisper pads every clip to a 30 s encoder window. CTranslate2 accepts shorter windows, and
the encoder's cost scales with the window: a 10 s window transcribes a 3 s question several times faster than the
30 s one, with the same words (measured 2026-12-01 on two quiet cores, 16 spoken corpus questions of ~2.6 s: base
with a beam of 5 takes p50 229 ms in a 10 s window, 200 ms in 8 s and 190 ms in 6 or 5 s, but the shorter windows
repeat the question and lose words, so 10 s is the floor).
The window grows in 5 s steps with the clip, up to Whisper's 30 s; longer clips are cut into 30 s pieces.
"""

from __future__ import annotations

import asyncio
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from audio.samples import PIPELINE_RATE

if TYPE_CHECKING:
    from realtime.rescoring import NBestRescorer

_HOP = 160
_MIN_WINDOW_S = 10
_WINDOW_STEP_S = 5
_MAX_WINDOW_S = 30


@dataclass(frozen=True)
class Transcript:
    """What Whisper heard in a clip."""

    text: str
    no_speech_prob: float
    avg_logprob: float

    @property
    def is_speech(self) -> bool:
        """False for clips Whisper itself judges to hold no words (noise, a cough, breath)."""
        return bool(self.text) and any(c.isalnum() for c in self.text) and not (
            self.no_speech_prob > 0.6 and self.avg_logprob < -0.7
        )


def window_seconds(clip_seconds: float) -> int:
    """The encoder window for a clip: at least 10 s, in 5 s steps, at most 30 s."""
    needed = max(_MIN_WINDOW_S, math.ceil(clip_seconds + 0.5))
    return min(_MAX_WINDOW_S, _WINDOW_STEP_S * math.ceil(needed / _WINDOW_STEP_S))


WHISPER_MODELS = ("base", "tiny.en")
"""The recognition models that come in packages: Whisper base (multilingual, the accurate one) and tiny.en (English
only; measured on two cores: about half base's time per question, with more errors on noisy speech)."""


class WhisperTranscriber:
    """English Whisper transcription of 16 kHz float32 clips; safe to share between sessions.

    ``model``: one of :data:`WHISPER_MODELS` (from its package, sha256-checked), unless ``model_dir`` names a
    CTranslate2 Whisper directory. With a ``rescorer`` (and a beam of two or more) the beam's hypotheses are rescored
    by a language model (:mod:`realtime.rescoring`). Raises :class:`~realtime.assets.ModelIntegrityError` for a missing
    or corrupt model, ``ValueError`` for an unknown name or a rescorer without a beam."""

    def __init__(
        self, model_dir: str | Path | None = None, *, model: str = "base", threads: int = 2, beam_size: int = 1,
        rescorer: NBestRescorer | None = None,
    ) -> None:
        from faster_whisper import WhisperModel  # heavy import, only where speech is recognised

        from realtime.assets import WHISPER_BASE, WHISPER_TINY_EN

        assets = {"base": WHISPER_BASE, "tiny.en": WHISPER_TINY_EN}
        if model not in assets:
            raise ValueError(f"unknown recognition model {model!r}; choose one of {', '.join(WHISPER_MODELS)}")
        self.name = model if model_dir is None else Path(model_dir).name
        directory = Path(model_dir) if model_dir else assets[model].path()
        self._whisper = WhisperModel(str(directory), device="cpu", compute_type="int8", cpu_threads=threads)
        tokenizer = self._whisper.hf_tokenizer
        # An English-only model (tiny.en) has no language or task tokens: its prompt is start, then no timestamps.
        task = ("<|en|>", "<|transcribe|>") if self._whisper.model.is_multilingual else ()
        self._prompt = [tokenizer.token_to_id(t) for t in ("<|startoftranscript|>", *task, "<|notimestamps|>")]
        self._eot = tokenizer.token_to_id("<|endoftext|>")
        self._lock = threading.Lock()
        if rescorer is not None and beam_size < 2:
            raise ValueError("rescoring needs a beam of two or more hypotheses")
        self.beam_size = beam_size
        """Hypotheses kept while decoding (1: greedy)."""
        self.rescorer = rescorer

    def transcribe(self, samples: np.ndarray) -> Transcript:
        """Transcribe a clip (blocking)."""
        piece = _MAX_WINDOW_S * PIPELINE_RATE
        parts = [self._transcribe_window(samples[i : i + piece]) for i in range(0, max(len(samples), 1), piece)]
        return Transcript(
            text=" ".join(p.text for p in parts if p.text).strip(),
            no_speech_prob=min(p.no_speech_prob for p in parts),
            avg_logprob=float(np.mean([p.avg_logprob for p in parts])),
        )

    async def transcribe_async(self, samples: np.ndarray) -> Transcript:
        """Transcribe a clip in a worker thread."""
        return await asyncio.to_thread(self.transcribe, samples)

    def _transcribe_window(self, samples: np.ndarray) -> Transcript:
        import ctranslate2

        window = window_seconds(len(samples) / PIPELINE_RATE) * PIPELINE_RATE
        padded = np.zeros(window, dtype=np.float32)
        padded[: min(len(samples), window)] = samples[:window]
        features = self._whisper.feature_extractor(padded, padding=0)[:, : window // _HOP]
        batch = ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None], dtype=np.float32))
        with self._lock:
            result = self._whisper.model.generate(
                batch,
                [self._prompt],
                beam_size=self.beam_size,
                num_hypotheses=self.beam_size if self.rescorer else 1,
                max_length=max_tokens(len(samples) / PIPELINE_RATE),
                return_scores=True,
                return_no_speech_prob=True,
                suppress_blank=True,
            )[0]
        texts = [self._whisper.hf_tokenizer.decode([t for t in ids if t < self._eot]).strip() for ids in result.sequences_ids]
        best = 0
        if self.rescorer is not None and len(texts) > 1:
            from realtime.rescoring import Hypothesis

            # CTranslate2's scores are log-probabilities divided by the length (faster-whisper's cum_logprob undoes it).
            sums = [score * len(ids) for ids, score in zip(result.sequences_ids, result.scores, strict=True)]
            best = self.rescorer.best([Hypothesis(t, s) for t, s in zip(texts, sums, strict=True)])
        return Transcript(
            text=texts[best],
            no_speech_prob=float(result.no_speech_prob),
            avg_logprob=float(result.scores[best]) / max(len(result.sequences_ids[best]), 1) if result.scores else 0.0,
        )


TOKENS_PER_S = 6
"""Whisper tokens per second of speech that a transcript may hold: fast English speech is ~4 words (~5 tokens) a
second. Greedy Whisper can fall into a loop ("15th 15th 15th ..." up to its 224-token limit on a one-word prompt of
Debian's Asterisk recordings with tiny.en; a ten-word prompt nine times over with base). With the cap, the word error
rate on 533 such prompts fell from 0.715 to 0.116 (tiny.en) and from 0.120 to 0.055 (base), and base has no runaway
transcript left (benchmarks/recognition_wer.py; tiny.en still repeats a one-word prompt up to the cap 16 times)."""


def max_tokens(seconds: float) -> int:
    """The most tokens (prompt included) to generate for a clip of ``seconds``: 16 plus :data:`TOKENS_PER_S` a
    second, at most Whisper's 224."""
    return min(224, 16 + round(TOKENS_PER_S * seconds))


def stable_prefix(previous: str, current: str) -> str:
    """Words two successive partial transcripts agree on, less the last (it may still change)."""
    agreed = []
    for old, new in zip(previous.split(), current.split()):
        if old.strip(".,?!").lower() != new.strip(".,?!").lower():
            break
        agreed.append(new)
    return " ".join(agreed[:-1])


_OPEN_ENDINGS = frozenset(
    "a an the of to in on at for with from by about and or but if than as is are was were be been do does did "
    "what which who whom whose where when why how my your his her its our their this that these those "
    "can could will would should may might must please".split()
)
"""Words an utterance rarely ends on: Whisper writes "What is the capital of?" for a question cut short."""


def words(text: str | None) -> list[str]:
    """The words of ``text``, lower case, without punctuation."""
    return "".join(c if c.isalnum() or c.isspace() else " " for c in (text or "").lower()).split()


def ends_open(text: str | None) -> bool:
    """Whether a transcript stops where a sentence cannot (on "of", "the", "and", ...), or holds no word at all."""
    found = words(text)
    return not found or found[-1] in _OPEN_ENDINGS


def looks_complete(text: str) -> bool:
    """Whether a partial transcript reads as a finished utterance: three or more words, closing punctuation,
    and not ending on a word that needs a continuation (a stricter test than :func:`ends_open`: a partial is cut
    wherever the audio was)."""
    return len(words(text)) >= 3 and text.rstrip()[-1:] in ".?!" and not ends_open(text)


def same_words(a: str | None, b: str | None) -> bool:
    """The same words, whatever the case and punctuation."""
    return words(a) == words(b)
