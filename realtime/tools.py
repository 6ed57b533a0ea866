"""Function calling: the tools a reply may call, how the model is told about them, and how its calls are read back.

The embedded model (Qwen2.5) and Qwen-family served models take tools in the format of Qwen2.5's own chat template
(the "Hermes" format): the function signatures as JSON lines inside ``<tools></tools>`` in the system message, each
call written as ``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>``. Results go back to the model as
notes, not as the template's ``<tool_response>`` turns (see :mod:`realtime.conversation`). :func:`call_grammar`
constrains the embedded model's calls to the tools' JSON schemas (a llama.cpp grammar in llguidance's syntax, lazy
until ``<tool_call>`` when the model may also answer in words), so that every call parses and its arguments validate.
:class:`ToolCallSplitter` reads a streamed completion back into answer text and tool-call pieces. A served model gets
the tools in its request (the server applies its own template and parser) and its streamed ``tool_calls`` are
written back in the same text form, so one splitter reads both.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

CALL_OPEN = "<tool_call>"
CALL_CLOSE = "</tool_call>"

Choice = Literal["auto", "none", "required"] | str
"""``auto`` (the model decides), ``none`` (no call), ``required`` (at least one call) or a function's name (that
function, once at least)."""

_call_ids = itertools.count(1)


def new_call_id() -> str:
    """A process-unique ``call_id`` for a function call."""
    return f"call_{next(_call_ids):06d}"


@dataclass(frozen=True)
class Tool:
    """A function the model may call (the reference's ``{"type": "function", "name", "description", "parameters"}``)."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    """JSON schema of the arguments object."""

    def signature(self) -> dict[str, Any]:
        """The function as the chat templates list it (OpenAI chat-completions shape)."""
        return {"type": "function", "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}

    def wire(self) -> dict[str, Any]:
        """The tool as the Realtime API writes it in ``session.tools`` / ``response.tools``."""
        return {"type": "function", "name": self.name, "description": self.description, "parameters": self.parameters}


@dataclass(frozen=True)
class ToolUse:
    """The tools of one reply and the choice the model has among them."""

    tools: tuple[Tool, ...] = ()
    choice: Choice = "auto"

    @property
    def offered(self) -> tuple[Tool, ...]:
        """The tools the model is shown: none with ``tool_choice: none`` (so it cannot write a call), only the named
        one when a function is named."""
        if self.choice == "none":
            return ()
        if self.choice in ("auto", "required"):
            return self.tools
        return tuple(t for t in self.tools if t.name == self.choice)

    @property
    def forced(self) -> bool:
        """True when the reply must be a call (``required`` or a named function)."""
        return bool(self.offered) and self.choice != "auto"

    def chat_options(self) -> dict[str, Any]:
        """Request options for a served model's chat completions (empty without tools)."""
        tools = self.offered
        if not tools:
            return {}
        choice: Any = self.choice if self.choice in ("auto", "required") else {"type": "function", "function": {"name": self.choice}}
        return {"tools": [t.signature() for t in tools], "tool_choice": choice}


NO_TOOLS = ToolUse()


def tools_preamble(tools: tuple[Tool, ...]) -> str:
    """What Qwen2.5's chat template appends to the system message when tools are given ("" without tools)."""
    if not tools:
        return ""
    signatures = "\n".join(json.dumps(t.signature(), ensure_ascii=False) for t in tools)
    return (
        "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        f"You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{signatures}\n</tools>\n\n"
        "For each function call, return a json object with function name and arguments within <tool_call></tool_call> "
        'XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
    )


def call_grammar(use: ToolUse) -> dict[str, Any]:
    """llama.cpp sampling options that constrain calls to the offered tools' schemas ({} without tools).

    The grammar (llguidance's Lark syntax with ``%json`` schema rules, the form llama.cpp's
    ``json_schema_to_grammar`` itself produces) accepts one call, and then only the end of the reply: the embedded
    0.5B model follows a call with invented ones (asked the weather in Paris, it also asks for London, every time).
    With ``auto`` it is lazy, applied from the moment the model writes ``<tool_call>``, so the model may answer in words
    instead. An arguments schema without ``additionalProperties`` gets ``false``: a call carries the declared arguments
    only.
    """
    tools = use.offered
    if not tools:
        return {}
    calls = [
        {
            "type": "object",
            "properties": {"name": {"const": t.name}, "arguments": {"additionalProperties": False, **t.parameters}},
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for t in tools
    ]
    schema = calls[0] if len(calls) == 1 else {"anyOf": calls}
    grammar = (
        "%llguidance {}\n"
        f'start: "{_lark(CALL_OPEN)}\\n" call "\\n{_lark(CALL_CLOSE)}"\n'
        f"call: %json {json.dumps(schema)}\n"
    )
    options: dict[str, Any] = {"grammar": grammar}
    if not use.forced:
        # 1: a trigger word; llama.cpp wants it kept as a token of its own
        options |= {"grammar_lazy": True, "grammar_triggers": [{"type": 1, "value": CALL_OPEN}], "preserved_tokens": [CALL_OPEN]}
    return options


def _lark(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


@dataclass(frozen=True)
class CallPiece:
    """Part of a tool call: its start (``name`` set, ``arguments`` empty), then fragments of its arguments' JSON text,
    then its end (``done``: ``arguments`` is the whole, valid JSON text)."""

    call_id: str
    name: str
    arguments: str = ""
    done: bool = False


_HEAD = re.compile(r'\s*\{\s*"name"\s*:\s*"(?P<name>[^"]+)"\s*,\s*"arguments"\s*:\s*(?=\S)')


class ToolCallSplitter:
    """Reads a streamed completion: answer text outside ``<tool_call>`` blocks, :class:`CallPiece` items inside.

    The arguments stream as they are written (everything after ``"arguments":`` except the call's closing brace). A
    block that does not begin like a call (a model writing freely without a grammar) is dropped; a call cut off by
    the end of the stream gets no ``done`` piece.
    """

    def __init__(self) -> None:
        self._pending = ""
        self._body: str | None = None
        """The text of the call being read (None outside a call)."""
        self._call: CallPiece | None = None
        self._streamed = 0
        """Characters of the body already handed out (the head, then arguments)."""

    def push(self, text: str) -> Iterator[str | CallPiece]:
        """Answer text and call pieces in ``text`` (tags may be cut across pushes)."""
        self._pending += text
        while True:
            tag = CALL_OPEN if self._body is None else CALL_CLOSE
            at = self._pending.find(tag)
            cut = at if at >= 0 else len(self._pending) - _partial_suffix(self._pending, tag)
            chunk, self._pending = self._pending[:cut], self._pending[cut:]
            if self._body is None:
                if chunk:
                    yield chunk
            else:
                self._body += chunk
                yield from self._arguments(final=False)
            if at < 0:
                return
            self._pending = self._pending[len(tag) :]
            if self._body is None:
                self._body, self._call, self._streamed = "", None, 0
            else:
                yield from self._arguments(final=True)
                self._body = self._call = None

    def flush(self) -> Iterator[str]:
        """Answer text held back at the end of the stream (an unfinished call is dropped)."""
        rest, self._pending = self._pending, ""
        if self._body is None and rest:
            yield rest
        self._body = self._call = None

    def _arguments(self, *, final: bool) -> Iterator[CallPiece]:
        body = self._body or ""
        if self._call is None:
            head = _HEAD.match(body)
            if head is None:
                return
            self._call = CallPiece(new_call_id(), head["name"])
            self._streamed = head.end()
            yield self._call
        call = self._call
        closed = body.rstrip()
        end = len(closed.removesuffix("}").rstrip()) if closed.endswith("}") else len(body)
        if end > self._streamed:
            yield CallPiece(call.call_id, call.name, body[self._streamed : end])
            self._streamed = end
        if final:
            yield CallPiece(call.call_id, call.name, body[_HEAD.match(body).end() : end], done=True)  # type: ignore[union-attr]


class ToolCallWriter:
    """Writes a served model's streamed ``tool_calls`` deltas (chat-completions shape: ``index``, ``function.name`` on
    a call's first delta, then ``function.arguments`` fragments) as the text the embedded model writes."""

    def __init__(self) -> None:
        self._index: int | None = None

    def write(self, delta: dict[str, Any]) -> str:
        """The text for one delta (a new ``index`` closes the call before it)."""
        function = delta.get("function") or {}
        text = ""
        if delta.get("index", 0) != self._index:
            text = self.close()
            self._index = delta.get("index", 0)
            text += f'{CALL_OPEN}\n{{"name": "{function.get("name") or ""}", "arguments": '
        return text + (function.get("arguments") or "")

    def close(self) -> str:
        """The end of the call being written ("" when none is)."""
        if self._index is None:
            return ""
        self._index = None
        return f"}}\n{CALL_CLOSE}"


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of ``text`` that begins ``tag`` (held back: the tag may be cut across pieces)."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0
