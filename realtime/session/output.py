"""Where a session's output goes: one bounded, ordered queue, the audio sink contract, and the one output router.

Events and reply audio travel on one queue, so text never overtakes the speech it belongs to. The router takes
items in order, drops those of an interrupted reply (whether an item is dropped is a property of its type,
:attr:`~realtime.events.Interruptible`), plays audio on the transport's :class:`AudioSink` and hands every other item
to the transport. Every output implements :class:`AudioSink`: the websocket (:class:`ClientClockSink`), the WebRTC
track, the local speaker and the ``respond`` file writer; clearing a sink reports how much of which reply was
actually played, and the history after a barge-in is cut to that.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from realtime.events import AudioOut, Interruptible, OutputItem
from realtime.latency import now

MAX_QUEUED_AUDIO = 64
"""Audio items the output queue holds before the synthesis waits. The router hands audio to the sink as fast as the
sink takes it, so this bounds the queue itself (a transport that stops taking events holds the synthesis back);
how far a sink buffers ahead of playback is the sink's own (the WebRTC track and the speaker play in real time)."""


@dataclass(frozen=True)
class Playback:
    """What a sink had played of the reply it was playing when it was cleared."""

    generation: int | None
    """The reply's generation (None: nothing was played since the sink started)."""
    samples: int
    """Samples of that reply played (at the sink's rate)."""

    def of(self, generation: int) -> int:
        """Samples played of reply ``generation`` (0 if the sink was playing another one)."""
        return self.samples if self.generation == generation else 0


class AudioSink(Protocol):
    """Where reply audio is played. :meth:`play` must not wait for the audio to be heard."""

    rate: int
    """The rate it plays at (Hz): the session speaks at this rate, so audio is resampled once."""

    async def play(self, item: AudioOut) -> None:
        """Queue one piece of reply audio (float32 mono at :attr:`rate`)."""

    def clear(self) -> Playback:
        """Drop every queued sample now (barge-in, cancel) and report what of the current reply was played."""

    @property
    def playing(self) -> bool:
        """Audio is queued or being heard now."""

    async def flush(self) -> None:
        """Wait until everything queued has been played."""


class PlayedCounter:
    """Samples played of the latest reply, for a sink's :meth:`AudioSink.clear` report."""

    def __init__(self) -> None:
        self.generation: int | None = None
        self.samples = 0

    def add(self, generation: int, samples: int) -> None:
        if generation != self.generation:
            self.generation, self.samples = generation, 0
        self.samples += samples

    def report(self) -> Playback:
        return Playback(self.generation, self.samples)


class ClientClockSink:
    """A sink for a client that plays what it is sent (the websocket): audio is delivered at once, and what was
    played is estimated on a client clock that plays in real time from the first delivery. A client's
    ``conversation.item.truncate`` (``audio_end_ms``) overrides the estimate."""

    def __init__(self, rate: int, deliver: Callable[[AudioOut], Awaitable[None]], clock: Callable[[], float] = now) -> None:
        self.rate = rate
        self._deliver = deliver
        self._clock = clock
        self._end = 0.0
        """When the client will have played everything delivered."""
        self._chunks: deque[tuple[int, float, int]] = deque()
        """(generation, client start time, samples) of each delivered chunk not yet fully played."""
        self._played = PlayedCounter()

    async def play(self, item: AudioOut) -> None:
        t = self._clock()
        self._prune(t)
        start = max(self._end, t)
        self._end = start + len(item.samples) / self.rate
        self._chunks.append((item.generation, start, len(item.samples)))
        await self._deliver(item)

    def clear(self) -> Playback:
        t = self._clock()
        self._prune(t)
        played = self._played
        for generation, start, samples in self._chunks:
            if start < t:
                played.add(generation, min(samples, int((t - start) * self.rate)))
        self._chunks.clear()
        self._played = PlayedCounter()
        self._end = 0.0
        return played.report()

    def _prune(self, t: float) -> None:
        """Fold the chunks the client has finished playing into the count."""
        while self._chunks and self._chunks[0][1] + self._chunks[0][2] / self.rate <= t:
            generation, _, samples = self._chunks.popleft()
            self._played.add(generation, samples)

    @property
    def playing(self) -> bool:
        return self._clock() < self._end

    async def flush(self) -> None:
        await asyncio.sleep(max(0.0, self._end - self._clock()))


class OutputQueue:
    """The session's output, in order. Audio is bounded (:meth:`room` waits while :data:`MAX_QUEUED_AUDIO` audio items
    are queued); events are never held back (they are small, and a turn's held output is released at once)."""

    def __init__(self, max_audio: int = MAX_QUEUED_AUDIO) -> None:
        self._items: asyncio.Queue[OutputItem] = asyncio.Queue()
        self._max_audio = max_audio
        self._room = asyncio.Event()
        self._room.set()
        self.audio = 0
        """Audio items queued now."""

    def put_nowait(self, item: OutputItem) -> None:
        if isinstance(item, AudioOut):
            self.audio += 1
            if self.audio >= self._max_audio:
                self._room.clear()
        self._items.put_nowait(item)

    async def room(self) -> None:
        """Wait until there is room for audio (the synthesis calls this before emitting each piece)."""
        await self._room.wait()

    async def get(self) -> OutputItem:
        item = await self._items.get()
        if isinstance(item, AudioOut):
            self.audio -= 1
            if self.audio < self._max_audio:
                self._room.set()
        return item


async def route(
    queue: OutputQueue, sink: AudioSink, is_stale: Callable[[OutputItem], bool], on_event: Callable[[OutputItem], Awaitable[None]]
) -> None:
    """The output router (runs until cancelled): audio to ``sink``, every other item to ``on_event``, in order;
    items of an interrupted reply (:class:`~realtime.events.Interruptible` and stale) are dropped."""
    while True:
        item = await queue.get()
        if isinstance(item, Interruptible) and is_stale(item):
            continue
        if isinstance(item, AudioOut):
            await sink.play(item)
        else:
            await on_event(item)
