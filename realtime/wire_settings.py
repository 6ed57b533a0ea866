"""Reading the client's settings and fields off the wire: each value checked, a :class:`ProtocolError` naming the
field that is wrong (it becomes an ``error`` event; the session goes on)."""

from __future__ import annotations

import dataclasses
from typing import Any

from audio.codecs import AudioFormat, AudioFormatError, parse_format
from audio.errors import AgentError
from realtime.policy import PolicyConfig


class ProtocolError(AgentError, ValueError):
    """A client event that cannot be carried out; becomes an ``error`` event."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.param = param


def field(event: dict[str, Any], name: str, kind: type) -> Any:
    value = event.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolError("invalid_value", f"{name!r} must be a {kind.__name__}", name)
    return value


def audio_format(value: object, current: AudioFormat, which: str) -> AudioFormat:
    if value is None:
        return current
    try:
        return parse_format(value)
    except AudioFormatError as exc:
        raise ProtocolError("invalid_value", str(exc), f"session.{which}_audio_format") from exc


def turn_detection(value: object, policy: PolicyConfig) -> dict[str, Any]:
    if value is None:
        return {"turn_detection": False}
    if not isinstance(value, dict) or value.get("type", "server_vad") not in ("server_vad", "semantic_vad"):
        raise ProtocolError("invalid_value", "turn_detection must be null or {'type': 'server_vad', ...}", "session.turn_detection")
    knobs: dict[str, Any] = {}
    for key, attribute in (("threshold", "threshold"), ("silence_duration_ms", "end_of_turn_silence_ms")):
        if key in value:
            if not isinstance(value[key], (int, float)) or isinstance(value[key], bool):
                raise ProtocolError("invalid_value", f"turn_detection.{key} must be a number", f"session.turn_detection.{key}")
            knobs[attribute] = type(getattr(policy, attribute))(value[key])
    if "end_of_turn_silence_ms" in knobs:
        knobs["speculate_silence_ms"] = min(policy.speculate_silence_ms, knobs["end_of_turn_silence_ms"])
    try:
        changes: dict[str, Any] = {"turn_detection": True, "policy": dataclasses.replace(policy, **knobs)}
    except ValueError as exc:
        raise ProtocolError("invalid_value", f"turn_detection: {exc}", "session.turn_detection") from exc
    if "prefix_padding_ms" in value:
        padding = value["prefix_padding_ms"]
        if not isinstance(padding, int) or isinstance(padding, bool) or not 0 <= padding <= 5000:
            raise ProtocolError("invalid_value", "prefix_padding_ms must be an integer from 0 to 5000", "session.turn_detection")
        changes["prefix_padding_ms"] = padding
    for key, attribute in (("create_response", "auto_respond"), ("interrupt_response", "interrupt_response")):
        if key in value:
            if not isinstance(value[key], bool):
                raise ProtocolError("invalid_value", f"turn_detection.{key} must be true or false", f"session.turn_detection.{key}")
            changes[attribute] = value[key]
    return changes


def token_limit(value: object) -> int:
    if value == "inf":
        return 4096
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 4096:
        raise ProtocolError("invalid_value", "the output token limit must be an integer from 1 to 4096, or 'inf'", "session.max_output_tokens")
    return value


def reasoning_budget(value: object) -> int:
    budget = value.get("budget_tokens") if isinstance(value, dict) else None
    if not isinstance(budget, int) or isinstance(budget, bool) or not 0 <= budget <= 4096:
        raise ProtocolError("invalid_value", "reasoning must be {'budget_tokens': 0..4096}", "session.reasoning")
    return budget
