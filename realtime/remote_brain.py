"""Brains whose language model is served elsewhere, on an OpenAI-compatible server (vLLM for Step-Audio-R1).

- :class:`RemoteTextDecoder`: the cascade's decoder over chat completions. The local ASR writes the user's
  words; while they speak, each partial transcript warms the server's prefix cache (a one-token request
  with the growing prompt), so the request at the end of the turn only computes the tail.
- :class:`RemoteAudioBrain`: an audio chat model (Step-Audio-R1 on vLLM) hears the audio itself. Audio is
  sent as ``input_audio`` WAV parts, one per block of ``block_seconds`` (at most 25 s, as the model takes
  it); every completed block warms the prefix cache while the user is still speaking. The reasoning is
  split from the answer, whether the server streams it inline (``...</think>answer``, the generation prompt
  having opened ``<think>``) or in a separate ``reasoning_content``/``reasoning`` field (vLLM's reasoning
  parsers). A reasoning budget closes the stream and asks for the answer with the reasoning so far as
  the assistant's prefix (``continue_final_message``, a vLLM option that llama.cpp's server also honours).
"""

from __future__ import annotations

import base64
import io
import logging
import wave
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from typing import Any

import numpy as np

from realtime.audio import MAX_BLOCK_SECONDS, PIPELINE_RATE, split_blocks, to_pcm16
from realtime.chat_client import ChatClient
from realtime.conversation import chat_messages
from realtime.decoder import DecoderError
from realtime.reasoning import THINK_CLOSE, THINK_OPEN, Piece, ReplyMode, ThinkSplitter

log = logging.getLogger(__name__)

_NO_AUDIO = np.zeros(0, dtype=np.float32)
_CONTINUE = {"continue_final_message": True, "add_generation_prompt": False}
_STEP_AUDIO = {"stop": ["<|EOT|>"], "skip_special_tokens": False}


def _thought(delta: dict[str, Any]) -> str | None:
    """Reasoning text a server's reasoning parser put beside the content (vLLM: ``reasoning_content``/``reasoning``)."""
    return delta.get("reasoning_content") or delta.get("reasoning")


class RemoteTextDecoder:
    """A :class:`~realtime.decoder.TextDecoder` on a remote chat model (prompts are sent as messages)."""

    def __init__(self, client: ChatClient) -> None:
        self.client = client

    async def prefill(self, prompt: str) -> None:
        messages, prefix = chat_messages(prompt)
        await self.client.warm(self.client.body(messages, temperature=0.0, **(_CONTINUE if prefix else {})))

    async def generate(
        self, prompt: str, *, max_tokens: int, stop: Sequence[str] = (), temperature: float = 0.0
    ) -> AsyncIterator[str]:
        """Stream the continuation; reasoning a server returns beside the content comes back inside ``<think>``
        tags (bare when the prompt itself opened the reasoning), as the local decoder would write it."""
        messages, prefix = chat_messages(prompt)
        body = self.client.body(
            messages, max_tokens=max_tokens, temperature=temperature, stop=list(stop), **(_CONTINUE if prefix else {})
        )
        thinking = False
        async with aclosing(self.client.stream(body)) as deltas:
            async for delta in deltas:
                if thought := _thought(delta):
                    if not thinking and not prefix:
                        yield THINK_OPEN
                    thinking = True
                    yield thought
                if text := delta.get("content"):
                    if thinking and not prefix:
                        yield THINK_CLOSE
                    thinking = False
                    yield text


class RemoteAudioBrain:
    """An audio chat model on a server, shared by every session (each session keeps its own history)."""

    def __init__(self, client: ChatClient, *, opens_thinking: bool = True, max_turns: int = 20) -> None:
        self.client = client
        self.opens_thinking = opens_thinking
        """The server's generation prompt opens ``<think>`` (Step-Audio-R1): the stream starts inside reasoning."""
        self.max_turns = max_turns
        """Finished turns kept in the history (each turn's audio is sent again with every request)."""

    def conversation(self, instructions: str, *, block_seconds: float = 2.0) -> RemoteAudioConversation:
        return RemoteAudioConversation(self, instructions, block_seconds=block_seconds)


class RemoteAudioConversation:
    """One session's turns: the same contract as the local Step-Audio-R1 conversation."""

    def __init__(self, brain: RemoteAudioBrain, instructions: str, *, block_seconds: float) -> None:
        if not 0 < block_seconds <= MAX_BLOCK_SECONDS:
            raise ValueError(f"block_seconds must be in (0, {MAX_BLOCK_SECONDS}], not {block_seconds}")
        self._brain = brain
        self._client = brain.client
        self._block_seconds = block_seconds
        self._system = [{"role": "system", "content": instructions.strip()}] if instructions.strip() else []
        self._turns: list[list[dict[str, Any]]] = []
        self._blocks: list[dict[str, Any]] = []
        """The human turn's complete blocks, as ``input_audio`` parts."""
        self._pending = _NO_AUDIO
        self._reply_audio = _NO_AUDIO
        self._replying = False
        self._closed = False

    def messages(self, parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The request's messages: instructions, the finished turns, the human turn so far."""
        history = [message for turn in self._turns[-self._brain.max_turns :] for message in turn]
        return [*self._system, *history, {"role": "human", "content": parts}]

    async def hear(self, samples: np.ndarray) -> None:
        """Append 16 kHz mono audio of the user's turn; each complete block warms the server's prefix cache
        (unless a reply is in flight: then it waits for :meth:`rewind_to_heard` or the next turn)."""
        self._check_open()
        self._pending = np.concatenate([self._pending, np.asarray(samples, dtype=np.float32).reshape(-1)])
        if self._replying or len(self._pending) < round(self._block_seconds * PIPELINE_RATE):
            return
        blocks, self._pending = split_blocks(self._pending, self._block_seconds)
        self._blocks += [audio_part(block) for block in blocks]
        try:
            await self._client.warm(self._client.body(self.messages(self._blocks), temperature=0.0, **_STEP_AUDIO))
        except DecoderError as exc:  # a cold cache only costs latency; the reply reports a server that is down
            log.warning("prefix warm-up failed: %s", exc)

    def rewind_to_heard(self) -> None:
        """Discard the reply in flight (the user goes on speaking); its unblocked audio returns to the buffer."""
        if self._replying:
            self._replying = False
            self._pending = np.concatenate([self._reply_audio, self._pending])
            self._reply_audio = _NO_AUDIO

    async def reply(
        self,
        *,
        max_tokens: int,
        reasoning_budget: int | None = None,
        temperature: float = 0.0,
        mode: ReplyMode = "budget",
    ) -> AsyncGenerator[Piece, None]:
        """Stream the reasoning and the answer to the human turn heard so far.

        ``reasoning_budget`` caps the reasoning in streamed pieces (about one token each; None: until the model
        closes it; 0: answer at once). Only ``budget`` mode: the Mind-Paced Speaking schedules need the decoder
        in this process.
        """
        self._check_open()
        if mode != "budget":
            raise ValueError(f"reasoning mode {mode!r} needs the model in this process; a served model takes 'budget'")
        if self._replying:
            raise RuntimeError("a reply is in flight: finish_turn() or rewind_to_heard() first")
        self._replying = True
        self._reply_audio, self._pending = self._pending, _NO_AUDIO
        messages = self.messages(self._parts())
        reasoning: list[str] = []
        if reasoning_budget != 0:
            spent = False
            splitter = ThinkSplitter(thinking=self._brain.opens_thinking)
            body = self._client.body(
                messages, max_tokens=max_tokens + (reasoning_budget or 0), temperature=temperature, **_STEP_AUDIO
            )
            async with aclosing(self._client.stream(body)) as deltas:
                async for delta in deltas:
                    if thought := _thought(delta):
                        splitter.close_reasoning()  # the content, if any, is the answer
                    for piece in ([Piece("reasoning", thought)] if thought else []) + splitter.push(delta.get("content") or ""):
                        if piece.channel == "reasoning":
                            spent = reasoning_budget is not None and len(reasoning) >= reasoning_budget
                            if spent:
                                break
                            reasoning.append(piece.text)
                        yield piece
                    if spent:
                        break
            if not spent:
                for piece in splitter.flush():
                    yield piece
                return
        # the budget is spent (or is 0): the answer, after the reasoning so far as the assistant's prefix
        prefix = {"role": "assistant", "content": f"{THINK_OPEN}\n{''.join(reasoning).strip()}\n{THINK_CLOSE}\n"}
        body = self._client.body([*messages, prefix], max_tokens=max_tokens, temperature=temperature, **_CONTINUE, **_STEP_AUDIO)
        async with aclosing(self._client.stream(body)) as deltas:
            async for delta in deltas:
                if text := delta.get("content"):
                    yield Piece("answer", text)

    async def finish_turn(self, heard_answer: str) -> None:
        """End the turn: history keeps the human audio and ``heard_answer`` (no reasoning; nothing if empty)."""
        self._check_open()
        if not self._replying:
            raise RuntimeError("no reply to finish")
        answer = heard_answer.strip()
        self._turns.append(
            [{"role": "human", "content": self._parts()}, *([{"role": "assistant", "content": answer}] if answer else [])]
        )
        self._blocks, self._reply_audio, self._replying = [], _NO_AUDIO, False

    def close(self) -> None:
        self._closed = True
        self._replying = False

    def _parts(self) -> list[dict[str, Any]]:
        """The human turn's parts: the complete blocks, then the reply's audio cut into blocks."""
        blocks, rest = split_blocks(self._reply_audio, self._block_seconds)
        return [*self._blocks, *(audio_part(b) for b in blocks), *([audio_part(rest)] if len(rest) else [])]

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the conversation is closed")


def audio_part(samples: np.ndarray, rate: int = PIPELINE_RATE) -> dict[str, Any]:
    """An ``input_audio`` content part: the samples as a 16-bit mono WAV, base64."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(to_pcm16(samples))
    return {"type": "input_audio", "input_audio": {"data": base64.b64encode(buffer.getvalue()).decode(), "format": "wav"}}
