"""Silence after a reply: OpenAI's ``server_vad`` ``idle_timeout_ms`` (the agent prompts the user, once), then,
optionally, the end of the call.

Silence is counted in input audio (samples at 16 kHz, the reference's ``audio_start_ms`` / ``audio_end_ms``), from the
moment the session is idle (nobody speaks, no reply is produced or played) after it has replied at least once. After
``idle_timeout_ms`` the client is told (:class:`~realtime.events.IdleTimeout`) and a reply prompts the user (its
instructions: :data:`PROMPT`); after ``idle_hangup_ms`` more of silence following that prompt (or, without
``idle_timeout_ms``, following a reply) the call ends (:attr:`IdleWatch.hung_up`). Speech starts the count afresh and
allows a new prompt.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from audio import PIPELINE_RATE
from realtime.events import IdleTimeout
from realtime.session.config import ResponseOptions

if TYPE_CHECKING:
    from realtime.session.orchestrator import VoiceSession

PROMPT = "The user has said nothing for a while. Ask them, in one short sentence, whether they are still there."
"""Added to the session's instructions for the reply that prompts a silent user."""


class IdleWatch:
    """Watches ``session`` for silence after its replies."""

    def __init__(self, session: VoiceSession) -> None:
        self._session = session
        self._since: int | None = None
        """Where the current silence began (input samples), None while the session is not idle."""
        self._prompted = False
        """The user was prompted since they last spoke."""
        self.hung_up = asyncio.Event()
        """Set when the silence ended the call (the transport closes the connection)."""

    def heard(self, sample: int) -> None:
        """The input has reached ``sample`` (called for every chunk of input audio)."""
        session = self._session
        if session.user_speaking:
            self._since, self._prompted = None, False
            return
        if not session.idle or not session.records:  # a reply is under way or playing, or none was made yet
            self._since = None
            return
        if self._since is None:
            self._since = sample
        config, silent_ms = session.config, (sample - self._since) * 1000 // PIPELINE_RATE
        if not self._prompted and config.idle_timeout_ms is not None and silent_ms >= config.idle_timeout_ms:
            session.put(IdleTimeout(self._since, sample, session.user_item_id))
            self._prompted, self._since = True, None
            options = ResponseOptions(instructions=f"{config.instructions}\n{PROMPT}")
            session.spawn(session.create_response(options), "idle prompt")
            return
        hang_up = config.idle_hangup_ms is not None and silent_ms >= config.idle_hangup_ms
        if hang_up and (self._prompted or config.idle_timeout_ms is None) and not self.hung_up.is_set():
            session.stats["hung_up"] += 1
            self.hung_up.set()
