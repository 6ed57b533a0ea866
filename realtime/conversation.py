"""The conversation history and its rendering into the decoder's chat prompt (ChatML for Qwen2.5).

History holds only what was heard: reasoning never enters it, and an interrupted reply is cut to the
words the user actually heard. Every message has an item id, so that a client can delete or truncate
it through the wire protocol.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant"]

DEFAULT_INSTRUCTIONS = (
    "You are a friendly voice assistant. Your replies are spoken aloud, so answer in one or two short "
    "sentences of plain words, with no lists, markdown or emoji. Put the answer first."
)

REASONING_PRIMER = "Let me think step by step."
"""Opens the reasoning block: it makes small models reason instead of answering inside ``<think>``."""

STOP_SEQUENCES = ("<|im_end|>", "<|endoftext|>", "<|im_start|>")

_item_ids = itertools.count(1)


def new_item_id() -> str:
    """A process-unique conversation item id."""
    return f"item_{next(_item_ids):06d}"


@dataclass
class Message:
    role: Role
    text: str
    id: str = field(default_factory=new_item_id)


@dataclass
class Conversation:
    """Instructions plus the turns so far."""

    instructions: str = DEFAULT_INSTRUCTIONS
    messages: list[Message] = field(default_factory=list)
    max_messages: int = 40

    def add(self, role: Role, text: str, item_id: str | None = None) -> Message | None:
        """Append a message (empty text is not kept); the oldest messages go beyond ``max_messages``."""
        if not text.strip():
            return None
        message = Message(role, text.strip(), item_id or new_item_id())
        self.messages.append(message)
        del self.messages[: max(0, len(self.messages) - self.max_messages)]
        return message

    def find(self, item_id: str) -> Message | None:
        return next((m for m in self.messages if m.id == item_id), None)

    def delete(self, item_id: str) -> bool:
        message = self.find(item_id)
        if message is not None:
            self.messages.remove(message)
        return message is not None

    def truncate(self, item_id: str, heard: str) -> None:
        """Cut a message to what the user heard (removed if nothing was)."""
        message = self.find(item_id)
        if message is None:
            return
        if heard.strip():
            message.text = heard.strip()
        else:
            self.messages.remove(message)

    def history_prompt(self) -> str:
        """System prompt and every finished turn: the stable part of every next prompt."""
        parts = [_block("system", self.instructions)]
        parts += [_block(m.role, m.text) for m in self.messages]
        return "".join(parts)

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
