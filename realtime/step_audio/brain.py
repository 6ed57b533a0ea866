"""Step-Audio-R1 as a streaming brain: listen-while-think prefill, speculative replies, Mind-Paced Speaking.

One :class:`StepAudioBrain` (weights and tokenizer, a :class:`~realtime.brain.Brain`) is shared by every session.
Each session's :class:`StepAudioConversation` (a :class:`~realtime.brain.BrainSession`) owns a KV cache (a
transformers ``DynamicCache``) that always holds a prefix of the conversation in the official format::

    <|BOT|>system\\n{instructions}<|EOT|>   finished turns (human audio, the answer as heard)
    <|BOT|>human\\n<audio_start>…<audio_end><audio_start>…   one block per block_seconds, prefilled as heard

:meth:`~StepAudioConversation.reply` prefills the rest (the partial block, ``<|EOT|>``,
``<|BOT|>assistant\\n<think>\\n``) and streams reasoning and answer; :meth:`~StepAudioConversation.rewind`
drops a discarded reply (the cache goes back to the end of the last complete block, the partial audio returns to
the buffer); :meth:`~StepAudioConversation.finish_turn` keeps the human audio and the answer the user heard,
never the reasoning, so the next turn computes only new tokens. A reply to a turn with no audio (a typed
message, or the history as it stands) has a text human turn, or none.

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
from typing import TYPE_CHECKING, TypeVar, TypeVarTuple, get_args

import numpy as np
import torch
from transformers import DynamicCache, PreTrainedTokenizerBase

from realtime.audio_blocks import MAX_BLOCK_SECONDS, AudioBlocks, split_blocks
from realtime.brain import ReplyRequest
from realtime.decoder import Hold, never
from realtime.errors import BrainStateError
from realtime.reasoning import Channel, Piece, ReplyMode, ThinkSplitter
from realtime.step_audio.checkpoint import load_checkpoint
from realtime.step_audio.detokenizer import Detokenizer
from realtime.step_audio.model import StepAudioModel
from realtime.step_audio.paced import NextToken, PacedMode, mind_paced_speaking
from realtime.step_audio.prompt import PromptFormat

if TYPE_CHECKING:
    from realtime.conversation import Conversation, Message

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")


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
        """Load a checkpoint directory (:func:`~realtime.step_audio.checkpoint.load_checkpoint`; raises
        :class:`~realtime.step_audio.config.CheckpointError` naming what is wrong with it)."""
        return cls(*load_checkpoint(model_dir, device=device, dtype=dtype))

    def open(
        self, conversation: Conversation, *, block_seconds: float = 2.0, background: Hold = never
    ) -> StepAudioConversation:
        """A session's conversation with its own KV cache, opened with ``conversation.current_instructions`` (the brain keeps
        its own history, the human audio and the answers as heard). ``block_seconds``: the audio encoded and
        prefilled at a time while the user speaks; ``ValueError`` outside (0, 25]. ``background`` is ignored: the
        model computes on its GPU, not on the cores the sessions share."""
        return StepAudioConversation(self, conversation.current_instructions, block_seconds=block_seconds)

    def run(self, call: Callable[[*_Ts], _T], *args: *_Ts) -> _T:
        """Run one model call (blocking: from a worker thread) while no other is running."""
        with self._lock, torch.inference_mode():
            return call(*args)


class StepAudioConversation:
    """One session's turns on the shared brain, with its own KV cache (see :class:`~realtime.brain.BrainSession`)."""

    hears_audio = True
    calls_tools = False

    def __init__(self, brain: StepAudioBrain, instructions: str, *, block_seconds: float) -> None:
        self._brain = brain
        self._format = brain.format
        self._lock = asyncio.Lock()
        # Owned by the event loop.
        self._audio = AudioBlocks(block_seconds)
        """Audio heard and not yet in the cache as a complete block, and the partial block of the reply in flight."""
        self._unsent: list[list[int] | np.ndarray] = [self._format.turn("system", instructions.strip())] if instructions.strip() else []
        """What is still to prefill before the next turn's content: the system turn, then the client's items."""
        self._turn_open = False
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
        """Append the next chunk of the user's audio (float32 mono at 16 kHz, any length); each complete block is
        prefilled at once (unless a reply is in flight: then it waits in the buffer for :meth:`rewind` or the next
        turn). Raises :class:`~realtime.errors.BrainStateError` once closed."""
        self._check_open()
        self._audio.add(samples)
        if not self._audio.ready:
            return
        async with self._lock:
            self._check_open()
            if blocks := self._audio.take_blocks():
                await self._call(self._absorb, self._take_opening(), blocks)

    async def hear_partial(self, text: str) -> None:
        """Ignored: the brain hears the audio itself."""

    async def prefill(self) -> None:
        """Nothing to do: the cache always holds the history (each block and each finished turn is prefilled as it
        comes)."""

    def rewind(self) -> None:
        """Discard the reply in flight (the user goes on speaking): the cache goes back to the end of the last
        complete block (applied by the next model call) and the partial block's audio returns to the buffer.
        Nothing happens when no reply is in flight."""
        if self._audio.rewind():
            self._epoch += 1
            self._rewind = True

    async def reply(self, request: ReplyRequest) -> AsyncGenerator[Piece, None]:
        """Prefill the partial block, ``<|EOT|>`` and the generation prompt, then stream the reasoning and the answer.

        The reply answers the audio heard in this turn; with none, ``request.user_text`` as a text human turn, or
        (None) the history as it stands. ``request.max_tokens`` caps the answer, ``request.reasoning_budget`` the
        reasoning; ``request.mode`` is plain decoding (``budget``) or a Mind-Paced Speaking schedule. The checks
        and the prefill run when the iteration starts; the reply stays in flight until :meth:`finish_turn` or
        :meth:`rewind`. Raises :class:`~realtime.errors.BrainStateError` when a reply is in flight or the session
        is closed, ``ValueError`` for an unknown mode.
        """
        self._check_open()
        if request.mode not in get_args(ReplyMode):
            raise ValueError(f"unknown reply mode {request.mode!r}")
        async with self._lock:
            self._check_open()
            blocks, partial = self._audio.start_reply()
            self._epoch += 1
            epoch = self._epoch
            typed = (request.user_text or "").strip()
            said: np.ndarray | list[int]
            if self._turn_open or blocks or len(partial):  # the audio heard
                opening, said, close = self._take_opening(), partial, [self._format.eot]
            elif typed:  # nothing heard: a typed message
                opening, said, close = self._take_opening(human=False), self._format.turn("human", typed), []
            else:  # a reply to the history as it stands
                opening, said, close = self._take_opening(human=False), [], []
            await self._call(self._start_reply, opening, blocks, said, close)

        async def next_token(tail: Sequence[int]) -> int | None:
            return await self._call(self._next_token, epoch, list(tail), request.temperature)

        if request.mode == "budget":
            pieces = self._single_stream(next_token, request.max_tokens, request.reasoning_budget)
        else:
            pieces = self._paced_stream(next_token, request.mode, request.max_tokens, request.reasoning_budget)
        async with aclosing(pieces):
            async for piece in pieces:
                yield piece

    async def finish_turn(self, heard_answer: str) -> None:
        """End the turn: history keeps the human turn and ``heard_answer`` (no reasoning; nothing if empty); audio
        heard since the reply began waits for the next turn. Raises :class:`~realtime.errors.BrainStateError` when
        no reply is in flight or the session is closed."""
        self._check_open()
        self._audio.finish_reply()
        self._epoch += 1
        self._turn_open = False
        answer = heard_answer.strip()
        async with self._lock:
            self._check_open()
            await self._call(self._finish, self._format.turn("assistant", answer) if answer else [])

    def add_item(self, message: Message, audio: np.ndarray | None = None) -> None:
        """A client's message enters this history: prefilled before the next turn (a human message as its ``audio``,
        16 kHz float32, when it has some). Function items are ignored (this brain calls no functions)."""
        self._check_open()
        if message.kind != "message":
            return
        role = "human" if message.role == "user" else message.role
        if audio is not None and role == "human":
            blocks, rest = split_blocks(audio, MAX_BLOCK_SECONDS)
            self._unsent += [self._format.human_header, *blocks, rest, [self._format.eot]]
        elif message.text:
            self._unsent.append(self._format.turn(role, message.text))

    def close(self) -> None:
        """Stop any reply and free the cache (once the model call in flight, if any, has ended). Idempotent."""
        self._closed = True
        self._epoch += 1
        if not self._busy:
            self._free()

    # Generation.

    async def _single_stream(
        self, next_token: NextToken, max_tokens: int, reasoning_budget: int
    ) -> AsyncGenerator[Piece, None]:
        """One stream: reasoning until ``</think>`` (forced when the budget is spent, and in place of an end of
        text inside the reasoning), then the answer until an end token."""
        close = self._format.think_close
        splitter = ThinkSplitter(thinking=True)
        text = Detokenizer(self._brain.tokenizer)
        tail: list[int] = []
        reasoning = answer = 0
        while answer < max_tokens:
            if splitter.thinking and reasoning >= reasoning_budget:
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
        self, next_token: NextToken, mode: PacedMode, max_tokens: int, reasoning_budget: int
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
            raise BrainStateError("the brain session is closed")

    def _take_opening(self, *, human: bool = True) -> list[list[int] | np.ndarray]:
        """The parts still to prefill before the turn's content: the system turn before the first turn, the client's
        items since, and (``human``) the header of the human turn of audio, once per turn."""
        opening, self._unsent = self._unsent, []
        if human and not self._turn_open:
            self._turn_open = True
            opening = [*opening, self._format.human_header]
        return opening

    async def _call(self, call: Callable[[*_Ts], _T], *args: *_Ts) -> _T:
        """Run a model call in a worker thread; if the caller is cancelled, the call still ends before this does."""
        self._busy += 1
        task = asyncio.ensure_future(asyncio.to_thread(lambda: self._brain.run(call, *args)))
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

    def _absorb(self, opening: list[list[int] | np.ndarray], blocks: list[np.ndarray]) -> None:
        self._apply_rewind()
        self._prefill([*opening, *blocks])
        self._heard = len(self._ids)

    def _start_reply(
        self, opening: list[list[int] | np.ndarray], blocks: list[np.ndarray], said: np.ndarray | list[int], close: list[int]
    ) -> None:
        """Prefill the rest of the human turn (``said``: the partial block, or a typed turn) and the generation
        prompt; a rewind goes back to the end of ``blocks``, a finish to the end of ``close``."""
        self._apply_rewind()
        start = len(self._ids)
        ends = self._prefill([*opening, *blocks, said, close, self._format.generation_prompt])
        self._heard = ends[-4] if len(ends) > 3 else start  # the end of the blocks (of the cache, without any)
        self._human_end, self._prompt = ends[-2], ends[-1]
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
            assert self._cache is not None, "model calls end before the cache is freed"
            self._cache.crop(length - len(self._ids))
            del self._ids[length:]
            self._logits = None


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    size = min(len(a), len(b))
    return next((i for i in range(size) if a[i] != b[i]), size)


def _sample(logits: torch.Tensor, temperature: float) -> int:
    if temperature <= 0:
        return int(torch.argmax(logits))
    return int(torch.multinomial(torch.softmax(logits / temperature, dim=-1), 1))
