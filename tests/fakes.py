"""Small fakes for the middle of the test pyramid: a recogniser, a decoder, a synthesiser, a VAD and a sink that run
in microseconds, on a virtual clock, so the session's races are tested without real time or models.

Speech is encoded in the samples: :func:`speak` turns words into 0.3 s of a constant level per word (the level names
the word), separated by 40 ms of silence; :class:`FakeAsr` reads the words back from any slice of that audio.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Sequence

import numpy as np

from audio import PIPELINE_RATE
from realtime.asr import Transcript
from realtime.cascade import CascadeBrain
from realtime.decoder import Hold, never
from realtime.events import AudioOut, OutputItem
from realtime.latency import now
from realtime.models import Models
from realtime.respond import VirtualSpeaker
from realtime.session import SessionConfig
from realtime.session.orchestrator import VoiceSession
from realtime.session.output import AudioSink, Playback, PlayedCounter
from realtime.tools import NO_TOOLS, ToolUse
from vad import VadWindow

WORD_S = 0.3
GAP_S = 0.04
_BASE, _STEP = 0.2, 0.0005
WINDOW = 512


class Vocabulary:
    def __init__(self) -> None:
        self.words: list[str] = []

    def level(self, word: str) -> float:
        if word not in self.words:
            self.words.append(word)
        return _BASE + _STEP * self.words.index(word)

    def word(self, level: float) -> str:
        return self.words[round((level - _BASE) / _STEP)]


VOCABULARY = Vocabulary()


def speak(text: str) -> np.ndarray:
    """``text`` as fake speech at 16 kHz."""
    parts = []
    for word in text.split():
        parts += [np.full(int(WORD_S * PIPELINE_RATE), VOCABULARY.level(word), np.float32), silence(GAP_S)]
    return np.concatenate(parts)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * PIPELINE_RATE), np.float32)


class FakeAsr:
    """Reads :func:`speak`'s words back; ``fail`` makes the next transcription raise."""

    def __init__(self) -> None:
        self.calls = 0
        self.fail: Exception | None = None
        self.rewrite: Callable[[str], str] = lambda text: text
        """What the recogniser makes of the words it read (a mishearing)."""

    async def transcribe_async(self, samples: np.ndarray) -> Transcript:
        self.calls += 1
        await asyncio.sleep(0)
        if self.fail is not None:
            raise self.fail
        levels = np.round(samples, 4)
        onsets = np.flatnonzero((levels > 0) & (levels != np.concatenate([[0.0], levels[:-1]])))
        words = [VOCABULARY.word(float(levels[i])) for i in onsets]
        text = self.rewrite(" ".join(words))
        return Transcript(text, 0.0 if text else 0.99, -0.1 if text else -1.0)


class FakeDecoder:
    """A text decoder that answers from ``answers`` (the user's last words -> the answer), a word per step. An answer
    may hold tool calls as the embedded model writes them (``<tool_call> {...} </tool_call>``)."""

    tools_in_prompt = True

    def __init__(self, answers: dict[str, str] | None = None, default: str = "I am not sure.") -> None:
        self.answers = answers or {}
        self.default = default
        self.prompts: list[str] = []
        self.tools: list[ToolUse] = []
        """The tools each generation was offered."""
        self.prefilled: list[str] = []
        self.fail_after: int | None = None
        """Raise after this many words (a decoder failing mid-reply)."""
        self.gate: asyncio.Event | None = None
        """When given, words after the first ``hold_after`` wait for it (a slow decoder the test releases)."""
        self.hold_after = 0
        self.prefill_gate: asyncio.Event | None = None
        """When given, every prefill waits for it (a slow prefill)."""
        self.prefill_holds: list[Hold] = []
        """The ``hold`` each prefill was given."""
        self.held: list[bool] = []
        """What the reply's ``hold`` said before each word of the last generation."""

    async def prefill(self, prompt: str, *, hold: Hold = never) -> None:
        self.prefilled.append(prompt)
        self.prefill_holds.append(hold)
        if self.prefill_gate is not None:
            await self.prefill_gate.wait()

    async def generate(
        self, prompt: str, *, max_tokens: int, stop: Sequence[str] = (), temperature: float = 0.0, tools: ToolUse = NO_TOOLS,
        hold: Hold = never,
    ) -> AsyncGenerator[str, None]:
        self.prompts.append(prompt)
        self.tools.append(tools)
        self.held = []
        last = prompt.removesuffix("<|im_start|>assistant\n").rsplit("<|im_start|>", 1)[-1]  # the turn answered
        question = last.partition("\n")[2].split("<|im_end|>", 1)[0].strip()
        answer = self.answers.get(question, self.default)
        for index, word in enumerate(answer.split()):
            if self.fail_after is not None and index >= self.fail_after:
                raise RuntimeError("the decoder broke")
            if self.gate is not None and index >= self.hold_after:
                await self.gate.wait()
            await asyncio.sleep(0)
            self.held.append(hold())
            yield ("" if index == 0 else " ") + word


class FakeTts:
    """Speaks each word as 0.25 s of a constant level at 24 kHz, a chunk per word."""

    sample_rate = 24_000
    word_samples = 6_000

    def __init__(self) -> None:
        self.spoken: list[str] = []

    async def stream(self, text: str, *, trim_lead: bool = True) -> AsyncGenerator[np.ndarray, None]:
        self.spoken.append(text)
        for _ in text.split():
            await asyncio.sleep(0)
            yield np.full(self.word_samples, 0.1, np.float32)


class FakeVad:
    """Speech where the level is above 0.05, in 32 ms windows."""

    def __init__(self) -> None:
        self._pending = np.zeros(0, np.float32)
        self._seen = 0

    def push(self, samples: np.ndarray) -> list[VadWindow]:
        self._pending = np.concatenate([self._pending, samples])
        windows = []
        while len(self._pending) >= WINDOW:
            window, self._pending = self._pending[:WINDOW], self._pending[WINDOW:]
            windows.append(VadWindow(self._seen, self._seen + WINDOW, 1.0 if np.abs(window).max() > 0.05 else 0.0))
            self._seen += WINDOW
        return windows


class FakeSink:
    """A sink that has played what the test says: everything it was given (``played_share`` 1.0) or a share of it."""

    def __init__(self, rate: int = 24_000) -> None:
        self.rate = rate
        self.items: list[AudioOut] = []
        self.played_share = 1.0
        self.playing = False
        self.clears = 0

    async def play(self, item: AudioOut) -> None:
        self.items.append(item)

    def clear(self) -> Playback:
        self.clears += 1
        counter = PlayedCounter()
        for item in self.items:
            counter.add(item.generation, len(item.samples))
        return Playback(counter.generation, int(counter.samples * self.played_share))

    async def flush(self) -> None:
        return None


class VirtualClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def fake_models(answers: dict[str, str] | None = None) -> tuple[Models, FakeAsr, FakeDecoder, FakeTts]:
    asr, decoder, tts = FakeAsr(), FakeDecoder(answers), FakeTts()
    return Models(asr=asr, brain=CascadeBrain(decoder), tts=tts), asr, decoder, tts  # type: ignore[arg-type]


async def settle(condition: Callable[[], bool] = lambda: False, steps: int = 2_000) -> None:
    """Let the event loop run (no real time passes) until ``condition`` holds or ``steps`` passes are done."""
    for _ in range(steps):
        if condition():
            return
        await asyncio.sleep(0)


class RecordingSpeaker(VirtualSpeaker):
    """A real-time :class:`~realtime.respond.VirtualSpeaker` that also keeps each piece of reply audio it plays in
    ``heard``, in order with the events a router hands over."""

    def __init__(self, heard: list[object], rate: int = 24_000, clock: Callable[[], float] = now) -> None:
        super().__init__(rate, realtime=True, clock=clock)
        self.heard = heard

    async def play(self, item: AudioOut) -> None:
        self.heard.append(item)
        await super().play(item)


class Listened:
    """A session on real or fake models with its router running; :attr:`items` is everything a listener got, in
    order (reply audio included when the sink is the default :class:`RecordingSpeaker`)."""

    def __init__(
        self, models: Models, config: SessionConfig | None = None, sink: AudioSink | None = None, *,
        vad: FakeVad | None = None, clock: Callable[[], float] = now,
    ) -> None:
        config = config or SessionConfig()
        self.items: list[object] = []
        sink = sink or RecordingSpeaker(self.items, config.output_rate)
        self.session = VoiceSession(models, config, sink, vad=vad, clock=clock)
        self._router: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Listened:
        async def collect(item: OutputItem) -> None:
            self.items.append(item)

        self._router = asyncio.create_task(self.session.route(collect))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()
        assert self._router is not None
        self._router.cancel()

    def take(self) -> list[object]:
        """The items that arrived since the last call."""
        taken, self.items[:] = list(self.items), []
        return taken
