"""Giving freed memory back (realtime.heap), in a process of its own: glibc keeps the free pages between blocks that
are still in use, and ``malloc_trim`` returns them; and when the server does it."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from realtime import heap

HOLES = """
import ctypes, sys
from pathlib import Path
from realtime import heap

def rss_mb():
    return int(next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmRSS")).split()[1]) / 1024

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
blocks = [libc.malloc(64 * 1024) for _ in range(3200)]  # 200 MB in the main heap (below glibc's mmap threshold)
for block in blocks:
    ctypes.memset(block, 1, 64 * 1024)
for block in blocks[:-1]:  # the last block stays in use: the heap's top cannot shrink past it
    libc.free(block)
before = rss_mb()
released = heap.release()
print(before, rss_mb(), released)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_free_pages_below_a_block_in_use_go_back() -> None:
    out = subprocess.run([sys.executable, "-c", HOLES], capture_output=True, text=True, check=True).stdout.split()
    before, after, released = float(out[0]), float(out[1]), out[2]
    assert before > 200 and before - after > 150, out
    assert released == "True"


async def test_releases_after_replies_are_spaced_out(monkeypatch) -> None:
    released: list[float] = []
    now = [100.0]
    monkeypatch.setattr(heap, "release", lambda: released.append(now[0]) or True)
    releases = heap.Releases(interval_s=60.0, clock=lambda: now[0])

    async def reply_at(t: float) -> None:
        now[0] = t
        if (task := releases.after_reply()) is not None:
            assert await task is True

    await reply_at(130.0)  # less than a minute after the server started
    await reply_at(161.0)
    await reply_at(200.0)
    await reply_at(221.0)
    assert released == [161.0, 221.0]
    now[0] = 230.0
    assert await releases.now() is True  # the last session left: at once
    await reply_at(260.0)
    assert released == [161.0, 221.0, 230.0]
    await releases.settle()


async def test_a_failed_release_is_logged(monkeypatch, caplog) -> None:
    def broken() -> bool:
        raise OSError("no memory to trim")

    monkeypatch.setattr(heap, "release", broken)
    task = heap.Releases(interval_s=0.0).after_reply()
    assert task is not None
    await heap.Releases().settle()  # nothing started: returns at once
    with pytest.raises(OSError):
        await task
    await asyncio.sleep(0)  # the done callback's turn
    assert "giving freed memory back failed" in caplog.text
