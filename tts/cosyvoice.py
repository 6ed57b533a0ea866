"""CosyVoice2 (FunAudioLLM) streaming synthesis: text in (whole clauses, or bi-streamed as the LLM writes),
24 kHz speech out, resampled at the edge to the pipeline's rate.

CosyVoice is installed from its own repository (https://github.com/FunAudioLLM/CosyVoice) with a model
directory downloaded beforehand (e.g. CosyVoice2-0.5B); the PyPI package named ``cosyvoice`` is an
unrelated wrapper, not it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import queue
import re
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from audio.errors import AgentError
from audio.samples import StreamResampler, read_audio
from tts.segment import speakable

SPEAKER_ID = "realtime-agent"
"""The id the speaker prompt is registered under, once per loaded model."""

_LEAD_THRESHOLD = 0.01
_LEAD_MARGIN_S = 0.01
_LAST_WORD = re.compile(r"\s+\S*$")

_INSTALL_HINT = (
    "CosyVoice2 is not importable. Install it from its own repository, not from PyPI (the PyPI package named "
    "'cosyvoice' is an unrelated wrapper): git clone --recursive https://github.com/FunAudioLLM/CosyVoice, "
    "pip install -r CosyVoice/requirements.txt, and put CosyVoice and CosyVoice/third_party/Matcha-TTS on "
    "PYTHONPATH"
)

TextPieces = Generator[str, None, None]
Handover = np.ndarray | Exception | None
"""What the worker hands the consumer: a chunk at the model's rate, the model's error, or the end."""


class CosyVoice2Like(Protocol):
    """The part of ``cosyvoice.cli.cosyvoice.CosyVoice2`` the adapter uses."""

    sample_rate: int

    def add_zero_shot_spk(self, prompt_text: str, prompt_wav: object, zero_shot_spk_id: str) -> bool:
        """Register a speaker: ``prompt_wav`` is a path (current releases) or a (1, n) 16 kHz tensor (older)."""
        ...

    def inference_zero_shot(
        self,
        tts_text: str | TextPieces,
        prompt_text: str,
        prompt_wav: object,
        zero_shot_spk_id: str = "",
        stream: bool = False,
        speed: float = 1.0,
        text_frontend: bool = True,
    ) -> Generator[dict[str, Any], None, None]: ...


class CosyVoiceError(AgentError, RuntimeError):
    """CosyVoice2 failed while synthesising (or, as a subclass, could not be loaded)."""


class CosyVoiceNotInstalled(CosyVoiceError, ImportError):
    """CosyVoice's own package (from its repository, not PyPI's ``cosyvoice``) is not importable."""


class CosyVoiceFileError(CosyVoiceError, FileNotFoundError):
    """The model directory or the speaker prompt is not there."""


class WordPieces:
    """Cuts streamed text into word-complete pieces for bi-streaming: a word is passed on only once the
    whitespace after it shows it is complete, and that whitespace stays in front of the next word (CosyVoice
    tokenises each piece on its own, so a split word or a detached space would change its tokens)."""

    def __init__(self) -> None:
        self._buffer = ""
        self._started = False

    def push(self, delta: str) -> list[str]:
        self._buffer += delta
        last = _LAST_WORD.search(self._buffer)
        if last is None or last.start() == 0:
            return []
        done, self._buffer = self._buffer[: last.start()], self._buffer[last.start() :]
        return self._clean(done)

    def flush(self) -> list[str]:
        done, self._buffer = self._buffer, ""
        return self._clean(done)

    def _clean(self, piece: str) -> list[str]:
        words = speakable(piece)  # no markdown, emoji or raw URLs (CosyVoice skips its text frontend here)
        if not words:
            return []
        lead = " " if self._started and piece[:1].isspace() else ""
        self._started = True
        return [lead + words]


class CosyVoice2Synthesizer:
    """CosyVoice2 zero-shot voice cloning behind the :class:`tts.Synthesizer` interface.

    The model runs in a worker thread, one synthesis at a time, one chunk per request of the consumer: closing
    the iterator or cancelling its task returns at once, the worker closes the model's generator after the
    chunk it is computing, and the next synthesis starts then.
    """

    def __init__(
        self, model: CosyVoice2Like, *, prompt_wav: str | Path, prompt_text: str, output_rate: int | None = None
    ) -> None:
        self._model = model
        self.model_rate: int = int(model.sample_rate)
        self.sample_rate: int = output_rate or self.model_rate
        self._lock = threading.Lock()
        model.add_zero_shot_spk(prompt_text, _prompt_speech(model, Path(prompt_wav)), SPEAKER_ID)

    @classmethod
    def load(
        cls,
        model_dir: str | Path,
        *,
        prompt_wav: str | Path,
        prompt_text: str,
        output_rate: int | None = None,
        fp16: bool = False,
        factory: Callable[..., CosyVoice2Like] | None = None,
    ) -> CosyVoice2Synthesizer:
        """Load a local CosyVoice2 model directory (never a hub download) and register the speaker prompt:
        ``prompt_wav`` (at least 16 kHz, at most 30 s) spoken as ``prompt_text``. ``factory`` builds the model
        from the directory; by default CosyVoice's own ``CosyVoice2`` class.

        Raises :class:`CosyVoiceNotInstalled` (an ``ImportError``) without CosyVoice's package,
        :class:`CosyVoiceFileError` (a ``FileNotFoundError``) without the model directory or the prompt, and
        ``ValueError`` for an empty ``prompt_text`` (the caller's to check)."""
        if factory is None:
            try:
                from cosyvoice.cli.cosyvoice import CosyVoice2
            except ImportError as exc:
                raise CosyVoiceNotInstalled(f"{_INSTALL_HINT} ({exc})") from exc
            factory = CosyVoice2
        model_dir, prompt_wav = Path(model_dir), Path(prompt_wav)
        if not (model_dir / "cosyvoice2.yaml").is_file():
            raise CosyVoiceFileError(
                f"{model_dir}: not a CosyVoice2 model directory (no cosyvoice2.yaml); download one, e.g. CosyVoice2-0.5B"
            )
        if not prompt_wav.is_file():
            raise CosyVoiceFileError(f"{prompt_wav}: no such speaker prompt file")
        if not prompt_text.strip():
            raise ValueError("prompt_text must be the transcript of prompt_wav")
        model = factory(str(model_dir), fp16=fp16)
        return cls(model, prompt_wav=prompt_wav, prompt_text=prompt_text, output_rate=output_rate)

    async def stream(self, text: str, *, trim_lead: bool = True) -> AsyncGenerator[np.ndarray, None]:
        """One clause, normalised and split by CosyVoice's own text frontend."""
        if not any(c.isalnum() for c in text):
            return
        async with contextlib.aclosing(self._synthesize(text, trim_lead)) as chunks:
            async for chunk in chunks:
                yield chunk

    async def stream_text(self, texts: AsyncIterator[str], *, trim_lead: bool = True) -> AsyncGenerator[np.ndarray, None]:
        """Bi-streaming: answer text as the LLM writes it, passed on in word-complete pieces while the model
        already speaks; an error of ``texts`` is raised after the speech of the text before it."""
        pieces: queue.Queue[str | None] = queue.Queue()
        feeder = asyncio.create_task(_feed(texts, pieces))
        try:
            async with contextlib.aclosing(self._synthesize(_drain(pieces), trim_lead)) as chunks:
                async for chunk in chunks:
                    yield chunk
            await feeder
        finally:
            pieces.put(None)  # ends the model's text input, also when the feeder never ran
            feeder.cancel()

    async def _synthesize(self, tts_text: str | TextPieces, trim_lead: bool) -> AsyncGenerator[np.ndarray, None]:
        loop = asyncio.get_running_loop()
        ready: asyncio.Queue[Handover] = asyncio.Queue()
        wanted = threading.Semaphore(0)
        stop = threading.Event()

        def hand_over(item: Handover) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone under a cancelled consumer
                loop.call_soon_threadsafe(ready.put_nowait, item)

        threading.Thread(target=self._run, args=(tts_text, hand_over, wanted, stop), name="cosyvoice2", daemon=True).start()
        resampler = StreamResampler(self.model_rate, self.sample_rate)
        try:
            while True:
                wanted.release()
                item = await ready.get()
                if isinstance(item, Exception):
                    raise CosyVoiceError(f"CosyVoice2 synthesis failed: {item!r}") from item
                if item is None:
                    break
                if trim_lead:
                    if (item := self._trim_lead(item)) is None:
                        continue
                    trim_lead = False
                if len(out := resampler.process(item)):
                    yield out
            if len(tail := resampler.process(np.zeros(0, np.float32), last=True)):
                yield tail
        finally:
            stop.set()
            wanted.release()

    def _run(
        self,
        tts_text: str | TextPieces,
        hand_over: Callable[[Handover], None],
        wanted: threading.Semaphore,
        stop: threading.Event,
    ) -> None:
        """Worker thread: computes one chunk per request and closes the model's generator in the thread that
        drives it once the consumer has stopped."""
        with self._lock:
            if stop.is_set():
                return
            outputs = self._model.inference_zero_shot(tts_text, "", "", zero_shot_spk_id=SPEAKER_ID, stream=True)
            try:
                while True:
                    wanted.acquire()
                    if stop.is_set():
                        return
                    if (out := next(outputs, None)) is None:
                        hand_over(None)
                        return
                    hand_over(out["tts_speech"].cpu().numpy().reshape(-1).astype(np.float32, copy=False))
            except Exception as exc:  # noqa: BLE001 - handed to the consumer, raised there
                hand_over(exc)
            finally:
                outputs.close()

    def _trim_lead(self, audio: np.ndarray) -> np.ndarray | None:
        """The audio from just before the first sound; None while there is only silence."""
        loud = np.flatnonzero(np.abs(audio) > _LEAD_THRESHOLD)
        if not len(loud):
            return None
        return audio[max(0, loud[0] - int(_LEAD_MARGIN_S * self.model_rate)) :]


def _prompt_speech(model: CosyVoice2Like, prompt_wav: Path) -> object:
    """The speaker prompt as this CosyVoice release takes it: current releases read the file themselves
    (``prompt_wav``), CosyVoice2-era releases take 16 kHz samples as a (1, n) tensor (``prompt_speech_16k``)."""
    if "prompt_speech_16k" not in inspect.signature(model.add_zero_shot_spk).parameters:
        return str(prompt_wav)
    import torch

    return torch.from_numpy(read_audio(prompt_wav, 16_000)).unsqueeze(0)


async def _feed(texts: AsyncIterator[str], pieces: queue.Queue[str | None]) -> None:
    words = WordPieces()
    try:
        async for delta in texts:
            for piece in words.push(delta):
                pieces.put(piece)
        for piece in words.flush():
            pieces.put(piece)
    finally:
        pieces.put(None)


def _drain(pieces: queue.Queue[str | None]) -> TextPieces:
    """The model's text input: a real generator (CosyVoice bi-streams only what ``isinstance(x, Generator)``),
    read by a model thread while the event loop fills the queue."""
    while (piece := pieces.get()) is not None:
        yield piece
