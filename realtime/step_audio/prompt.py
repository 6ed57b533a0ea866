"""The Step-Audio chat format, as token ids.

Turns are ``<|BOT|>{role}\\n{content}<|EOT|>`` with roles ``system``, ``human`` and ``assistant``; audio in a
turn is ``<audio_start>`` + ``<audio_patch>`` x n + ``<audio_end>``, one such block per at most 25 s of audio;
the generation prompt is ``<|BOT|>assistant\\n<think>\\n`` and the model writes
``{reasoning}</think>{answer}<|EOT|>``. History keeps the answer only (no reasoning).

The official code tokenizes each rendered piece with the tokenizer, special tokens recognised; the pieces
always meet at a special token, so tokenizing ``role\\ncontent`` between its ``<|BOT|>`` and ``<|EOT|>`` gives
the same ids. Content (instructions, answers) is tokenized with ``split_special_tokens`` so that text which
spells a control token stays text.
"""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

from realtime.reasoning import THINK_CLOSE, THINK_OPEN
from realtime.step_audio.config import CheckpointError

BOT = "<|BOT|>"
EOT = "<|EOT|>"
AUDIO_START = "<audio_start>"
AUDIO_PATCH = "<audio_patch>"
AUDIO_END = "<audio_end>"


class PromptFormat:
    """The ids of the chat format for one tokenizer."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.tokenizer = tokenizer
        self.bot, self.eot = special_token_id(tokenizer, BOT), special_token_id(tokenizer, EOT)
        self.audio_start = special_token_id(tokenizer, AUDIO_START)
        self.audio_patch = special_token_id(tokenizer, AUDIO_PATCH)
        self.audio_end = special_token_id(tokenizer, AUDIO_END)
        self.think_close = self.control(THINK_CLOSE)
        self.generation_prompt = self.control(f"{BOT}assistant\n{THINK_OPEN}\n")
        self.human_header = self.control(f"{BOT}human\n")

    def control(self, text: str) -> list[int]:
        """Ids of format text, its special tokens recognised."""
        return self.tokenizer.encode(text, add_special_tokens=False)

    def turn(self, role: str, content: str) -> list[int]:
        """``<|BOT|>{role}\\n{content}<|EOT|>``."""
        body = self.tokenizer.encode(f"{role}\n{content}", add_special_tokens=False, split_special_tokens=True)
        return [self.bot, *body, self.eot]

    def audio_block(self, tokens: int) -> list[int]:
        """``<audio_start>`` + ``<audio_patch>`` x tokens + ``<audio_end>``."""
        return [self.audio_start, *[self.audio_patch] * tokens, self.audio_end]


def special_token_id(tokenizer: PreTrainedTokenizerBase, token: str) -> int:
    """The id of one of the format's tokens; :class:`CheckpointError` if the tokenizer lacks it."""
    index = tokenizer.convert_tokens_to_ids(token)
    if not isinstance(index, int) or index == tokenizer.unk_token_id:
        raise CheckpointError(f"the tokenizer has no {token} token: not a Step-Audio checkpoint?")
    return index
