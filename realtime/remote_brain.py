"""Brains whose language model is served elsewhere, on an OpenAI-compatible server (vLLM for Step-Audio-R1).

- :class:`RemoteTextDecoder`: the cascade's decoder over chat completions (the brain is
  :class:`~realtime.cascade.CascadeBrain` on it). The local ASR writes the user's
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
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import numpy as np

from audio.samples import PIPELINE_RATE, to_pcm16
from realtime.audio_blocks import AudioBlocks, split_blocks
from realtime.brain import ReplyRequest
from realtime.chat_client import ChatClient
from realtime.conversation import chat_messages
from realtime.decoder import DecoderError, Hold, never
from realtime.errors import BrainStateError
from realtime.reasoning import THINK_CLOSE, THINK_OPEN, Piece, ThinkSplitter
from realtime.tools import NO_TOOLS, ToolCallWriter, ToolUse

if TYPE_CHECKING:
    from realtime.conversation import Conversation, Message

log = logging.getLogger(__name__)

_CONTINUE = {"continue_final_message": True, "add_generation_prompt": False}
_STEP_AUDIO = {"stop": ["<|EOT|>"], "skip_special_tokens": False}


def _thought(delta: dict[str, Any]) -> str | None:
    """Reasoning text a server's reasoning parser put beside the content (vLLM: ``reasoning_content``/``reasoning``)."""
    return delta.get("reasoning_content") or delta.get("reasoning")


class RemoteTextDecoder:
    """A :class:`~realtime.decoder.TextDecoder` on a remote chat model (prompts are sent as messages). Tools go in the
    request, and the server's streamed ``tool_calls`` come back written as the embedded model writes its calls."""

    tools_in_prompt = False

    def __init__(self, client: ChatClient) -> None:
        self.client = client

    async def prefill(self, prompt: str, *, hold: Hold = never) -> None:
        """Warm the server's cache with ``prompt`` (``hold`` is ignored: the model computes on its own server)."""
        messages, prefix = chat_messages(prompt)
        await self.client.warm(self.client.body(messages, temperature=0.0, **(_CONTINUE if prefix else {})))

    async def generate(
        self, prompt: str, *, max_tokens: int, stop: Sequence[str] = (), temperature: float = 0.0, tools: ToolUse = NO_TOOLS,
        hold: Hold = never,
    ) -> AsyncGenerator[str, None]:
        """Stream the continuation; reasoning a server returns beside the content comes back inside ``<think>``
        tags (bare when the prompt itself opened the reasoning), tool calls inside ``<tool_call>`` tags, as the local
        decoder would write them. ``hold`` is ignored: the served model computes on its own machine."""
        messages, prefix = chat_messages(prompt)
        body = self.client.body(
            messages, max_tokens=max_tokens, temperature=temperature, stop=list(stop), **(_CONTINUE if prefix else {}),
            **tools.chat_options(),
        )
        thinking = False
        calls = ToolCallWriter()
        async with aclosing(self.client.stream(body)) as deltas:
            async for delta in deltas:
                for call in delta.get("tool_calls") or ():
                    yield calls.write(call)
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
        if end := calls.close():
            yield end


class RemoteAudioBrain:
    """An audio chat model on a server, a :class:`~realtime.brain.Brain` shared by every session (each session keeps
    its own history)."""

    def __init__(self, client: ChatClient, *, opens_thinking: bool = True, max_turns: int = 20) -> None:
        self.client = client
        self.opens_thinking = opens_thinking
        """The server's generation prompt opens ``<think>`` (Step-Audio-R1): the stream starts inside reasoning."""
        self.max_turns = max_turns
        """Finished turns kept in the history (each turn's audio is sent again with every request)."""

    def open(
        self, conversation: Conversation, *, block_seconds: float = 2.0, background: Hold = never
    ) -> RemoteAudioConversation:
        """A session's conversation, opened with ``conversation.current_instructions`` (the brain keeps its own history, the
        human audio and the answers as heard). ``block_seconds``: the audio sent as one ``input_audio`` part;
        ``ValueError`` outside (0, 25]. ``background`` is ignored: the model computes on its own server."""
        return RemoteAudioConversation(self, conversation.current_instructions, block_seconds=block_seconds)


class RemoteAudioConversation:
    """One session's turns (a :class:`~realtime.brain.BrainSession`): the same contract as the local Step-Audio-R1
    conversation."""

    hears_audio = True
    calls_tools = False

    def __init__(self, brain: RemoteAudioBrain, instructions: str, *, block_seconds: float) -> None:
        self._brain = brain
        self._client = brain.client
        self._audio = AudioBlocks(block_seconds)
        self._system = [{"role": "system", "content": instructions.strip()}] if instructions.strip() else []
        self._turns: list[list[dict[str, Any]]] = []
        self._blocks: list[dict[str, Any]] = []
        """The human turn's complete blocks, as ``input_audio`` parts."""
        self._human: list[dict[str, Any]] = []
        """The human turn the reply in flight answers: its audio parts, or a typed message's text part."""
        self._epoch = 0
        """Bumped by every rewind, finish and close: a reply streams only in its own epoch."""
        self._closed = False

    def messages(self, parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The request's messages: instructions, the finished turns, the human turn's ``parts`` (none: no human
        turn)."""
        history = [message for turn in self._turns[-self._brain.max_turns :] for message in turn]
        return [*self._system, *history, *([{"role": "human", "content": parts}] if parts else [])]

    async def hear(self, samples: np.ndarray) -> None:
        """Append the next chunk of the user's audio (float32 mono at 16 kHz, any length); each complete block warms
        the server's prefix cache (unless a reply is in flight: then it waits for :meth:`rewind` or the next turn).
        A failed warm-up is logged. Raises :class:`~realtime.errors.BrainStateError` once closed."""
        self._check_open()
        self._audio.add(samples)
        if not self._audio.ready:
            return
        self._blocks += [audio_part(block) for block in self._audio.take_blocks()]
        try:
            await self._client.warm(self._client.body(self.messages(self._blocks), temperature=0.0, **_STEP_AUDIO))
        except DecoderError as exc:  # a cold cache only costs latency; the reply reports a server that is down
            log.warning("prefix warm-up failed: %s", exc)

    async def hear_partial(self, text: str) -> None:
        """Ignored: the model hears the audio itself."""

    async def prefill(self) -> None:
        """Nothing to do: each complete block warms the server's cache as it is heard."""

    def rewind(self) -> None:
        """Discard the reply in flight (the user goes on speaking; its stream ends at its next piece): its partial
        block returns to the buffer. Nothing happens when no reply is in flight."""
        if self._audio.rewind():
            self._epoch += 1
            self._human = []

    async def reply(self, request: ReplyRequest) -> AsyncGenerator[Piece, None]:
        """Stream the reasoning and the answer to the human turn heard so far; with no audio heard, to
        ``request.user_text`` as a text human turn, or (None) to the history as it stands.

        ``request.reasoning_budget`` caps the reasoning in streamed pieces (about one token each; 0: answer at once).
        Only ``budget`` mode: the Mind-Paced Speaking schedules need the decoder in this process. The checks run when
        the iteration starts. Raises :class:`~realtime.errors.BrainStateError` when a reply is in flight or the
        session is closed, ``ValueError`` for another mode, :class:`~realtime.decoder.DecoderError` when the server
        fails.
        """
        self._check_open()
        if request.mode != "budget":
            raise ValueError(
                f"reasoning mode {request.mode!r} needs the model in this process; a served model takes 'budget'"
            )
        blocks, partial = self._audio.start_reply()
        self._epoch += 1
        epoch = self._epoch
        self._blocks += [audio_part(block) for block in blocks]
        typed = (request.user_text or "").strip()
        if self._blocks or len(partial):
            self._human = [*self._blocks, *([audio_part(partial)] if len(partial) else [])]
        else:
            self._human = [{"type": "text", "text": typed}] if typed else []
        messages = self.messages(self._human)
        budget, temperature = request.reasoning_budget, request.temperature
        reasoning: list[str] = []
        if budget > 0:
            spent = False
            splitter = ThinkSplitter(thinking=self._brain.opens_thinking)
            body = self._client.body(
                messages, max_tokens=request.max_tokens + budget, temperature=temperature, **_STEP_AUDIO
            )
            async with aclosing(self._client.stream(body)) as deltas:
                async for delta in deltas:
                    if epoch != self._epoch:
                        return
                    if thought := _thought(delta):
                        splitter.close_reasoning()  # the content, if any, is the answer
                    pieces = [Piece("reasoning", thought)] if thought else []
                    for piece in pieces + splitter.push(delta.get("content") or ""):
                        if piece.channel == "reasoning":
                            spent = len(reasoning) >= budget
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
        body = self._client.body(
            [*messages, prefix], max_tokens=request.max_tokens, temperature=temperature, **_CONTINUE, **_STEP_AUDIO
        )
        async with aclosing(self._client.stream(body)) as deltas:
            async for delta in deltas:
                if epoch != self._epoch:
                    return
                if text := delta.get("content"):
                    yield Piece("answer", text)

    async def finish_turn(self, heard_answer: str) -> None:
        """End the turn: history keeps the human turn and ``heard_answer`` (no reasoning; nothing if empty); audio
        heard since the reply began waits for the next turn. Raises :class:`~realtime.errors.BrainStateError` when
        no reply is in flight or the session is closed."""
        self._check_open()
        self._audio.finish_reply()
        self._epoch += 1
        answer = heard_answer.strip()
        turn: list[dict[str, Any]] = [{"role": "human", "content": self._human}] if self._human else []
        turn += [{"role": "assistant", "content": answer}] if answer else []
        if turn:
            self._turns.append(turn)
        self._blocks, self._human = [], []

    def add_item(self, message: Message, audio: np.ndarray | None = None) -> None:
        """A client's message enters this history as a turn of its own (a human message as its ``audio``, 16 kHz
        float32, when it has some). Function items are ignored (this brain calls no functions)."""
        self._check_open()
        if message.kind != "message":
            return
        role = "human" if message.role == "user" else message.role
        if audio is not None and role == "human":
            blocks, rest = split_blocks(audio, self._audio.block_seconds)
            self._turns.append([{"role": role, "content": [audio_part(b) for b in (*blocks, rest) if len(b)]}])
        elif message.text:
            content: Any = [{"type": "text", "text": message.text}] if role == "human" else message.text
            self._turns.append([{"role": role, "content": content}])

    def close(self) -> None:
        """Stop any reply (at its next piece). Idempotent."""
        self._closed = True
        self._epoch += 1

    def _check_open(self) -> None:
        if self._closed:
            raise BrainStateError("the brain session is closed")


def audio_part(samples: np.ndarray, rate: int = PIPELINE_RATE) -> dict[str, Any]:
    """An ``input_audio`` content part: the samples as a 16-bit mono WAV, base64."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(to_pcm16(samples))
    return {"type": "input_audio", "input_audio": {"data": base64.b64encode(buffer.getvalue()).decode(), "format": "wav"}}
