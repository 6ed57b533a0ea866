"""Reading the client's settings and fields off the wire: each value checked, a :class:`ProtocolError` naming the
field that is wrong (it becomes an ``error`` event; the session goes on)."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from audio.codecs import AudioFormat, AudioFormatError, parse_format
from audio.errors import AgentError
from realtime.conversation import Message, Truncation
from realtime.policy import PolicyConfig
from realtime.tools import Choice, Tool


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
        raise ProtocolError(
            "invalid_value", "turn_detection must be null, {'type': 'server_vad', ...} or {'type': 'semantic_vad', ...}",
            "session.turn_detection",
        )
    knobs: dict[str, Any] = {}
    semantic = value.get("type") == "semantic_vad"
    for key, attribute in (("threshold", "threshold"), ("silence_duration_ms", "end_of_turn_silence_ms")):
        if key in value and not (semantic and key == "silence_duration_ms"):
            if not isinstance(value[key], (int, float)) or isinstance(value[key], bool):
                raise ProtocolError("invalid_value", f"turn_detection.{key} must be a number", f"session.turn_detection.{key}")
            knobs[attribute] = type(getattr(policy, attribute))(value[key])
    try:
        if semantic:
            policy = policy.semantic(value.get("eagerness", "auto"))
        elif policy.eagerness is not None:  # back from semantic_vad: server_vad's own pause
            knobs.setdefault("end_of_turn_silence_ms", PolicyConfig.end_of_turn_silence_ms)
            knobs.update(complete_silence_ms=None, eagerness=None)
        if "end_of_turn_silence_ms" in knobs:
            knobs["speculate_silence_ms"] = min(policy.speculate_silence_ms, knobs["end_of_turn_silence_ms"])
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
    for key in ("idle_timeout_ms", "idle_hangup_ms"):
        if key in value:
            changes[key] = _non_negative(value[key], key, nullable=True)
    return changes | _interruption(value, changes["policy"])


def _interruption(value: dict[str, Any], policy: PolicyConfig) -> dict[str, Any]:
    """The extension knobs of speech over a reply (``min_interruption_ms``: null interrupts at once, without a pause;
    ``min_interruption_words``; ``min_interruption_speech_ms``; ``backchannels``, a list of words and phrases): the
    policy with them."""
    knobs: dict[str, Any] = {}
    if "min_interruption_ms" in value:
        knobs["min_interruption_ms"] = _non_negative(value["min_interruption_ms"], "min_interruption_ms", nullable=True)
    for key in ("min_interruption_words", "min_interruption_speech_ms"):
        if key in value:
            knobs[key] = _non_negative(value[key], key, nullable=False)
    if "backchannels" in value:
        words = value["backchannels"]
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise ProtocolError("invalid_value", "turn_detection.backchannels must be a list of strings",
                                "session.turn_detection.backchannels")
        knobs["backchannels"] = tuple(w.lower() for w in words)
    return {"policy": dataclasses.replace(policy, **knobs)}


def _non_negative(value: object, key: str, *, nullable: bool) -> int | None:
    """A non-negative integer field of ``turn_detection`` (or null, where ``nullable``)."""
    if value is None and nullable:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        kind = "a non-negative integer" + (" or null" if nullable else "")
        raise ProtocolError("invalid_value", f"turn_detection.{key} must be {kind}", f"session.turn_detection.{key}")
    return value


def token_limit(value: object) -> int:
    if value == "inf":
        return 4096
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 4096:
        raise ProtocolError("invalid_value", "the output token limit must be an integer from 1 to 4096, or 'inf'", "session.max_output_tokens")
    return value


def truncation(value: object) -> Truncation:
    """OpenAI's session ``truncation``: ``"auto"`` or ``{"type": "retention_ratio", "retention_ratio": 0..1,
    "token_limits": {"post_instructions": N}}``. ``"disabled"`` is refused: the history must be cut to fit the model's
    context here."""
    if value == "auto":
        return Truncation()
    if value == "disabled":
        raise ProtocolError("invalid_value", "truncation cannot be disabled here: the oldest turns must go to keep the prompt "
                            "within the model's context ('auto' or a retention_ratio)", "session.truncation")
    ratio = value.get("retention_ratio") if isinstance(value, dict) and value.get("type") == "retention_ratio" else None
    if not isinstance(value, dict) or not isinstance(ratio, (int, float)) or isinstance(ratio, bool) or not 0.0 <= ratio <= 1.0:
        raise ProtocolError("invalid_value", "truncation must be 'auto' or {'type': 'retention_ratio', 'retention_ratio': 0..1}",
                            "session.truncation")
    limits = value.get("token_limits") or {}
    post = limits.get("post_instructions") if isinstance(limits, dict) else None
    if not isinstance(limits, dict) or (post is not None and (not isinstance(post, int) or isinstance(post, bool) or post < 1)):
        raise ProtocolError("invalid_value", "truncation.token_limits.post_instructions must be a positive integer",
                            "session.truncation.token_limits.post_instructions")
    return Truncation(float(ratio), post, auto=False)


def reasoning_budget(value: object) -> int:
    budget = value.get("budget_tokens") if isinstance(value, dict) else None
    if not isinstance(budget, int) or isinstance(budget, bool) or not 0 <= budget <= 4096:
        raise ProtocolError("invalid_value", "reasoning must be {'budget_tokens': 0..4096}", "session.reasoning")
    return budget


def tools(value: object, where: str) -> tuple[Tool, ...]:
    """The reference's ``tools``: a list of ``{"type": "function", "name", "description", "parameters"}``."""
    if not isinstance(value, list):
        raise ProtocolError("invalid_value", "tools must be a list of functions", f"{where}.tools")
    read = []
    for index, tool in enumerate(value):
        param = f"{where}.tools[{index}]"
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise ProtocolError("invalid_value", "only function tools are supported", param)
        name, parameters = tool.get("name"), tool.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ProtocolError("invalid_value", "a function's name is 1 to 64 letters, digits, '_' or '-'", f"{param}.name")
        if not isinstance(parameters, dict) or parameters.get("type", "object") != "object":
            raise ProtocolError("invalid_value", "parameters must be a JSON schema of an object", f"{param}.parameters")
        read.append(Tool(name, str(tool.get("description") or ""), parameters))
    if len({t.name for t in read}) < len(read):
        raise ProtocolError("invalid_value", "two tools have the same name", f"{where}.tools")
    return tuple(read)


def tool_choice(value: object, offered: tuple[Tool, ...], where: str) -> Choice:
    """``auto``, ``none``, ``required`` or ``{"type": "function", "name": ...}`` naming one of ``offered``."""
    if value in ("auto", "none", "required"):
        return value
    name = value.get("name") if isinstance(value, dict) and value.get("type") == "function" else None
    if not isinstance(name, str):
        raise ProtocolError("invalid_value", "tool_choice must be auto, none, required or {'type': 'function', 'name': ...}",
                            f"{where}.tool_choice")
    if name not in {t.name for t in offered}:
        raise ProtocolError("invalid_value", f"tool_choice names {name!r}, which is not among the tools", f"{where}.tool_choice")
    return name


def audio_output(value: object, where: str) -> bool:
    """``output_modalities`` (beta: ``modalities``): True when the replies are spoken."""
    if value in (["audio"], ["text", "audio"], ["audio", "text"]):
        return True
    if value == ["text"]:
        return False
    raise ProtocolError("invalid_value", "output_modalities must be ['audio'] or ['text']", f"{where}.output_modalities")


def conversation_item(value: object, where: str) -> Message:
    """A conversation item from the client: a message (text; audio only by its transcript), a ``function_call``
    or a ``function_call_output``."""
    if not isinstance(value, dict):
        raise ProtocolError("invalid_value", "an item must be an object", where)
    kind = value.get("type", "message")
    item_id = value.get("id")
    if item_id is not None and (not isinstance(item_id, str) or not item_id):
        raise ProtocolError("invalid_value", "item.id must be a non-empty string", f"{where}.id")
    message = _message_item(value, kind, where)
    if item_id:
        message.id = item_id
    return message


def _message_item(value: dict[str, Any], kind: object, where: str) -> Message:
    if kind == "function_call_output":
        call_id, output = value.get("call_id"), value.get("output")
        if not isinstance(call_id, str) or not isinstance(output, str):
            raise ProtocolError("invalid_value", "a function_call_output needs call_id and output (strings)", where)
        return Message("user", output, kind="function_call_output", call_id=call_id)
    if kind == "function_call":
        call_id, name, arguments = value.get("call_id"), value.get("name"), value.get("arguments", "{}")
        if not all(isinstance(v, str) for v in (call_id, name, arguments)):
            raise ProtocolError("invalid_value", "a function_call needs call_id, name and arguments (strings)", where)
        return Message("assistant", arguments, kind="function_call", call_id=call_id, name=name)
    if kind != "message":
        raise ProtocolError("invalid_value", "item.type must be message, function_call or function_call_output", f"{where}.type")
    role = value.get("role")
    if role not in ("user", "assistant", "system"):
        raise ProtocolError("invalid_value", "item.role must be user, assistant or system", f"{where}.role")
    content = value.get("content")
    if not isinstance(content, list) or not content:
        raise ProtocolError("invalid_value", "item.content must be a non-empty list", f"{where}.content")
    texts = [part.get("text") or part.get("transcript") or "" for part in content if isinstance(part, dict)]
    spoken = [part for part in content if isinstance(part, dict) and isinstance(part.get("audio"), str)]
    if len(texts) < len(content) or not all(isinstance(text, str) for text in texts) or (not any(texts) and not spoken):
        raise ProtocolError("invalid_value", "each content part needs text, or audio (base64, the session's input format)",
                            f"{where}.content")
    if spoken and role != "user":
        raise ProtocolError("invalid_value", "only a user message may carry audio", f"{where}.content")
    return Message(role, " ".join(str(text) for text in texts if text).strip())


def item_audio(value: dict[str, Any]) -> list[str]:
    """The base64 audio of a message item's ``input_audio`` parts (the item has been read with
    :func:`conversation_item`)."""
    return [part["audio"] for part in value.get("content") or () if isinstance(part, dict) and isinstance(part.get("audio"), str)]


_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def known_fields(value: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    """Refuse a field the reference does not define (``unknown_parameter``, as the reference answers)."""
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ProtocolError("unknown_parameter", f"unknown parameter {where}.{unknown[0]}", f"{where}.{unknown[0]}")


def extensions(value: object, offered: frozenset[str]) -> frozenset[str]:
    """``session.extensions``: names of extension events among ``offered``."""
    if not isinstance(value, list) or not all(isinstance(name, str) and name in offered for name in value):
        raise ProtocolError("invalid_value", f"extensions must be a list of {sorted(offered)}", "session.extensions")
    return frozenset(value)


def metadata(value: object) -> dict[str, str] | None:
    """A response's ``metadata``: at most 16 string pairs (keys up to 64 characters, values up to 512), or null."""
    if value is None:
        return None
    if (
        not isinstance(value, dict) or len(value) > 16
        or not all(isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= 512 for k, v in value.items())
    ):
        raise ProtocolError("invalid_value", "metadata must hold at most 16 string pairs (keys <= 64, values <= 512 chars)",
                            "response.metadata")
    return value


def response_input(value: object) -> tuple[str | Message, ...]:
    """A response's ``input``: item references (``{"type": "item_reference", "id": ...}``) and inline items."""
    if not isinstance(value, list):
        raise ProtocolError("invalid_value", "response.input must be a list of items", "response.input")
    read: list[str | Message] = []
    for index, entry in enumerate(value):
        if isinstance(entry, dict) and entry.get("type") == "item_reference":
            if not isinstance(entry.get("id"), str):
                raise ProtocolError("invalid_value", "an item_reference needs an id", f"response.input[{index}].id")
            read.append(entry["id"])
        else:
            read.append(conversation_item(entry, f"response.input[{index}]"))
    return tuple(read)
