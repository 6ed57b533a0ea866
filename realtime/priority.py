"""Fair scheduling between the sessions of one process: a reply still waiting for its first audio goes before the
later clauses of a reply that is already playing.

On two cores every session's recogniser, decoder and synthesiser share the same CPU. A long answer is written and
synthesised far faster than it is spoken, so without a rule its later clauses take the CPU while another session's
user waits for a first word. :class:`FirstAudioFirst` keeps the turns that wait for their first audio and the users
speaking now; while another session has one, a playing reply with more than :data:`LEAD_S` of audio ahead of its
playback does not synthesise its next clause, and its writer (at most two clauses ahead of the synthesis) and the
embedded decoder wait with it (it never stops a reply: its listener still has ``LEAD_S`` of audio queued).

A session's background work waits too: its decoder prefills (the history after a change) stop at their next step of
prompt tokens while another session's user speaks or its turn waits for its first audio, and go on from there
afterwards (:meth:`Lane.background_waits`). Without that, llama.cpp's continuous batching put a waiting reply's
tokens in the same batches as other sessions' prompts: eight sessions each given a ~900-token item at once kept the
first question's reply waiting 81 s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

LEAD_S = 3.0
"""Seconds of a reply's audio ahead of its playback below which it synthesises on whatever else waits: enough to
cover the synthesis of a 30-word clause on two loaded cores (Piper: p90 ~2 s, ``2026-11-30-tts-first-audio-cpu2.md``)."""
POLL_S = 0.05
"""How often a reply that gives way looks again (s)."""


class FirstAudioFirst:
    """What every session of a process waits for: the turns that wait for their first audio, and the users who are
    speaking (their turns come next). One per process, shared by every session
    (:attr:`realtime.models.Models.priority`), each through its own :class:`Lane`; changed from the event loop only
    (:meth:`Lane.background_waits` also reads it from the decoder's threads)."""

    def __init__(self) -> None:
        self.count = 0
        """Turns and speakers waiting, all sessions together."""

    def lane(self) -> Lane:
        """A session's way in."""
        return Lane(self)


USER_SPEECH = "user speech"
"""The key of a session whose user is speaking (from the start of speech to the end of the turn)."""


class Lane:
    """One session's place in :class:`FirstAudioFirst`: its reply gives way to what other sessions wait for, never
    to its own (a session's later turn waits for its reply anyway)."""

    def __init__(self, shared: FirstAudioFirst) -> None:
        self._shared = shared
        self._keys: set[str] = set()

    def waiting(self, key: str) -> None:
        """``key`` (a turn id, or :data:`USER_SPEECH`) waits for its first audio."""
        if key not in self._keys:
            self._keys.add(key)
            self._shared.count += 1

    def started(self, key: str) -> None:
        """``key`` has its first audio, or is over (either may be told more than once)."""
        if key in self._keys:
            self._keys.discard(key)
            self._shared.count -= 1

    def close(self) -> None:
        """The session ended: nothing of it waits any more."""
        for key in list(self._keys):
            self.started(key)

    def gives_way(self, lead_s: float) -> bool:
        """Whether a reply of this session with ``lead_s`` seconds of audio ahead of its playback should wait: another
        session waits for its first audio, and more than :data:`LEAD_S` is queued."""
        return lead_s > LEAD_S and self._shared.count > len(self._keys)

    def background_waits(self) -> bool:
        """Whether this session's background work (a decoder prefill) should wait now: another session's user speaks
        or its turn waits for its first audio, and nothing of this session does (its own turn may need the work, and
        two sessions must never wait for each other). A :data:`~realtime.decoder.Hold`, asked from any thread."""
        return not self._keys and self._shared.count > 0

    async def give_way(self, lead_s: Callable[[], float]) -> None:
        """Return once a playing reply of this session may synthesise its next clause (:meth:`gives_way`)."""
        while self.gives_way(lead_s()):
            await asyncio.sleep(POLL_S)
