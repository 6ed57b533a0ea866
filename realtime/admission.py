"""Admission control from measured load: a new session is refused while the sessions already admitted answer slower
than a latency budget, so that a server offered more sessions than its CPU can serve keeps the ones it has usable
instead of slowing every one of them down together.

The load is measured, not guessed: every reply's first-packet delay (end of the user's speech to the first reply
audio, the server's own clock) is recorded; while the median of the replies of the last ``window_s`` seconds is past
``budget_ms``, or a reply in progress has already waited longer than ``budget_ms`` for its first audio (which shows an
overload as it builds, before slow replies have finished), new sessions get ``server_busy`` (a websocket: an ``error``
event, then close code 1013, try again later; a call: HTTP 503 with ``Retry-After``). With no session at all a new one
is always admitted, so a burst of slow replies cannot lock the server out once it is idle.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Callable


class Admission:
    """Whether a new session may join, from the first-packet delays (ms) of recent replies.

    ``budget_ms``: the median delay past which new sessions are refused (None: never refused); ``window_s``: how far
    back replies count (s); ``min_replies``: replies needed in the window before any refusal (one slow cold start is
    not a load)."""

    def __init__(
        self, budget_ms: float | None, *, window_s: float = 30.0, min_replies: int = 3, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if budget_ms is not None and budget_ms <= 0:
            raise ValueError("the latency budget must be positive (None: no admission control)")
        self.budget_ms = budget_ms
        self.window_s = window_s
        self.min_replies = min_replies
        self._clock = clock
        self._delays: deque[tuple[float, float]] = deque()
        """(when, first-packet delay in ms) of recent replies, oldest first."""
        self.refused = 0
        """Sessions refused so far."""

    def observe(self, delay_ms: float) -> None:
        """A reply's first audio went out ``delay_ms`` after the end of the user's speech."""
        self._delays.append((self._clock(), delay_ms))
        self._forget()

    def median_ms(self) -> float | None:
        """The median first-packet delay of the replies in the window (None: too few to judge)."""
        self._forget()
        if len(self._delays) < self.min_replies:
            return None
        return statistics.median(delay for _, delay in self._delays)

    def refusal(self, sessions: int, waiting_ms: float = 0.0) -> str | None:
        """Why a new session is refused now that ``sessions`` are live, the longest of their replies in progress having
        waited ``waiting_ms`` for its first audio so far (None: it is admitted); counts the refusals."""
        why = self.reason(sessions, waiting_ms)
        self.refused += why is not None
        return why

    def reason(self, sessions: int, waiting_ms: float = 0.0) -> str | None:
        """What :meth:`refusal` would say now, without counting it (for a status report)."""
        if self.budget_ms is None or sessions == 0:
            return None
        median = self.median_ms()
        if median is not None and median > self.budget_ms:
            why = f"its replies of the last {self.window_s:g} s took {median:.0f} ms at the median"
        elif waiting_ms > self.budget_ms:
            why = f"a reply has waited {waiting_ms:.0f} ms for its first audio"
        else:
            return None
        return f"the server is busy: {why}, past its budget of {self.budget_ms:.0f} ms; try again later"

    def _forget(self) -> None:
        horizon = self._clock() - self.window_s
        while self._delays and self._delays[0][0] < horizon:
            self._delays.popleft()
