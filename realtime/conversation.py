"""The conversation history and its rendering into the decoder's chat prompt (ChatML for Qwen2.5).

History holds only what was heard: reasoning never enters it, and an interrupted reply is cut to the
words the user actually heard.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant"]

DEFAULT_INSTRUCTIONS = (
    "You are a friendly voice assistant. Your replies are spoken aloud, so answer in one or two short "
    "sentences of plain words, with no lists, markdown or emoji. Put the answer first."
)


@dataclass
class Message:
    role: Role
    text: str


@dataclass
class Conversation:
    """Instructions plus the turns so far."""

    instructions: str = DEFAULT_INSTRUCTIONS
    messages: list[Message] = field(default_factory=list)
    max_messages: int = 40

    def add(self, role: Role, text: str) -> None:
        if text.strip():
            self.messages.append(Message(role, text.strip()))
            del self.messages[: max(0, len(self.messages) - self.max_messages)]

    def truncate_last_reply(self, heard: str) -> None:
        """Cut the last assistant message to what the user heard (removed if nothing was)."""
        for index in range(len(self.messages) - 1, -1, -1):
            if self.messages[index].role == "assistant":
                if heard.strip():
                    self.messages[index].text = heard.strip()
                else:
                    del self.messages[index]
                return

    def history_prompt(self) -> str:
        """System prompt and every finished turn: the stable part of every next prompt."""
        parts = [_block("system", self.instructions)]
        parts += [_block(m.role, m.text) for m in self.messages]
        return "".join(parts)

    def user_prefix(self, partial_user_text: str) -> str:
        """The prompt as far as the user's words heard so far (for prefill while they speak)."""
        return f"{self.history_prompt()}<|im_start|>user\n{partial_user_text}"

    def reply_prompt(self, user_text: str) -> str:
        """The generation prompt for a direct answer to ``user_text``."""
        return f"{self.user_prefix(user_text)}<|im_end|>\n<|im_start|>assistant\n"

    def reasoning_prompt(self, user_text: str) -> str:
        """The prompt of the formulation stream: the assistant's turn opened with ``<think>`` and a primer."""
        return f"{self.reply_prompt(user_text)}<think>\n{REASONING_PRIMER}"

    def answer_prompt(self, user_text: str, reasoning: str) -> str:
        """The prompt of the articulation stream: the reasoning so far as a private note, then a fresh answer.

        Small instruction models do not continue sensibly after ``</think>`` (the 0.5B writes a second
        "thought" or nothing), but they use notes given in a system message well.
        """
        note = f"Your private reasoning, not to be read aloud: {REASONING_PRIMER} {reasoning.strip()}"
        return f"{self.user_prefix(user_text)}<|im_end|>\n{_block('system', note)}<|im_start|>assistant\n"


REASONING_PRIMER = "Let me think step by step."
"""Opens the reasoning block: it makes small models reason instead of answering inside ``<think>``."""

STOP_SEQUENCES = ("<|im_end|>", "<|endoftext|>", "<|im_start|>")


def _block(role: str, text: str) -> str:
    return f"<|im_start|>{role}\n{text}<|im_end|>\n"
