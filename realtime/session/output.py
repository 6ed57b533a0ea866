"""Where a session's output goes: one bounded, ordered queue, the audio sink contract, and the one output router.

Events and reply audio travel on one queue, so text never overtakes the speech it belongs to. The router takes
items in order, drops those of an interrupted reply (whether an item is dropped is a property of its type,
:attr:`~realtime.events.Interruptible`), plays audio on the transport's :class:`AudioSink` and hands every other item
to the transport. Every output implements :class:`AudioSink`: the websocket (:class:`ClientClockSink`), the WebRTC
track, the local speaker and the ``respond`` file writer; clearing a sink reports how much of which reply was
actually played, and the history after a barge-in is cut to that. The router also pauses a reply at the sink
(speech over it) and resumes it where it stopped (:class:`Router`).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from realtime.events import AudioOut, AudioPaused, AudioResumed, Interruptible, OutputItem
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
    are queued, or while the reply is paused); events are never held back (they are small, and a turn's held output is
    released at once)."""

    def __init__(self, max_audio: int = MAX_QUEUED_AUDIO) -> None:
        self._items: deque[OutputItem] = deque()
        self._ready = asyncio.Event()
        self._max_audio = max_audio
        self._room = asyncio.Event()
        self._room.set()
        self._paused = False
        self.audio = 0
        """Audio items queued now."""

    def put_nowait(self, item: OutputItem) -> None:
        self._count([item], 1)
        self._items.append(item)
        self._ready.set()

    def put_front(self, items: list[OutputItem]) -> None:
        """Put ``items`` back ahead of everything queued, in their order (a paused reply's audio, resumed)."""
        self._count(items, 1)
        self._items.extendleft(reversed(items))
        self._ready.set()

    def pause(self, paused: bool) -> None:
        """While paused, :meth:`room` waits: the synthesis of a paused reply stops at its next piece of audio."""
        self._paused = paused
        self._count([], 0)

    async def room(self) -> None:
        """Wait until there is room for audio (the synthesis calls this before emitting each piece)."""
        await self._room.wait()

    async def get(self) -> OutputItem:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        item = self._items.popleft()
        self._count([item], -1)
        return item

    def _count(self, items: list[OutputItem], sign: int) -> None:
        self.audio += sign * sum(isinstance(item, AudioOut) for item in items)
        if self.audio < self._max_audio and not self._paused:
            self._room.set()
        else:
            self._room.clear()


def can_pause(sink: AudioSink) -> bool:
    """Whether the server can pause what ``sink`` plays: not a :class:`ClientClockSink`, whose client already holds
    the audio it was sent (a websocket client pauses its own playback; the server only holds back what is not sent)."""
    return not isinstance(sink, ClientClockSink)


class Router:
    """The output router: audio to the sink, every other item to the transport, in order; items of an interrupted
    reply (:class:`~realtime.events.Interruptible` and ``is_stale``) are dropped.

    :meth:`pause` stops the reply's audio at the sink at once (speech over it): the sink is cleared, what it had not
    played is kept, and reply items that arrive meanwhile are held; :meth:`resume` plays them on from where the sink
    stopped, nothing lost; :meth:`clear` (an interruption) drops them. Calling contract: :meth:`run` for as long as
    the session lives; the others from the session's own task.
    """

    def __init__(self, queue: OutputQueue, sink: AudioSink, is_stale: Callable[[OutputItem], bool]) -> None:
        self._queue = queue
        self._sink = sink
        self._is_stale = is_stale
        self._sent: deque[AudioOut] = deque()
        """Audio handed to the sink since the last pause, of its two latest generations (a pause replays the part not
        yet played)."""
        self._base = Playback(None, 0)
        """What the sink had played when it last paused (its counts go on across a pause: the replay starts there)."""
        self._held: list[OutputItem] | None = None
        """While paused: what the sink had not played, then the reply items that arrived since."""
        self._paused: AudioPaused | None = None

    @property
    def holding(self) -> bool:
        """A reply is paused (its audio is held, not lost)."""
        return self._held is not None

    async def run(self, on_event: Callable[[OutputItem], Awaitable[None]]) -> None:
        """Route until cancelled."""
        while True:
            item = await self._queue.get()
            if isinstance(item, Interruptible) and self._is_stale(item):
                continue
            if self._held is not None and isinstance(item, Interruptible):
                self._held.append(item)
            elif isinstance(item, AudioOut):
                self._record(item)
                await self._sink.play(item)
            else:
                await on_event(item)

    def pause(self, turn_id: str, generation: int) -> bool:
        """Pause reply ``turn_id`` (and anything queued after it) at the sink now; it is told with
        :class:`~realtime.events.AudioPaused`. False when the sink cannot pause (:func:`can_pause`) or is paused."""
        if self._held is not None or not can_pause(self._sink):
            return False
        playback = self._sink.clear()
        self._held = self._unplayed(playback)
        self._base = playback
        self._queue.pause(True)
        self._paused = AudioPaused(turn_id, generation, playback.of(generation) * 1000 // self._sink.rate)
        self._queue.put_front([self._paused])
        return True

    def resume(self) -> None:
        """Play the paused reply on from where it stopped (told with :class:`~realtime.events.AudioResumed`)."""
        if self._paused is not None:
            self._release([AudioResumed(self._paused.turn_id, self._paused.generation)])

    def clear(self) -> Playback:
        """Drop every queued sample now (an interruption) and report what of the current reply was played; a pause
        ends, its held items are dropped as stale."""
        playback = self._sink.clear()
        self._release([])
        return playback

    def _release(self, announce: list[OutputItem]) -> None:
        held, self._held, self._paused = self._held, None, None
        self._queue.pause(False)
        if held is not None:
            self._queue.put_front(announce + held)

    def _record(self, item: AudioOut) -> None:
        if self._sent and item.generation != self._sent[-1].generation:
            latest = self._sent[-1].generation
            while self._sent[0].generation != latest:
                self._sent.popleft()
        self._sent.append(item)

    def _unplayed(self, playback: Playback) -> list[OutputItem]:
        """The audio handed to the sink that ``playback`` says was not played, in order."""
        sent, self._sent = list(self._sent), deque()
        first = next((i for i, item in enumerate(sent) if item.generation == playback.generation), None)
        # the sink counts a reply's samples across pauses; the audio since the last pause starts at its count then
        skip = 0 if first is None else playback.samples - self._base.of(sent[first].generation)
        tail: list[OutputItem] = []
        for item in sent[first or 0 :]:
            if item.generation == playback.generation and skip > 0:
                if skip >= len(item.samples):
                    skip -= len(item.samples)
                    continue
                item, skip = dataclasses.replace(item, samples=item.samples[skip:]), 0
            tail.append(item)
        return tail
