"""Giving freed memory back to the operating system: when the server's last session leaves, and now and then after a
reply.

glibc's allocator keeps the pages of freed blocks in its heaps for reuse. A server whose sessions come and go frees
audio buffers, transcripts and model inputs of every size, and the main heap's resident size then grows with every
session although nothing stays allocated: ``benchmarks.soak`` measured the main heap growing by 70 MB over 40 abrupt
sessions and by 43 MB over the next 40 (``/proc/PID/smaps``), and by 9 and 4 MB with glibc's mmap threshold fixed
at 128 KiB. That fixed threshold is no cure: a Whisper base transcription of a 2-3 s question took ~400 ms with it
against ~265 ms without (``MALLOC_MMAP_THRESHOLD_=131072``, 2026-12-01, two cores), its large buffers mapped and
faulted in anew each time. ``malloc_trim(0)`` (glibc 2.8+) instead returns every whole free page of every heap to the
system once in a while: :class:`Releases` calls :func:`release` when the last session leaves and after a reply at
most once every :data:`RELEASE_INTERVAL_S` (the pages given back are faulted in again by the next turn's buffers: a
transcription after a release took 5-20 ms longer, the same probe). ``malloc_trim`` holds each heap's lock while it
trims it, so another session's reply that allocates meanwhile waits as long (~10 ms for 200 MB of free heap).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``; None where the C library has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    return getattr(ctypes.CDLL(name), "malloc_trim", None)


def release() -> bool:
    """Return the free pages of the C heaps to the system (blocking: ~10 ms for 200 MB of free heap, measured by
    tests/test_heap.py's case on two cores; run it in a thread).
    True if the C library did release memory, False if it had none to release or has no ``malloc_trim``."""
    trim = _malloc_trim()
    if trim is None:
        return False
    released = bool(trim(0))
    log.debug("malloc_trim: %s", "memory released" if released else "nothing to release")
    return released


RELEASE_INTERVAL_S = 60.0
"""The least time between two releases after replies (s): one turn a minute pays for the pages faulted in again."""


class Releases:
    """When the server gives freed memory back: :meth:`now` (the last session left) and :meth:`after_reply` (not in the
    first ``interval_s`` after it was made, nor within ``interval_s`` of the last release), each in a worker thread;
    ``clock`` is in seconds (monotonic). Use it from the event loop's thread."""

    def __init__(self, interval_s: float = RELEASE_INTERVAL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval_s = interval_s
        self._clock = clock
        self._last = clock()
        self._task: asyncio.Task[bool] | None = None

    def after_reply(self) -> asyncio.Task[bool] | None:
        """A reply finished (the moment its session's CPU work ends): release in the background unless one ran less
        than ``interval_s`` ago or still runs. Returns the release started (a failure is logged), or None."""
        if (self._task is not None and not self._task.done()) or self._clock() - self._last < self._interval_s:
            return None
        self._task = asyncio.get_running_loop().create_task(self.now(), name="heap-release")
        self._task.add_done_callback(_log_failure)
        return self._task

    async def now(self) -> bool:
        """Release now (:func:`release`, in a worker thread)."""
        self._last = self._clock()
        return await asyncio.to_thread(release)

    async def settle(self) -> None:
        """Wait for a release started by :meth:`after_reply` to end (before the event loop closes)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


def _log_failure(task: asyncio.Task[bool]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("giving freed memory back failed: %r", exc)
