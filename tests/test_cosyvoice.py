"""The CosyVoice2 adapter: speaker prompt caching, resampling at the edge, bi-streaming, pacing, cancellation.

The real CosyVoice2 cannot run here: it is not installable from PyPI in a working form and its weights come
from a model hub. ``StandInCosyVoice2`` stands in for it with the same methods and signatures as
``cosyvoice.cli.cosyvoice.CosyVoice2`` and its streaming behaviour; everything else is the adapter's real code,
reached through ``CosyVoice2Synthesizer.load``.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import types
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from audio.samples import write_wav
from tts import CosyVoice2Synthesizer, CosyVoiceError, WordPieces

torch = pytest.importorskip("torch")

RATE = 24_000
LEAD_S = 0.2  # silence before the first word
WORD_S = 0.3  # speech per word
CHUNK_S = 0.5  # audio per streamed chunk
COMPUTE_S = 0.04  # compute time per chunk
F0 = 200.0
TEXT = "The quick brown fox jumps over the lazy dog near the river bank today."


class StandInCosyVoice2:
    """Stands in for ``cosyvoice.cli.cosyvoice.CosyVoice2`` (current upstream signatures).

    Speech-like audio at 24 kHz: LEAD_S of silence, then WORD_S of voiced sound per word (a 200 Hz harmonic tone
    under a syllable envelope). With ``stream=True`` it yields {'tts_speech': (1, n) float32 tensor} chunks of
    CHUNK_S as they accumulate, each after COMPUTE_S of work, and reads a text generator (bi-streaming) piece by
    piece while it speaks, as the real model's LLM thread does. It records what the adapter does to it.
    """

    sample_rate = RATE

    def __init__(self, model_dir: str, load_jit: bool = False, load_trt: bool = False, fp16: bool = False) -> None:
        self.model_dir = model_dir
        self.speakers: dict[str, str] = {}
        self.registrations: list[tuple[str, Any, str]] = []
        self.calls: list[dict[str, Any]] = []
        self.seen: list[tuple[str, float]] = []  # text pieces and when the model read them
        self.computed = 0
        self.closed_early = 0
        self.active = self.max_active = 0
        self.fail_at: int | None = None  # raise while computing this chunk (1-based, over the model's life)
        self.gate = threading.Event()  # a test closes it to hold the model inside a chunk
        self.gate.set()
        self.held = False

    def add_zero_shot_spk(self, prompt_text: str, prompt_wav: Any, zero_shot_spk_id: str) -> bool:
        assert zero_shot_spk_id != "", "do not use empty zero_shot_spk_id"
        self.registrations.append((prompt_text, prompt_wav, zero_shot_spk_id))
        self.speakers[zero_shot_spk_id] = prompt_text
        return True

    def inference_zero_shot(
        self,
        tts_text: Any,
        prompt_text: str,
        prompt_wav: Any,
        zero_shot_spk_id: str = "",
        stream: bool = False,
        speed: float = 1.0,
        text_frontend: bool = True,
    ) -> Iterator[dict[str, Any]]:
        if zero_shot_spk_id not in self.speakers:
            raise KeyError(zero_shot_spk_id)
        thread = threading.current_thread().name
        self.calls.append(
            {"text": tts_text, "prompt_text": prompt_text, "spk": zero_shot_spk_id, "stream": stream, "thread": thread}
        )
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            pending = np.zeros(int(LEAD_S * RATE), np.float32)
            # Like the real frontend: only a true generator is bi-streamed; anything else is text.
            pieces = tts_text if isinstance(tts_text, Generator) else iter([tts_text.strip()])
            for piece in pieces:
                self.seen.append((piece, time.monotonic()))
                for _ in piece.split():
                    pending = np.concatenate([pending, word_speech()])
                while stream and len(pending) >= CHUNK_S * RATE:
                    chunk, pending = pending[: int(CHUNK_S * RATE)], pending[int(CHUNK_S * RATE) :]
                    yield self._compute(chunk)
            yield self._compute(pending)
        except GeneratorExit:
            self.closed_early += 1
            raise
        finally:
            self.active -= 1

    def _compute(self, chunk: np.ndarray) -> dict[str, Any]:
        self.held = not self.gate.is_set()
        self.gate.wait()
        time.sleep(COMPUTE_S)
        self.computed += 1
        if self.computed == self.fail_at:
            raise RuntimeError("CUDA out of memory")
        return {"tts_speech": torch.from_numpy(chunk.copy()).unsqueeze(0)}


class StandInCosyVoice2Era(StandInCosyVoice2):
    """CosyVoice2-era releases take the prompt as 16 kHz samples in a (1, n) tensor."""

    def add_zero_shot_spk(self, prompt_text: str, prompt_speech_16k: Any, zero_shot_spk_id: str) -> bool:  # type: ignore[override]
        return super().add_zero_shot_spk(prompt_text, prompt_speech_16k, zero_shot_spk_id)


def word_speech() -> np.ndarray:
    t = np.arange(int(WORD_S * RATE)) / RATE
    voiced = sum(np.sin(2 * np.pi * F0 * k * t) / k for k in (1, 2, 3))
    return (0.3 * np.sin(np.pi * t / WORD_S) * voiced).astype(np.float32)


@pytest.fixture
def paths(tmp_path: Path) -> tuple[Path, Path]:
    model_dir = tmp_path / "CosyVoice2-0.5B"
    model_dir.mkdir()
    (model_dir / "cosyvoice2.yaml").write_text("sample_rate: 24000\n")
    prompt = tmp_path / "prompt.wav"
    write_wav(prompt, 0.3 * np.sin(2 * np.pi * 150 * np.arange(RATE) / RATE), RATE)
    return model_dir, prompt


def load(
    paths: tuple[Path, Path], output_rate: int | None = None, model_class: type = StandInCosyVoice2
) -> tuple[CosyVoice2Synthesizer, StandInCosyVoice2]:
    """The adapter through its real ``load`` path, with the stand-in injected as the model factory."""
    made: list[StandInCosyVoice2] = []

    def factory(model_dir: str, **options: Any) -> StandInCosyVoice2:
        made.append(model_class(model_dir, **options))
        return made[-1]

    synth = CosyVoice2Synthesizer.load(
        paths[0], prompt_wav=paths[1], prompt_text="A prompt of one second.", output_rate=output_rate, factory=factory
    )
    return synth, made[0]


async def collect(chunks: AsyncIterator[np.ndarray]) -> np.ndarray:
    out = [chunk async for chunk in chunks]
    assert all(c.dtype == np.float32 and c.ndim == 1 for c in out)
    return np.concatenate(out)


async def words(text: str, delay: float = 0.0, log: list[float] | None = None) -> AsyncIterator[str]:
    """Answer text as an LLM streams it: tokens that split words, with time between them."""
    for i in range(0, len(text), 3):
        await asyncio.sleep(delay)
        if log is not None:
            log.append(time.monotonic())
        yield text[i : i + 3]


async def eventually(condition: Any, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def peak_hz(audio: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio))
    return float(np.argmax(spectrum) * rate / len(audio))


@pytest.mark.parametrize("output_rate", [None, 16_000, 48_000])
async def test_clauses_at_output_rate_with_the_speaker_registered_once(paths, output_rate) -> None:
    synth, model = load(paths, output_rate)
    rate = output_rate or RATE
    assert synth.sample_rate == rate and synth.model_rate == RATE
    n_words = len(TEXT.split())
    for _ in range(2):
        audio = await collect(synth.stream(TEXT, trim_lead=False))
        assert abs(len(audio) - (LEAD_S + n_words * WORD_S) * rate) <= 2
        assert abs(peak_hz(audio, rate) - F0) < 2  # resampled, not reinterpreted
    assert model.registrations == [("A prompt of one second.", str(paths[1]), "realtime-agent")]
    assert model.model_dir == str(paths[0])
    assert all(c["spk"] == "realtime-agent" and c["stream"] and c["prompt_text"] == "" for c in model.calls)
    assert all(c["thread"] == "cosyvoice2" for c in model.calls)


async def test_trim_lead_drops_the_silence_before_the_first_word(paths) -> None:
    synth, _ = load(paths, 16_000)
    audio = await collect(synth.stream("Two words.", trim_lead=True))
    assert 2 * WORD_S - 0.05 < len(audio) / 16_000 < 2 * WORD_S + 0.02


async def test_nothing_to_say_never_reaches_the_model(paths) -> None:
    synth, model = load(paths)
    assert [c async for c in synth.stream(" ... ")] == []
    assert model.calls == []


async def test_old_release_gets_the_prompt_as_16k_samples(paths) -> None:
    _, model = load(paths, model_class=StandInCosyVoice2Era)
    (_, prompt, _), = model.registrations
    assert isinstance(prompt, torch.Tensor) and prompt.dtype == torch.float32 and tuple(prompt.shape) == (1, 16_000)


def test_word_pieces_never_split_a_word() -> None:
    pieces = WordPieces()
    out = [p for delta in ["Hel", "lo wor", "ld, **how** a", "re you", "?\n\nFine 🎉"] for p in pieces.push(delta)]
    out += pieces.flush()
    assert out == ["Hello", " world, how", " are", " you? Fine"]


async def test_bi_streaming_speaks_while_the_text_is_still_coming(paths) -> None:
    synth, model = load(paths, 16_000)
    produced: list[float] = []
    first_audio = None
    chunks = []
    async for chunk in synth.stream_text(words(TEXT, delay=0.02, log=produced), trim_lead=False):
        first_audio = first_audio or time.monotonic()
        chunks.append(chunk)
    audio = np.concatenate(chunks)
    pieces = [piece for piece, _ in model.seen]
    assert isinstance(model.calls[0]["text"], Generator)
    assert "".join(pieces) == TEXT and all(p.split()[-1] in TEXT.split() for p in pieces)
    assert model.seen[0][1] < produced[-1] and first_audio < produced[-1]
    assert abs(len(audio) - (LEAD_S + len(TEXT.split()) * WORD_S) * 16_000) <= 2


async def test_a_failing_text_source_fails_the_reply_after_its_speech(paths) -> None:
    async def broken() -> AsyncIterator[str]:
        yield "Hello there "
        raise ValueError("LLM died")

    synth, model = load(paths)
    received = []
    with pytest.raises(ValueError, match="LLM died"):
        async for chunk in synth.stream_text(broken()):
            received.append(chunk)
    assert received and [p for p, _ in model.seen] == ["Hello there"]


async def test_chunks_are_computed_one_request_at_a_time(paths) -> None:
    synth, model = load(paths)
    received = 0
    async for _ in synth.stream("A slow consumer reads this."):
        received += 1
        assert model.computed - received <= 1
        await asyncio.sleep(3 * COMPUTE_S)  # the model does not run ahead of it
        assert model.computed - received <= 1


@pytest.mark.parametrize("how", ["aclose", "cancel"])
async def test_cancel_stops_the_model_within_a_chunk_and_the_next_call_works(paths, how) -> None:
    synth, model = load(paths)
    received: list[np.ndarray] = []
    chunks = synth.stream(TEXT * 3)
    if how == "aclose":
        async for chunk in chunks:
            received.append(chunk)
            if len(received) == 2:
                break
        await chunks.aclose()
    else:
        async def consume() -> None:
            async for chunk in chunks:
                received.append(chunk)
                if len(received) == 2:
                    model.gate.clear()  # the third chunk will hang in the model until the gate opens

        task = asyncio.create_task(consume())
        await eventually(lambda: model.held)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task  # returns while the model is still inside its chunk: cancelling does not wait for it
        assert model.active == 1
        model.gate.set()
    await eventually(lambda: model.closed_early == 1 and model.active == 0)
    assert len(received) == 2 and model.computed <= 3
    audio = await collect(synth.stream("Still here.", trim_lead=False))
    assert abs(len(audio) - (LEAD_S + 2 * WORD_S) * RATE) <= 2
    assert len(model.registrations) == 1


async def test_cancel_while_bi_streaming_ends_the_models_text(paths) -> None:
    produced: list[float] = []

    async def endless() -> AsyncIterator[str]:
        while True:
            await asyncio.sleep(0.01)
            produced.append(time.monotonic())
            yield "and on "

    synth, model = load(paths)
    async with asyncio.timeout(5):
        async for _ in synth.stream_text(endless()):
            break
    await eventually(lambda: model.active == 0)
    count = len(produced)
    await asyncio.sleep(0.1)
    assert len(produced) == count  # the text source is no longer read
    assert len(await collect(synth.stream("Next."))) > 0


async def test_one_synthesis_at_a_time_on_the_shared_model(paths) -> None:
    synth, model = load(paths)
    first, second = await asyncio.gather(
        collect(synth.stream(TEXT, trim_lead=False)), collect(synth.stream("Two words.", trim_lead=False))
    )
    assert model.max_active == 1
    assert len(first) == round((LEAD_S + len(TEXT.split()) * WORD_S) * RATE)
    assert len(second) == round((LEAD_S + 2 * WORD_S) * RATE)


async def test_model_errors_surface_clearly_and_release_the_model(paths) -> None:
    synth, model = load(paths)
    model.fail_at = 2
    with pytest.raises(CosyVoiceError, match="CosyVoice2 synthesis failed.*CUDA out of memory"):
        await collect(synth.stream(TEXT))
    assert len(await collect(synth.stream("Recovered."))) > 0


@pytest.mark.parametrize("module", [None, types.ModuleType("cosyvoice")])  # absent, or the unrelated PyPI package
def test_missing_package_says_where_to_get_it(paths, monkeypatch, module) -> None:
    monkeypatch.setitem(sys.modules, "cosyvoice", module)
    with pytest.raises(ImportError) as error:
        CosyVoice2Synthesizer.load(paths[0], prompt_wav=paths[1], prompt_text="Hi.")
    message = str(error.value)
    assert "git clone --recursive https://github.com/FunAudioLLM/CosyVoice" in message and "not from PyPI" in message


def test_missing_model_dir_or_prompt_is_a_clear_error(paths, tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="not a CosyVoice2 model directory"):
        CosyVoice2Synthesizer.load(tmp_path / "nowhere", prompt_wav=paths[1], prompt_text="Hi.", factory=StandInCosyVoice2)
    with pytest.raises(FileNotFoundError, match="speaker prompt"):
        CosyVoice2Synthesizer.load(paths[0], prompt_wav=tmp_path / "none.wav", prompt_text="Hi.", factory=StandInCosyVoice2)
    with pytest.raises(ValueError, match="transcript"):
        CosyVoice2Synthesizer.load(paths[0], prompt_wav=paths[1], prompt_text=" ", factory=StandInCosyVoice2)


def test_the_cli_asks_for_the_voice_options_and_names_the_missing_package(tmp_path) -> None:
    import subprocess

    voice = tmp_path / "voice.wav"
    write_wav(voice, np.zeros(16_000, np.float32), 16_000)
    run = [sys.executable, "-m", "realtime.cli", "respond", str(voice), "-o", str(tmp_path / "out.wav"), "--tts", "cosyvoice2"]
    missing = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "--tts-model-dir" in missing.stderr
    options = ["--tts-model-dir", str(tmp_path), "--tts-prompt-wav", str(voice), "--tts-prompt-text", "Hello."]
    absent = subprocess.run(run + options, capture_output=True, text=True, timeout=60)
    assert absent.returncode == 2 and "not from PyPI" in absent.stderr and "Traceback" not in absent.stderr, absent.stderr


@pytest.mark.slow
async def test_the_session_bi_streams_the_whole_answer_into_one_synthesis(models, say, paths, tmp_path) -> None:
    """The real session (embedded ASR and LLM) speaking through the adapter on the stand-in: one synthesis per
    reply, fed clause by clause as the LLM writes, every clause credited with audio and kept in the history."""
    from audio.samples import read_audio
    from realtime.models import Models
    from realtime.respond import respond
    from tests.conftest import silence, write_question

    synth, model = load(paths)
    voice = Models(asr=models.asr, brain=models.brain, tts=synth)
    asked = say("What is the capital of Japan?", "flite:slt")
    question = write_question(tmp_path / "q.wav", silence(0.4), asked, silence(0.3))
    result = await respond(question, tmp_path / "reply.wav", voice)
    [turn] = result.turns
    assert turn["status"] == "completed" and "Tokyo" in turn["reply_text"]
    [call] = model.calls
    assert isinstance(call["text"], Generator) and call["stream"] is True
    assert " ".join(piece for piece, _ in model.seen).split() == turn["reply_text"].split()
    assert [text for role, text in result.conversation] == [turn["user_text"], turn["reply_text"]]
    reply = read_audio(tmp_path / "reply.wav", RATE)
    spoken = np.flatnonzero(np.abs(reply) > 0.01)
    words = len(turn["reply_text"].split())
    assert (spoken[-1] - spoken[0]) / RATE == pytest.approx(words * WORD_S, abs=0.1)
    assert turn["stages_ms"]["first_tts_audio"] is not None


@pytest.mark.slow
async def test_a_barge_in_cuts_a_bi_streamed_answer_to_the_words_played(models, say, paths, tmp_path) -> None:
    from realtime.models import Models
    from realtime.respond import respond
    from tests.conftest import silence, write_question

    synth, model = load(paths)
    voice = Models(asr=models.asr, brain=models.brain, tts=synth)
    story = say("Please tell me a long story about a brave little dragon.", "flite:slt")
    stop = say("Wait, stop please.", "flite:slt")
    question = write_question(tmp_path / "q.wav", silence(0.3), story, silence(3.0), stop, silence(0.3))
    result = await respond(question, tmp_path / "reply.wav", voice)
    first = result.turns[0]
    # The synthesis is closed early when the story is still being spoken into it at the interruption; a short story may
    # have been synthesised whole by then (its audio still playing): either way the history is cut to what was played
    # (that a cancelled synthesis stops within one chunk is tested above, on its own).
    assert result.stats.get("interrupted", 0) == 1 and model.closed_early <= 1
    told = [text for role, text in result.conversation if role == "assistant"][0].split()
    written = " ".join(piece for piece, _ in model.seen).split()
    # about 2.5 s of the reply was played (0.3 s a word here): the history keeps those words, not the rest
    assert 3 <= len(told) < len(written) and told == written[: len(told)], (told, written, first)
