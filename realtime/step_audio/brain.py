"""Step-Audio-R1 as a streaming brain: listen-while-think prefill, speculative replies, Mind-Paced Speaking.

One :class:`StepAudioBrain` (weights and tokenizer) is shared by every session. Each session's
:class:`StepAudioConversation` owns a KV cache (a transformers ``DynamicCache``) that always holds a prefix of
the conversation in the official format::

    <|BOT|>system\\n{instructions}<|EOT|>   finished turns (human audio, the answer as heard)
    <|BOT|>human\\n<audio_start>…<audio_end><audio_start>…   one block per block_seconds, prefilled as heard

:meth:`~StepAudioConversation.reply` prefills the rest (the partial block, ``<|EOT|>``,
``<|BOT|>assistant\\n<think>\\n``) and streams reasoning and answer; :meth:`~StepAudioConversation.rewind_to_heard`
drops a discarded reply (the cache goes back to the end of the last complete block, the partial audio returns to
the buffer); :meth:`~StepAudioConversation.finish_turn` keeps the human audio and the answer the user heard,
never the reasoning, so the next turn computes only new tokens.

Every model call runs in a worker thread under the brain's lock, one decoder step per call while generating:
a consumer that stops pulling, closes the iterator or is cancelled stops generation within one token. A
cancelled call is waited for, and every change of the cache happens inside a call (a rewind is applied by the
next one), so the cache and its token list never disagree.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing
from pathlib import Path
from typing import Any, TypeVar, get_args

import numpy as np
import torch
from transformers import DynamicCache, PreTrainedTokenizerBase

from realtime.audio import MAX_BLOCK_SECONDS, split_blocks
from realtime.reasoning import Channel, Piece, ReplyMode, ThinkSplitter
from realtime.step_audio.checkpoint import load_checkpoint
from realtime.step_audio.mel import SAMPLE_RATE
from realtime.step_audio.model import StepAudioModel
from realtime.step_audio.paced import NextToken, PacedMode, mind_paced_speaking
from realtime.step_audio.prompt import PromptFormat


_T = TypeVar("_T")
_NO_AUDIO = np.zeros(0, dtype=np.float32)


class StepAudioBrain:
    """The model and its tokenizer, loaded once and shared by every session; model calls take turns."""

    def __init__(self, model: StepAudioModel, tokenizer: PreTrainedTokenizerBase) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.format = PromptFormat(tokenizer)
        self.ends: frozenset[int] = frozenset(
            token for token in (self.format.eot, self.format.bot, tokenizer.eos_token_id) if isinstance(token, int)
        )
        """Tokens that end the answer: ``<|EOT|>``, a new ``<|BOT|>``, the tokenizer's end of text."""
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls, model_dir: str | Path, *, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> StepAudioBrain:
        return cls(*load_checkpoint(model_dir, device=device, dtype=dtype))

    def conversation(self, instructions: str, *, block_seconds: float = 2.0) -> StepAudioConversation:
        return StepAudioConversation(self, instructions, block_seconds=block_seconds)

    def run(self, call: Callable[..., _T], *args: Any) -> _T:
        """Run one model call (blocking: from a worker thread) while no other is running."""
        with self._lock, torch.inference_mode():
            return call(*args)


class StepAudioConversation:
    """One session's turns on the shared brain, with its own KV cache."""

    def __init__(self, brain: StepAudioBrain, instructions: str, *, block_seconds: float) -> None:
        if not 0 < block_seconds <= MAX_BLOCK_SECONDS:
            raise ValueError(f"block_seconds must be in (0, {MAX_BLOCK_SECONDS}], not {block_seconds}")
        self._brain = brain
        self._format = brain.format
        self._block_seconds = block_seconds
        self._block_samples = round(block_seconds * SAMPLE_RATE)
        self._lock = asyncio.Lock()
        # Owned by the event loop.
        self._unsent = self._format.turn("system", instructions.strip()) if instructions.strip() else []
        self._turn_open = False
        self._pending = _NO_AUDIO
        """Audio heard and not yet in the cache as a complete block."""
        self._partial = _NO_AUDIO
        """The partial block the reply in flight prefilled (back to ``_pending`` on a rewind)."""
        self._replying = False
        self._epoch = 0
        """Bumped by every rewind, finish and close: a reply's steps run only in their own epoch."""
        self._busy = 0
        self._closed = False
        # Owned by the model calls (changed only inside ``StepAudioBrain.run``).
        self._cache: DynamicCache | None = brain.model.new_cache()
        self._ids: list[int] = []
        self._logits: torch.Tensor | None = None
        self._heard = 0
        self._human_end = 0
        self._prompt = 0
        self._prompt_logits: torch.Tensor | None = None
        self._rewind = False

    @property
    def token_ids(self) -> tuple[int, ...]:
        """The ids in the KV cache, audio positions as ``<audio_patch>``."""
        return tuple(self._ids)

    async def hear(self, samples: np.ndarray) -> None:
        """Append 16 kHz mono audio of the user's turn; each complete block is prefilled at once (unless a reply
        is in flight: then it waits in the buffer for :meth:`rewind_to_heard` or the next turn)."""
        self._check_open()
        self._pending = np.concatenate([self._pending, np.asarray(samples, dtype=np.float32).reshape(-1)])
        if self._replying or len(self._pending) < self._block_samples:
            return
        async with self._lock:
            if self._replying:
                return
            blocks, self._pending = split_blocks(self._pending, self._block_seconds)
            if blocks:
                await self._call(self._absorb, self._take_opening(), blocks)

    def rewind_to_heard(self) -> None:
        """Discard the reply in flight (the user goes on speaking): the cache goes back to the end of the last
        complete block (applied by the next model call) and the partial block's audio returns to the buffer."""
        if not self._replying:
            return
        self._epoch += 1
        self._replying = False
        self._pending = np.concatenate([self._partial, self._pending])
        self._partial = _NO_AUDIO
        self._rewind = True

    async def reply(
        self,
        *,
        max_tokens: int,
        reasoning_budget: int | None = None,
        temperature: float = 0.0,
        mode: ReplyMode = "budget",
    ) -> AsyncGenerator[Piece, None]:
        """Prefill the partial block, ``<|EOT|>`` and the generation prompt, then stream the reasoning and the answer.

        ``max_tokens`` caps the answer, ``reasoning_budget`` the reasoning (None: until the model closes it);
        ``mode`` is plain decoding (``budget``) or a Mind-Paced Speaking schedule. The prefill runs when the
        iteration starts; the reply stays in flight until :meth:`finish_turn` or :meth:`rewind_to_heard`.
        """
        self._check_open()
        if mode not in get_args(ReplyMode):
            raise ValueError(f"unknown reply mode {mode!r}")
        async with self._lock:
            if self._replying:
                raise RuntimeError("a reply is in flight: finish_turn() or rewind_to_heard() first")
            self._epoch += 1
            epoch = self._epoch
            self._replying = True
            blocks, self._partial = split_blocks(self._pending, self._block_seconds)
            self._pending = _NO_AUDIO
            await self._call(self._start_reply, self._take_opening(), blocks, self._partial)

        async def next_token(tail: Sequence[int]) -> int | None:
            return await self._call(self._next_token, epoch, list(tail), temperature)

        if mode == "budget":
            pieces = self._single_stream(next_token, max_tokens, reasoning_budget)
        else:
            pieces = self._paced_stream(next_token, mode, max_tokens, reasoning_budget)
        async with aclosing(pieces):
            async for piece in pieces:
                yield piece

    async def finish_turn(self, heard_answer: str) -> None:
        """End the turn: history keeps the human audio and ``heard_answer`` (no reasoning; nothing if empty)."""
        self._check_open()
        if not self._replying:
            raise RuntimeError("no reply to finish")
        async with self._lock:
            self._epoch += 1
            self._replying = False
            self._partial = _NO_AUDIO
            self._turn_open = False
            answer = heard_answer.strip()
            await self._call(self._finish, self._format.turn("assistant", answer) if answer else [])

    def close(self) -> None:
        """Stop any reply and free the cache (once the model call in flight, if any, has ended)."""
        self._closed = True
        self._replying = False
        self._epoch += 1
        if not self._busy:
            self._free()

    # Generation.

    async def _single_stream(
        self, next_token: NextToken, max_tokens: int, reasoning_budget: int | None
    ) -> AsyncGenerator[Piece, None]:
        """One stream: reasoning until ``</think>`` (forced when the budget is spent, and in place of an end of
        text inside the reasoning), then the answer until an end token."""
        close = self._format.think_close
        splitter = ThinkSplitter(thinking=True)
        text = Detokenizer(self._brain.tokenizer)
        tail: list[int] = []
        reasoning = answer = 0
        while answer < max_tokens:
            if splitter.thinking and reasoning_budget is not None and reasoning >= reasoning_budget:
                new = close
            else:
                token = await next_token(tail)
                if token is None:
                    return
                if token in self._brain.ends:
                    if not splitter.thinking:
                        break
                    new = close
                else:
                    new = [token]
                    if splitter.thinking:
                        reasoning += 1
                    else:
                        answer += 1
            tail += new
            for piece in splitter.push(text.push(new)):
                yield piece
            if new is close and splitter.thinking:
                splitter.close_reasoning()
        for piece in splitter.push(text.flush()) + splitter.flush():
            yield piece

    async def _paced_stream(
        self, next_token: NextToken, mode: PacedMode, max_tokens: int, reasoning_budget: int | None
    ) -> AsyncGenerator[Piece, None]:
        texts: dict[Channel, Detokenizer] = {
            "reasoning": Detokenizer(self._brain.tokenizer),
            "answer": Detokenizer(self._brain.tokenizer),
        }
        tokens = mind_paced_speaking(
            next_token,
            think_close=self._format.think_close,
            ends=self._brain.ends,
            mode=mode,
            reasoning_budget=reasoning_budget,
            max_answer_tokens=max_tokens,
        )
        async with aclosing(tokens):
            async for channel, token in tokens:
                if text := texts[channel].push([token]):
                    yield Piece(channel, text)
        for channel, detokenizer in texts.items():
            if text := detokenizer.flush():
                yield Piece(channel, text)

    # Event-loop helpers.

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the conversation is closed")

    def _take_opening(self) -> list[int]:
        """The ids that open the human turn (and the system turn before the first), once per turn."""
        if self._turn_open:
            return []
        self._turn_open = True
        opening, self._unsent = self._unsent + self._format.human_header, []
        return opening

    async def _call(self, call: Callable[..., _T], *args: Any) -> _T:
        """Run a model call in a worker thread; if the caller is cancelled, the call still ends before this does."""
        self._busy += 1
        task = asyncio.ensure_future(asyncio.to_thread(self._brain.run, call, *args))
        try:
            return await asyncio.shield(task)
        finally:
            if not task.done():
                await asyncio.wait({task})
            self._busy -= 1
            if self._closed and not self._busy:
                self._free()

    def _free(self) -> None:
        self._cache = None
        self._ids = []
        self._logits = self._prompt_logits = None

    # Model calls (run by StepAudioBrain.run in a worker thread).

    def _absorb(self, opening: list[int], blocks: list[np.ndarray]) -> None:
        self._apply_rewind()
        self._prefill([opening, *blocks])
        self._heard = len(self._ids)

    def _start_reply(self, opening: list[int], blocks: list[np.ndarray], partial: np.ndarray) -> None:
        self._apply_rewind()
        ends = self._prefill([opening, *blocks, partial, [self._format.eot], self._format.generation_prompt])
        self._heard, self._human_end, self._prompt = ends[-4], ends[-2], ends[-1]
        self._prompt_logits = self._logits

    def _next_token(self, epoch: int, tail: list[int], temperature: float) -> int | None:
        """The token after the generation prompt + ``tail``, reusing the longest cached prefix."""
        if epoch != self._epoch or self._cache is None:
            return None
        if self._ids[self._prompt :] != tail:
            if tail:
                keep = min(_common_prefix(self._ids[self._prompt :], tail), len(tail) - 1)
                self._truncate(self._prompt + keep)
                self._feed(tail[keep:])
            else:
                self._truncate(self._prompt)
                self._logits = self._prompt_logits
        assert self._logits is not None
        return _sample(self._logits, temperature)

    def _finish(self, answer_ids: list[int]) -> None:
        self._truncate(self._human_end)
        self._prefill([answer_ids])
        self._heard = len(self._ids)

    def _apply_rewind(self) -> None:
        if self._rewind:
            self._rewind = False
            self._truncate(self._heard)

    def _prefill(self, parts: Sequence[list[int] | np.ndarray]) -> list[int]:
        """Prefill token ids and audio blocks (each its own ``<audio_start>…<audio_end>``) in one forward pass;
        returns the cache length at the end of each part."""
        ids: list[int] = []
        audio: list[torch.Tensor] = []
        ends: list[int] = []
        for part in parts:
            if isinstance(part, np.ndarray):
                embeddings = self._brain.model.encode_audio(part)
                if len(embeddings):
                    ids += self._format.audio_block(len(embeddings))
                    audio.append(embeddings)
            else:
                ids += part
            ends.append(len(self._ids) + len(ids))
        if ids:
            self._feed(ids, torch.cat(audio) if audio else None)
        return ends

    def _feed(self, ids: list[int], audio: torch.Tensor | None = None) -> None:
        model = self._brain.model
        self._logits = model(torch.tensor(ids, device=model.device), self._cache, audio)
        self._ids += ids

    def _truncate(self, length: int) -> None:
        if len(self._ids) > length:
            self._cache.crop(length - len(self._ids))
            del self._ids[length:]
            self._logits = None


class Detokenizer:
    """Incremental decoding that never emits half a character (the prefix/read offsets of TGI and vLLM)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self._tokenizer = tokenizer
        self._ids: list[int] = []
        self._prefix = self._read = 0

    def push(self, ids: Sequence[int]) -> str:
        self._ids.extend(ids)
        before, after = self._texts()
        if len(after) <= len(before) or after.endswith("\ufffd"):
            return ""
        self._prefix, self._read = self._read, len(self._ids)
        return after[len(before) :]

    def flush(self) -> str:
        """The rest, even an incomplete character."""
        before, after = self._texts()
        self._prefix = self._read = len(self._ids)
        return after[len(before) :]

    def _texts(self) -> tuple[str, str]:
        decode = self._tokenizer.decode
        return decode(self._ids[self._prefix : self._read]), decode(self._ids[self._prefix :])


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    size = min(len(a), len(b))
    return next((i for i in range(size) if a[i] != b[i]), size)


def _sample(logits: torch.Tensor, temperature: float) -> int:
    if temperature <= 0:
        return int(torch.argmax(logits))
    return int(torch.multinomial(torch.softmax(logits / temperature, dim=-1), 1))
