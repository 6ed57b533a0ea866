"""Every server event the protocol builds, checked against the reference's models: the discriminated unions of server
events in the ``openai`` package (``openai.types.realtime`` for GA names, ``openai.types.beta.realtime`` for beta).

:func:`watch` wraps :meth:`RealtimeProtocol._event` for the whole test run (an autouse fixture in ``conftest``); each
test then fails if any event it made does not validate, or is an extension event sent to a client that did not ask.
"""

from __future__ import annotations

import typing
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pydantic
from openai.types.beta.realtime import RealtimeServerEvent as BetaServerEvent
from openai.types.realtime import RealtimeServerEvent

from realtime.protocol import EXTENSIONS, RealtimeProtocol


def _models(union: object) -> dict[str, type[pydantic.BaseModel]]:
    """The union's event models by their ``type`` (the union is discriminated on it)."""
    members = typing.get_args(union)
    if members and typing.get_origin(members[0]) is typing.Union:  # Annotated[Union[...], discriminator]
        members = typing.get_args(members[0])
    return {typing.get_args(m.model_fields["type"].annotation)[0]: m for m in members}


GA = _models(RealtimeServerEvent)
BETA = _models(BetaServerEvent)
EXTENSION_EVENTS = {"response.thinking.delta": "thinking", "response.thinking.done": "thinking", "response.latency": "latency",
                    "output_audio_buffer.paused": "pause", "output_audio_buffer.resumed": "pause"}
assert set(EXTENSION_EVENTS.values()) == EXTENSIONS

seen: dict[str, int] = {}
"""Event types validated in this run, with their counts."""


def check(protocol: RealtimeProtocol, event: dict[str, Any]) -> str | None:
    """Why ``event`` is not what a strict client of ``protocol`` accepts (None when it is)."""
    kind = event.get("type", "")
    if kind in EXTENSION_EVENTS:
        wanted = EXTENSION_EVENTS[kind]
        return None if wanted in protocol.extensions else f"{kind}: an extension event the client did not ask for"
    model = (BETA if protocol.beta else GA).get(kind)
    if model is None:
        return f"{kind}: not a server event of the reference ({'beta' if protocol.beta else 'GA'})"
    try:
        model.model_validate(event)
    except pydantic.ValidationError as exc:
        return f"{kind}: {exc}"
    seen[kind] = seen.get(kind, 0) + 1
    return None


@contextmanager
def watch() -> Iterator[list[str]]:
    """Check every event built while inside; yields the list of failures."""
    failures: list[str] = []
    original = RealtimeProtocol._event  # noqa: SLF001 - the one place every server event is built

    def checked(self: RealtimeProtocol, kind: str, **fields: Any) -> dict[str, Any]:
        event = original(self, kind, **fields)
        if (problem := check(self, event)) is not None:
            failures.append(problem)
        return event

    RealtimeProtocol._event = checked  # type: ignore[method-assign]  # noqa: SLF001
    try:
        yield failures
    finally:
        RealtimeProtocol._event = original  # type: ignore[method-assign]  # noqa: SLF001
