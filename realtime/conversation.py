"""The conversation history and its rendering into the decoder's chat prompt (ChatML for Qwen2.5).

History holds only what was heard: reasoning never enters it, and an interrupted reply is cut to the
words the user actually heard. Every message has an item id, so that a client can delete or truncate
it through the wire protocol.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import Literal

from realtime.context_window import SLOT_CONTEXT
from realtime.tools import Tool, tools_preamble

Role = Literal["system", "user", "assistant"]
Kind = Literal["message", "function_call", "function_call_output"]

ROOT = "root"
"""``previous_item_id`` that puts an item at the start of the conversation."""

DEFAULT_INSTRUCTIONS = (
    "You are a friendly voice assistant. Your replies are spoken aloud, so answer in one or two short "
    "sentences of plain words, with no lists, markdown or emoji. Put the answer first."
)

REASONING_PRIMER = "Let me think step by step."
"""Opens the reasoning block: it makes small models reason instead of answering inside ``<think>``."""

STOP_SEQUENCES = ("<|im_end|>", "<|endoftext|>", "<|im_start|>")

HISTORY_TOKENS = SLOT_CONTEXT // 2
"""Most tokens (as :func:`estimate_tokens` counts them) of the history prompt (instructions, tools and items): half of a
decoder slot's context (:data:`~realtime.context_window.SLOT_CONTEXT`), leaving the other half to the user's turn, a reasoning
note and the reply. Past it the oldest turns go (:meth:`Conversation.compact`)."""

_item_ids = itertools.count(1)


def estimate_tokens(text: str) -> int:
    """An upper estimate of the tokens of ``text`` for Qwen2.5's byte-level BPE (the embedded models'): a third of its
    UTF-8 bytes plus one per digit (Qwen2.5 writes each digit as its own token). Measured with the embedded 0.5B's
    tokenizer: English chat prompts ~4.6 bytes a token, digits and spaces 1, emoji ~4.4, Japanese ~4.7."""
    return (len(text.encode()) + 2) // 3 + sum(c.isdigit() for c in text)


def new_item_id() -> str:
    """A process-unique conversation item id."""
    return f"item_{next(_item_ids):06d}"


@dataclass
class Message:
    """A conversation item: a message, a function call (``text`` holds its arguments' JSON text) or a function call's
    output (``text`` holds the output)."""

    role: Role
    text: str
    id: str = field(default_factory=new_item_id)
    kind: Kind = "message"
    call_id: str | None = None
    """The call a function call or its output belongs to."""
    name: str | None = None
    """The function a call calls."""
    audio_ms: int = 0
    """For a spoken reply: how long its audio is (ms), to cut its words to a client's truncation later."""


@dataclass(frozen=True)
class Truncation:
    """How much of the history a cut keeps: OpenAI's session ``truncation`` (``"auto"``, or ``{"type":
    "retention_ratio", "retention_ratio": R, "token_limits": {"post_instructions": N}}``)."""

    retention_ratio: float = 0.25
    """The share of the tokens allowed after the instructions that a cut keeps. "auto" keeps a quarter: a cut makes
    the decoder prefill all it keeps again, and on two cores the embedded 0.5B prefills ~100 tokens a second, so a
    quarter of its 2048-token history (~330 real tokens) is prefilled again in ~3 s, behind the reply that is
    playing, where keeping half made the next reply 4-7 s late (``benchmarks.soak``). A lower ratio also prefills
    less in all: ``ratio / (1 - ratio)`` tokens again for every token the history grows."""
    post_instructions_tokens: int | None = None
    """The most tokens after the instructions (None: as many as the model's context allows)."""
    auto: bool = True
    """Asked for as ``"auto"`` (as the session reports it back)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.retention_ratio <= 1.0:
            raise ValueError("retention_ratio must be from 0 to 1")


@dataclass
class Conversation:
    """Instructions plus the turns so far.

    Instructions changed once the conversation has begun (:meth:`instruct`, and one reply's own in :meth:`view`) are
    not written into the system message at the prompt's head: that would move everything after it, and the decoder's
    prefix cache would no longer match, so the whole history would be prefilled again, on the next reply's critical
    path (measured with the embedded 0.5B on two cores: ~1300 tokens, 12-14 s; ``benchmarks.soak``, whose
    ``session.update`` every tenth turn made that turn's reply 4-14 s late). They are given where the conversation
    stands, as a system message after the last item, and folded into the head at the next :meth:`compact`, which
    moves the prompt's start anyway."""

    instructions: str = DEFAULT_INSTRUCTIONS
    """The instructions of the system message at the prompt's head (:attr:`current_instructions` are the latest)."""
    messages: list[Message] = field(default_factory=list)
    max_history_tokens: int = HISTORY_TOKENS
    """Most tokens of :meth:`history_prompt` (:func:`estimate_tokens`); :meth:`compact` keeps to it."""
    tools: tuple[Tool, ...] = ()
    """The tools the model is shown in the system message (Qwen2.5's format; empty for a server that renders them)."""
    truncation: Truncation = field(default_factory=Truncation)
    """How :meth:`compact` cuts the history (the session's ``truncation``)."""
    changes: list[tuple[str, str]] = field(default_factory=list)
    """Instructions given since the head's: (the id of the item they follow, "" for none; the instructions), oldest
    first."""

    @property
    def current_instructions(self) -> str:
        """The instructions in force: the latest given."""
        return self.changes[-1][1] if self.changes else self.instructions

    def instruct(self, instructions: str) -> None:
        """New instructions from now on. Before any item they replace the head's; after, they follow the last item
        (the prompt before them is unchanged)."""
        if instructions == self.current_instructions:
            return
        if self.messages:
            self.changes.append((self.messages[-1].id, instructions))
        else:
            self.instructions, self.changes = instructions, []

    def add(self, role: Role, text: str, item_id: str | None = None, *, audio_ms: int = 0) -> Message | None:
        """Append a message (empty text is not kept; ``audio_ms``: how long it was spoken). Nothing is dropped here:
        see :meth:`compact`."""
        if not text.strip():
            return None
        message = Message(role, text.strip(), item_id or new_item_id(), audio_ms=audio_ms)
        self.messages.append(message)
        return message

    def insert(self, message: Message, previous_item_id: str | None = None) -> None:
        """Put ``message`` after ``previous_item_id`` (None: at the end; :data:`ROOT`: at the start). Raises ``KeyError``
        for an unknown ``previous_item_id``."""
        if previous_item_id is None:
            self.messages.append(message)
        elif previous_item_id == ROOT:
            self.messages.insert(0, message)
        else:
            previous = self.find(previous_item_id)
            if previous is None:
                raise KeyError(previous_item_id)
            self.messages.insert(self.messages.index(previous) + 1, message)

    def compact(self, *, quiet: bool) -> list[Message]:
        """Drop the oldest turns, in one large step, once the history nears its limit; return them.

        The limit: :attr:`max_history_tokens` for the whole history prompt, or less where :attr:`truncation` sets
        the tokens after the instructions. Every drop moves the prompt's start, so the decoder's prefix cache no longer
        matches and the whole history kept is prefilled again (in the background: the caller prefills at a quiet
        moment; with the embedded 0.5B on two cores ~100 tokens a second). So drops are rare and large: past 7/8 of
        the limit at a ``quiet`` moment (nobody speaks), past the limit itself at any moment; items go from the start
        until the tokens after the instructions are at most :attr:`Truncation.retention_ratio` of what the limit
        allows them, and on until it starts at a user message, so a turn is kept whole or not at all (the last one always)."""
        head = estimate_tokens(_block("system", self.current_instructions + tools_preamble(self.tools)))
        limit = self.max_history_tokens
        if self.truncation.post_instructions_tokens is not None:
            limit = min(limit, head + self.truncation.post_instructions_tokens)
        if estimate_tokens(self.history_prompt()) <= (limit * 7 // 8 if quiet else limit):
            return []
        keep = self.truncation.retention_ratio * max(limit - head, 0)
        users = [i for i, m in enumerate(self.messages) if _is_user_message(m)]
        last_turn = users[-1] if users else len(self.messages)  # the last turn always stays
        cut = 0
        while cut < last_turn and (
            estimate_tokens(self.view(messages=self.messages[cut:]).history_prompt()) - head > keep
            or not _is_user_message(self.messages[cut])
        ):
            cut += 1
        dropped = self.messages[:cut]
        del self.messages[:cut]
        self.instructions, self.changes = self.current_instructions, []  # the start moved: the head takes the latest
        return dropped

    def previous_id(self, item_id: str) -> str | None:
        """The id of the item before ``item_id`` (None at the start or for an unknown id)."""
        ids = [m.id for m in self.messages]
        at = ids.index(item_id) if item_id in ids else 0
        return ids[at - 1] if at > 0 else None

    def view(
        self, *, instructions: str | None = None, tools: tuple[Tool, ...] | None = None, messages: list[Message] | None = None
    ) -> Conversation:
        """This conversation with other instructions, tools or items for one reply (None keeps this one's); the
        messages list is shared, not copied, unless replaced. Other instructions for the history follow its last item
        (before it, when that is the user's message the reply answers: after the question, the 0.5B model answers
        the instructions instead); with other items, nothing is cached to keep, and they are the head's."""
        view = dataclasses.replace(
            self,
            tools=self.tools if tools is None else tools,
            messages=self.messages if messages is None else messages,
            changes=[] if messages is not None else list(self.changes),
        )
        if messages is not None:
            view.instructions = self.current_instructions if instructions is None else instructions
        elif instructions is not None and instructions != view.current_instructions:
            last = len(view.messages) - 1
            if last >= 0 and _is_user_message(view.messages[last]):
                last -= 1
            view.changes.append((view.messages[last].id if last >= 0 else "", instructions))
        return view

    def answers_results(self) -> bool:
        """True when the last item is a function call's output (the next reply answers it)."""
        return bool(self.messages) and self.messages[-1].kind == "function_call_output"

    def find(self, item_id: str) -> Message | None:
        return next((m for m in self.messages if m.id == item_id), None)

    def delete(self, item_id: str) -> bool:
        """Delete an item; instructions given after it then follow the item before it."""
        message = self.find(item_id)
        if message is not None:
            before = self.previous_id(item_id) or ""
            self.changes = [(before if after == item_id else after, text) for after, text in self.changes]
            self.messages.remove(message)
        return message is not None

    def truncate(self, item_id: str, heard: str) -> None:
        """Cut a message to what the user heard (it stays, empty, if nothing was: the client may still address it)."""
        message = self.find(item_id)
        if message is not None:
            message.text = heard.strip()

    def history_prompt(self) -> str:
        """System prompt and every finished turn: the stable part of every next prompt."""
        return _block("system", self.instructions + tools_preamble(self.tools)) + "".join(_render(self.messages, self.changes))

    def user_prefix(self, partial_user_text: str) -> str:
        """The prompt as far as the user's words heard so far (for prefill while they speak)."""
        return f"{self.history_prompt()}<|im_start|>user\n{partial_user_text}"

    def reply_prompt(self, user_text: str | None) -> str:
        """The generation prompt for a direct answer to ``user_text`` (None: to the history as it is)."""
        return f"{self._context(user_text)}<|im_start|>assistant\n"

    def reasoning_prompt(self, user_text: str | None) -> str:
        """The prompt of the formulation stream: the assistant's turn opened with ``<think>`` and a primer."""
        return f"{self.reply_prompt(user_text)}<think>\n{REASONING_PRIMER}"

    def answer_prompt(self, user_text: str | None, reasoning: str) -> str:
        """The prompt of the articulation stream: the reasoning so far as a private note, then a fresh answer.

        Small instruction models do not continue sensibly after ``</think>`` (the 0.5B writes a second
        "thought" or nothing), but they use notes given in a system message well. The note goes before the
        question: after it, the 0.5B sometimes answers the note ("This information was provided ...").
        """
        note = f"Your private reasoning, not to be read aloud: {REASONING_PRIMER} {reasoning.strip()}"
        if user_text is None:
            return f"{self.history_prompt()}{_block('system', note)}<|im_start|>assistant\n"
        # the note before the question: the last message the model answers is the user's, not the note
        return f"{self.history_prompt()}{_block('system', note)}{_block('user', user_text)}<|im_start|>assistant\n"

    def _context(self, user_text: str | None) -> str:
        if user_text is None:
            return self.history_prompt()
        return f"{self.user_prefix(user_text)}<|im_end|>\n"


def _block(role: str, text: str) -> str:
    return f"<|im_start|>{role}\n{text}<|im_end|>\n"


def _render(messages: list[Message], changes: list[tuple[str, str]]) -> list[str]:
    """The items as blocks, each of the instruction ``changes`` as a system block after the item it follows (at the
    start when that item is not among ``messages``); a function call and its output become one system note where the output is (a call
    without one yet, where the call is), as the reasoning note is given (:meth:`Conversation.answer_prompt`).

    Notes, not Qwen2.5's ``<tool_call>`` / ``<tool_response>`` turns: given those, the embedded 0.5B model calls
    the same function again instead of answering with its result (measured: every time on the weather example),
    and answers in words from a note: with this wording it kept both facts of the result in 7 of 8 tries (four
    results, two instructions), against 4 of 8 for "Answer with this result". Served models read the notes as well."""
    calls = {m.call_id: m for m in messages if m.kind == "function_call"}
    answered = {m.call_id for m in messages if m.kind == "function_call_output"}
    ids = {m.id for m in messages}
    blocks = [_instructions(text) for after, text in changes if after not in ids]
    for m in messages:
        if m.kind == "function_call" and m.call_id not in answered:
            blocks.append(_block("system", f"The function {_call(m)} was called; its result has not arrived yet."))
        elif m.kind == "function_call_output":
            call = calls.get(m.call_id)
            called = f"The function {_call(call)}" if call is not None else "A function"
            blocks.append(_block("system", f"{called} returned: {m.text}\nTell the user exactly this result in one sentence."))
        elif m.kind == "message" and m.text:
            blocks.append(_block(m.role, m.text))
        blocks += [_instructions(text) for after, text in changes if after == m.id]
    return blocks


def _is_user_message(message: Message) -> bool:
    """A message the user said or typed (not a function call's output, which also has the user role)."""
    return (message.kind, message.role) == ("message", "user")


def _instructions(text: str) -> str:
    return _block("system", f"New instructions, in place of all the earlier ones: {text}")


def _call(call: Message) -> str:
    return f"{call.name}({call.text})"


def chat_messages(prompt: str) -> tuple[list[dict[str, str]], bool]:
    """The messages of a prompt rendered here, for a server that applies the model's own chat template.

    The second value is True when the last message is an assistant prefix to continue (the reasoning
    stream's ``<think>`` opening). An empty assistant turn at the end is the generation prompt itself and is
    dropped; an open user turn (the partial words of a prefill) stays as the last message.
    """
    messages: list[dict[str, str]] = []
    closed = True
    for block in prompt.split("<|im_start|>")[1:]:
        role, _, rest = block.partition("\n")
        content, closed = (rest.removesuffix("<|im_end|>\n"), True) if rest.endswith("<|im_end|>\n") else (rest, False)
        messages.append({"role": role, "content": content})
    if not closed and messages[-1]["role"] == "assistant":
        if not messages[-1]["content"]:
            messages.pop()
            return messages, False
        return messages, True
    return messages, False
