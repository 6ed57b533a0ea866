"""Giving freed memory back to the operating system once the server is idle.

glibc's allocator keeps the pages of freed blocks in its heaps for reuse. A server whose sessions come and go frees
audio buffers, transcripts and model inputs of every size, and the main heap's resident size then grows with every
session although nothing stays allocated: ``benchmarks.soak`` measured the main heap growing by 70 MB over 40 abrupt
sessions and by 43 MB over the next 40 (``/proc/PID/smaps``), and by 9 and 4 MB with glibc's mmap threshold fixed
at 128 KiB. ``malloc_trim(0)`` (glibc 2.8+) returns every whole free page of every heap to the system; it takes the
heaps' locks while it runs, so :func:`release` is called only when no session is left, never beside a reply.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
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
