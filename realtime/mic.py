"""``realtime mic``: a full-duplex conversation through the local sound devices.

Two separate streams, as virtual and many real devices need: the input stream's callback hands each
20 ms block to the session (resampled to 16 kHz where the device will not capture at that rate), and
reply audio waits in a thread-safe :class:`Player` that the output stream's callback plays from, or
plays silence. A barge-in (``AudioCleared``) drops the queued reply at once.

With loudspeakers the microphone hears the reply too: an :class:`~audio.echo.EchoCanceller` (WebRTC's AEC3 with
noise suppression) takes what the output callback plays and removes it from what the input callback captures, so
the agent neither answers nor interrupts itself, and a user who speaks over it is still heard. With a headset there
is no echo to remove (``echo_cancel=False``, ``realtime mic --no-echo-cancel``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import signal
import sys
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Literal, NoReturn

import numpy as np
import sounddevice as sd

from audio.echo import EchoCanceller
from audio.errors import AgentError
from audio.samples import PIPELINE_RATE, StreamResampler
from realtime.console import ConsoleView
from realtime.events import AudioOut, OutputItem
from realtime.models import Models
from realtime.session import SessionConfig
from realtime.session.orchestrator import VoiceSession
from realtime.session.output import Playback, PlayedCounter

log = logging.getLogger(__name__)

Kind = Literal["input", "output"]
SessionScope = Callable[["MicSession"], AbstractAsyncContextManager[object]]


ECHO_BUFFER_S = 0.2
"""The devices' buffering (s) with the echo cancelled: 40 ms (PortAudio's default here) underflowed on a loaded two-core
machine, 200 ms did not under 300 ms stalls of the callbacks' thread (the canceller then removed 25 dB of echo)."""


class DeviceError(AgentError, ValueError):
    """No usable sound device, or a device that refuses the format."""


def list_devices() -> str:
    """PortAudio's devices, one a line (``>`` marks the default input, ``<`` the default output)."""
    devices = sd.query_devices()
    if not len(devices):
        raise DeviceError("no audio devices found (PortAudio sees none: is a sound server or card available?)")
    return str(devices)


@dataclass(frozen=True)
class Devices:
    """The chosen devices (PortAudio indices) and the rates they accept."""

    input: int
    output: int
    input_rate: int
    output_rate: int

    def describe(self) -> str:
        names = (sd.query_devices(self.input)["name"], sd.query_devices(self.output)["name"])
        return f"listening on {names[0]} ({self.input_rate} Hz), speaking on {names[1]} ({self.output_rate} Hz)"


def choose_devices(input: str | None = None, output: str | None = None, *, output_rate: int = 24_000) -> Devices:
    """The devices named (an index or part of a name) or the defaults, each checked for mono float32 at
    16 kHz in and ``output_rate`` out, or else at its own default rate."""
    source, sink = _find(input, "input"), _find(output, "output")
    return Devices(source, sink, _rate(source, "input", PIPELINE_RATE), _rate(sink, "output", output_rate))


def _find(spec: str | None, kind: Kind) -> int:
    device: int | str | None = int(spec) if spec is not None and spec.isdigit() else spec
    try:
        return int(sd.query_devices(device, kind)["index"])
    except (ValueError, sd.PortAudioError) as exc:
        what = f"{kind} device {spec!r}" if spec is not None else f"default {kind} device"
        raise DeviceError(f"no {what} ({exc}); see `realtime mic --list-devices`") from None


def _rate(device: int, kind: Kind, wanted: int) -> int:
    check = sd.check_input_settings if kind == "input" else sd.check_output_settings
    info = sd.query_devices(device)
    rates = dict.fromkeys((wanted, int(info["default_samplerate"])))
    for rate in rates:
        try:
            check(device=device, samplerate=rate, channels=1, dtype="float32")
            return rate
        except sd.PortAudioError as exc:
            refusal = exc
    raise DeviceError(f"the {kind} device {info['name']!r} refuses mono float32 audio at {' or '.join(map(str, rates))} Hz ({refusal})")


class Player:
    """The session's :class:`~realtime.session.output.AudioSink` on the output device: reply audio waits here for the
    device's callback, which plays it (or silence when there is none) and counts what it played of which reply."""

    def __init__(self, rate: int, echo: EchoCanceller | None = None) -> None:
        self.rate = rate
        self.echo = echo
        """Told everything the device plays, silence included (its far end), when the echo is cancelled."""
        self._chunks: deque[AudioOut] = deque()
        self._offset = 0
        """Samples of ``_chunks[0]`` already played."""
        self._played = PlayedCounter()
        self._lock = threading.Lock()

    async def play(self, item: AudioOut) -> None:
        with self._lock:
            self._chunks.append(item)

    def clear(self) -> Playback:
        """Drop everything not yet played (barge-in); report what the device played of the current reply."""
        with self._lock:
            self._chunks.clear()
            self._offset = 0
            return self._played.report()

    @property
    def playing(self) -> bool:
        return bool(self._chunks)

    async def flush(self) -> None:
        while self._chunks:
            await asyncio.sleep(0.02)

    def callback(self, outdata: np.ndarray, frames: int, time: Any, status: sd.CallbackFlags) -> None:  # noqa: ANN401
        out, filled = outdata[:, 0], 0
        with self._lock:
            while filled < frames and self._chunks:
                item = self._chunks[0]
                piece = item.samples[self._offset : self._offset + frames - filled]
                out[filled : filled + len(piece)] = piece
                filled += len(piece)
                self._offset += len(piece)
                self._played.add(item.generation, len(piece))
                if self._offset >= len(item.samples):
                    self._chunks.popleft()
                    self._offset = 0
        out[filled:] = 0.0
        if self.echo is not None:
            self.echo.played(out, time.outputBufferDacTime)


@dataclass
class MicSession:
    """The local conversation, as an event bus sees a session (an ``id`` and the ``session``)."""

    id: str
    session: VoiceSession


async def converse(
    models: Models, config: SessionConfig, devices: Devices, *, scope: SessionScope | None = None,
    view: ConsoleView | None = None, echo_cancel: bool = True,
) -> None:
    """Talk through ``devices`` until cancelled (Ctrl-C), or until ``scope`` ends the session (MQTT ``end``);
    ``echo_cancel`` removes the speaker's sound from the microphone's (off for a headset)."""
    view = view or ConsoleView()
    echo = EchoCanceller(devices.input_rate, devices.output_rate) if echo_cancel else None
    # The canceller needs the sound that was played, in step with the sound captured: an output underflow (a callback
    # late on a busy CPU) makes PortAudio ask for blocks faster than they play, and the echo no longer matches them.
    buffered = ECHO_BUFFER_S if echo is not None else None
    player = Player(devices.output_rate, echo)
    session = VoiceSession(models, dataclasses.replace(config, output_rate=devices.output_rate), player)
    local = MicSession(f"mic_{secrets.token_hex(4)}", session)
    loop = asyncio.get_running_loop()
    blocks: asyncio.Queue[np.ndarray] = asyncio.Queue()

    def captured(indata: np.ndarray, frames: int, time: Any, status: sd.CallbackFlags) -> None:  # noqa: ANN401
        if status:
            log.debug("input: %s", status)
        block = echo.captured(indata[:, 0]) if echo is not None else indata[:, 0].copy()
        loop.call_soon_threadsafe(blocks.put_nowait, block)

    try:
        with (
            _open(sd.InputStream, "input", devices.input, devices.input_rate, captured, buffered) as microphone,
            _open(sd.OutputStream, "output", devices.output, devices.output_rate, player.callback, buffered) as speaker,
        ):
            if echo is not None:  # a starting point: the canceller finds the echo's actual delay itself
                echo.set_delay(speaker.latency, microphone.latency)
            view.note(f"session {local.id}: {devices.describe()}; latency {microphone.latency * 1000:.0f} ms in, "
                      f"{speaker.latency * 1000:.0f} ms out{', echo cancelled' if echo else ''}. Speak (Ctrl-C to stop).")
            async with scope(local) if scope else contextlib.nullcontext(), asyncio.TaskGroup() as group:
                group.create_task(_listen(session, blocks, devices.input_rate))
                group.create_task(session.route(_shown(view)))
                await session.greet()
            view.note(f"session {local.id} was ended")
    finally:
        await session.close()


def run_to_exit(main: Coroutine[Any, Any, None]) -> NoReturn:
    """Run ``main`` (the conversation: :func:`converse`) until it ends or Ctrl-C or SIGTERM cancels it, then end the
    process at once, with status 0; an error goes up as usual.

    Not :func:`asyncio.run`: at its close it waits for every thread of the loop's default executor, and one may be
    inside llama.cpp for long (the history's prefill for the next turn, started as a reply ends: a prompt is computed
    in one batch that nothing can stop; 3-38 s measured on a loaded two-core machine, and with semantic_vad and tiny.en
    partials the command did not exit within 30 s of Ctrl-C in two CI runs). By then the session is closed and the
    devices are freed (:func:`converse` does it as it is cancelled): nothing is left to save, and the computation ends
    with the process. (A normal interpreter exit with that thread still running crashed, SIGSEGV, in 1 of 3 tries.)"""
    # Ctrl-C must reach this program even when its parent started it with SIGINT ignored or blocked (both are inherited
    # across exec; seen under the test suite, where the command then never heard Ctrl-C).
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.default_int_handler)
    runner = asyncio.Runner()
    try:
        runner.run(main)
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass
    except BaseException:
        runner.close()
        raise
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _open(stream: type[sd.InputStream] | type[sd.OutputStream], kind: Kind, device: int, rate: int,
          callback: Callable[..., None], latency: float | None) -> sd.InputStream | sd.OutputStream:
    try:
        return stream(device=device, samplerate=rate, channels=1, dtype="float32", blocksize=rate // 50, callback=callback,
                      latency=latency)
    except sd.PortAudioError as exc:
        raise DeviceError(f"the {kind} device {sd.query_devices(device)['name']!r} could not be opened: {exc}") from None


async def _listen(session: VoiceSession, blocks: asyncio.Queue[np.ndarray], rate: int) -> None:
    resampler = StreamResampler(rate, PIPELINE_RATE) if rate != PIPELINE_RATE else None
    while True:
        block = await blocks.get()
        await session.push_audio(resampler.process(block) if resampler else block)


def _shown(view: ConsoleView) -> Callable[[OutputItem], Awaitable[None]]:
    async def show(item: OutputItem) -> None:
        view.show(item)

    return show
