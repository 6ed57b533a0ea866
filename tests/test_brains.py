"""The brain interface's contract, without big models: the audio block buffer, the cascade over a scripted text
decoder, the Step-Audio brain on its tiny random twin and the served audio brain on a scripted client."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from typing import Any

import numpy as np
import pytest

from realtime.audio_blocks import MAX_BLOCK_SECONDS, AudioBlocks, split_blocks
from realtime.brain import Brain, ReplyRequest
from realtime.cascade import CascadeBrain
from realtime.chat_client import ChatClient, ChatEndpoint
from realtime.conversation import REASONING_PRIMER, STOP_SEQUENCES, Conversation
from realtime.decoder import DecoderError, Hold, never
from realtime.errors import BrainStateError, InvalidStateError
from realtime.reasoning import THINK_CLOSE, Piece
from realtime.remote_brain import RemoteAudioBrain

RATE = 16_000


def tone(seconds: float, start: int = 0) -> np.ndarray:
    """Samples numbered from ``start`` (as float32), so that where each sample went is visible."""
    return np.arange(start, start + round(seconds * RATE), dtype=np.float32)


async def collect(pieces: AsyncIterator[Piece]) -> list[Piece]:
    return [piece async for piece in pieces]


def text(pieces: list[Piece], channel: str) -> str:
    return "".join(p.text for p in pieces if p.channel == channel)


# The audio block buffer.


def test_split_blocks_cuts_whole_blocks_and_a_rest():
    blocks, rest = split_blocks(tone(2.5), 1.0)
    assert [len(b) for b in blocks] == [RATE, RATE] and len(rest) == RATE // 2
    assert np.array_equal(np.concatenate([*blocks, rest]), tone(2.5))
    assert split_blocks(tone(0.5), 1.0)[0] == []


@pytest.mark.parametrize("seconds", [0.0, -1.0, MAX_BLOCK_SECONDS + 0.1])
def test_a_block_length_out_of_range_is_refused(seconds: float):
    with pytest.raises(ValueError, match="block_seconds"):
        AudioBlocks(seconds)


def test_complete_blocks_are_taken_as_they_fill():
    audio = AudioBlocks(1.0)
    audio.add(tone(0.6))
    assert not audio.ready and audio.take_blocks() == []
    audio.add(tone(1.9, start=round(0.6 * RATE)))
    assert audio.ready
    blocks = audio.take_blocks()
    assert np.array_equal(np.concatenate(blocks), tone(2.0)) and not audio.ready


def test_a_rewound_reply_gives_its_partial_block_back_in_front():
    audio = AudioBlocks(1.0)
    audio.add(tone(1.5))
    blocks, partial = audio.start_reply()
    assert len(blocks) == 1 and np.array_equal(partial, tone(0.5, start=RATE))
    audio.add(tone(1.0, start=round(1.5 * RATE)))  # heard during the reply: it waits
    assert audio.replying and not audio.ready and audio.take_blocks() == []
    assert audio.rewind() and not audio.replying
    assert np.array_equal(np.concatenate(audio.take_blocks()), tone(1.0, start=RATE))  # aligned as if never cut
    assert not audio.rewind()  # no reply in flight: nothing happens


def test_a_finished_reply_keeps_later_audio_for_the_next_turn():
    audio = AudioBlocks(1.0)
    audio.add(tone(0.5))
    assert audio.start_reply()[0] == []
    audio.add(tone(1.0, start=RATE))
    assert np.array_equal(audio.finish_reply(), tone(0.5))
    assert np.array_equal(np.concatenate(audio.take_blocks()), tone(1.0, start=RATE))


def test_the_buffer_refuses_replies_out_of_order():
    audio = AudioBlocks(1.0)
    with pytest.raises(BrainStateError, match="no reply"):
        audio.finish_reply()
    audio.start_reply()
    with pytest.raises(BrainStateError, match="in flight"):
        audio.start_reply()
    assert issubclass(BrainStateError, InvalidStateError)


# The cascade, on a scripted text decoder.


class ScriptedDecoder:
    """A :class:`~realtime.decoder.TextDecoder` that records its prompts: the reasoning prompt (it ends with the
    primer) gets ``reasoning``, any other prompt ``answer``."""

    tools_in_prompt = True

    def __init__(self, answer: Sequence[str] = ("Paris", " is the capital."), reasoning: Sequence[str] = ()) -> None:
        self.answer, self.reasoning = list(answer), list(reasoning)
        self.generated: list[tuple[str, int, tuple[str, ...]]] = []
        self.prefilled: list[str] = []
        self.fail_prefill = False

    async def prefill(self, prompt: str, *, hold: Hold = never) -> None:
        self.prefilled.append(prompt)
        if self.fail_prefill:
            raise DecoderError("the model server is down")

    async def generate(
        self, prompt: str, *, max_tokens: int, stop: Sequence[str] = (), temperature: float = 0.0, tools: object = None,
        hold: object = None,
    ) -> AsyncIterator[str]:
        self.generated.append((prompt, max_tokens, tuple(stop)))
        for piece in self.reasoning if prompt.endswith(REASONING_PRIMER) else self.answer:
            yield piece


def cascade(decoder: ScriptedDecoder, conversation: Conversation | None = None):  # noqa: ANN201 - a CascadeSession
    brain: Brain = CascadeBrain(decoder)
    return brain.open(conversation or Conversation(instructions="Be brief."))


async def test_the_cascade_answers_the_transcript_at_once():
    decoder = ScriptedDecoder()
    conversation = Conversation(instructions="Be brief.")
    session = cascade(decoder, conversation)
    assert session.hears_audio is False
    await session.hear(np.zeros(320, np.float32))  # ignored
    pieces = await collect(session.reply(ReplyRequest("What is the capital of France?", max_tokens=20)))
    assert pieces == [Piece("answer", "Paris"), Piece("answer", " is the capital.")]
    assert decoder.generated == [(conversation.reply_prompt("What is the capital of France?"), 20, STOP_SEQUENCES)]
    await session.finish_turn("Paris is the capital.")
    await collect(session.reply(ReplyRequest(None)))  # a reply to the history as it stands
    assert decoder.generated[-1][0] == conversation.reply_prompt(None)


async def test_a_reasoning_budget_gives_reasoning_then_an_answer_that_sees_it():
    decoder = ScriptedDecoder(answer=["It is Paris."], reasoning=[" France's", " capital", " is Paris."])
    conversation = Conversation(instructions="Be brief.")
    session = cascade(decoder, conversation)
    pieces = await collect(session.reply(ReplyRequest("Capital of France?", max_tokens=30, reasoning_budget=12)))
    assert [p.channel for p in pieces] == ["reasoning"] * 3 + ["answer"]
    assert (text(pieces, "reasoning"), text(pieces, "answer")) == (" France's capital is Paris.", "It is Paris.")
    formulation, articulation = decoder.generated
    assert formulation == (conversation.reasoning_prompt("Capital of France?"), 12, (THINK_CLOSE, *STOP_SEQUENCES))
    assert articulation[0] == conversation.answer_prompt("Capital of France?", " France's capital is Paris.")
    assert articulation[1:] == (30, STOP_SEQUENCES)


async def test_inline_think_tags_in_the_answer_stream_are_split_off():
    session = cascade(ScriptedDecoder(answer=["<th", "ink>hm</think>", "Yes."]))
    pieces = await collect(session.reply(ReplyRequest("Is it?")))
    assert (text(pieces, "reasoning"), text(pieces, "answer")) == ("hm", "Yes.")


async def test_the_cascade_refuses_misuse_with_typed_errors():
    session = cascade(ScriptedDecoder())
    with pytest.raises(BrainStateError, match="no reply"):
        await session.finish_turn("nothing was asked")
    await collect(session.reply(ReplyRequest("Hi")))
    with pytest.raises(BrainStateError, match="in flight"):
        await collect(session.reply(ReplyRequest("Hi again")))
    session.rewind()
    session.rewind()  # nothing in flight: nothing happens
    await collect(session.reply(ReplyRequest("Hi again")))
    await session.finish_turn("Hello.")
    with pytest.raises(ValueError, match="budget"):
        await collect(session.reply(ReplyRequest("Hi", mode="paced")))
    session.close()
    session.close()
    for misuse in (session.hear(np.zeros(1, np.float32)), session.finish_turn(""), collect(session.reply(ReplyRequest("Hi")))):
        with pytest.raises(BrainStateError, match="closed"):
            await misuse


async def test_a_rewind_or_close_ends_the_stream_in_flight():
    session = cascade(ScriptedDecoder(answer=["One.", " Two.", " Three."]))
    async with aclosing(session.reply(ReplyRequest("Count"))) as pieces:
        first = await anext(pieces)
        session.rewind()
        assert first == Piece("answer", "One.") and [p async for p in pieces] == []
    async with aclosing(session.reply(ReplyRequest("Count"))) as pieces:
        await anext(pieces)
        session.close()
        assert [p async for p in pieces] == []


async def test_the_cascade_prefills_the_history_and_the_stable_partial_words():
    decoder = ScriptedDecoder()
    conversation = Conversation(instructions="Be brief.")
    session = cascade(decoder, conversation)
    await session.prefill()
    await session.hear_partial("What is")
    await session.hear_partial("What is")  # nothing new: not sent again
    await session.hear_partial("")
    conversation.add("user", "Hello")  # the session's conversation is read live
    await session.prefill()
    await session.hear_partial("What is")  # the history changed: the words go again, after it
    assert decoder.prefilled == [
        Conversation(instructions="Be brief.").history_prompt(),
        Conversation(instructions="Be brief.").user_prefix("What is"),
        conversation.history_prompt(),
        conversation.user_prefix("What is"),
    ]
    async with aclosing(session.reply(ReplyRequest("What is it?"))) as pieces:
        await anext(pieces)
        await session.hear_partial("What is it")  # a reply is in flight: its prompt has the words already
    session.close()
    await session.prefill()
    assert len(decoder.prefilled) == 4


async def test_a_failed_prefill_is_logged_not_raised(caplog: pytest.LogCaptureFixture):
    decoder = ScriptedDecoder()
    decoder.fail_prefill = True
    session = cascade(decoder)
    with caplog.at_level(logging.ERROR, logger="realtime.cascade"):
        await session.prefill()
        await session.hear_partial("What")
    assert [r.getMessage() for r in caplog.records] == ["prefill failed", "prefill failed"]
    assert "the model server is down" in caplog.text


# Step-Audio-R1 in this process, on the tiny random twin.


@pytest.fixture(scope="module")
def step_audio(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - a StepAudioBrain
    for module in ("torch", "transformers", "safetensors"):
        pytest.importorskip(module, reason="needs the step-audio extra")
    from realtime.step_audio import StepAudioBrain
    from realtime.step_audio.tiny import write_tiny_checkpoint

    return StepAudioBrain.load(write_tiny_checkpoint(tmp_path_factory.mktemp("tiny")), device="cpu")


async def test_step_audio_refuses_misuse_with_typed_errors(step_audio):
    with pytest.raises(ValueError, match="block_seconds"):
        step_audio.open(Conversation(), block_seconds=30.0)
    session = step_audio.open(Conversation(instructions="Be brief."), block_seconds=1.0)
    assert session.hears_audio is True
    with pytest.raises(BrainStateError, match="no reply"):
        await session.finish_turn("nothing was asked")
    await session.hear(np.zeros(RATE // 2, np.float32))
    before = session.token_ids
    await session.hear_partial("ignored")
    await session.prefill()
    assert session.token_ids == before
    await collect(session.reply(ReplyRequest(None, max_tokens=1)))
    with pytest.raises(BrainStateError, match="in flight"):
        await collect(session.reply(ReplyRequest(None, max_tokens=1)))
    session.close()
    for misuse in (session.hear(np.zeros(1, np.float32)), session.finish_turn(""), collect(session.reply(ReplyRequest(None)))):
        with pytest.raises(BrainStateError, match="closed"):
            await misuse


async def test_step_audio_reads_a_typed_message_when_it_heard_nothing(step_audio):
    fmt = step_audio.format
    session = step_audio.open(Conversation(instructions="Be brief."))
    system, human = fmt.turn("system", "Be brief."), fmt.turn("human", "Hello")
    await collect(session.reply(ReplyRequest(" Hello ", max_tokens=0)))
    assert list(session.token_ids) == [*system, *human, *fmt.generation_prompt]
    session.rewind()  # a discarded reply takes its typed turn with it
    await collect(session.reply(ReplyRequest(None, max_tokens=0)))  # the history as it stands: no human turn
    assert list(session.token_ids) == [*system, *fmt.generation_prompt]
    await session.finish_turn("Hi.")
    assert list(session.token_ids) == [*system, *fmt.turn("assistant", "Hi.")]
    session.close()


# Step-Audio-R1 served, on a scripted client.


class ScriptedClient(ChatClient):
    """Records the requests and streams one answer; nothing goes over the network."""

    def __init__(self) -> None:
        super().__init__(ChatEndpoint("http://127.0.0.1:9/v1", "step-audio-r1"))
        self.warmed: list[dict[str, Any]] = []
        self.streamed: list[dict[str, Any]] = []

    async def warm(self, body: dict[str, Any]) -> None:
        self.warmed.append(body)

    async def stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        self.streamed.append(body)
        for content in ("It is", " Paris."):
            yield {"content": content}


async def test_the_served_audio_brain_keeps_the_contract():
    client = ScriptedClient()
    session = RemoteAudioBrain(client).open(Conversation(instructions="Be brief."), block_seconds=1.0)
    assert session.hears_audio is True
    with pytest.raises(BrainStateError, match="no reply"):
        await session.finish_turn("")
    await session.hear(np.full(RATE * 3 // 2, 0.1, np.float32))
    assert len(client.warmed) == 1  # the complete block warmed the cache
    async with aclosing(session.reply(ReplyRequest(None, max_tokens=8))) as pieces:
        assert await anext(pieces) == Piece("answer", "It is")
        with pytest.raises(BrainStateError, match="in flight"):
            await collect(session.reply(ReplyRequest(None)))
        session.rewind()  # the stream ends; the partial half second waits again
        assert [p async for p in pieces] == []
    assert len(client.streamed[-1]["messages"][-2]["content"]) == 2  # the block and the partial half second
    await session.hear(np.full(RATE // 2, 0.1, np.float32))
    assert len(client.warmed) == 2 and len(client.warmed[-1]["messages"][-1]["content"]) == 2
    session.close()
    with pytest.raises(BrainStateError, match="closed"):
        await session.hear(np.zeros(1, np.float32))


async def test_the_served_audio_brain_reads_a_typed_message_when_it_heard_nothing():
    client = ScriptedClient()
    session = RemoteAudioBrain(client).open(Conversation(instructions="Be brief."))
    pieces = await collect(session.reply(ReplyRequest("Capital of France?", max_tokens=8)))
    assert text(pieces, "answer") == "It is Paris."
    typed = {"role": "human", "content": [{"type": "text", "text": "Capital of France?"}]}
    assert client.streamed[-1]["messages"][1:-1] == [typed]
    await session.finish_turn("It is Paris.")
    await collect(session.reply(ReplyRequest(None, max_tokens=8)))  # the history as it stands: no human turn
    assert client.streamed[-1]["messages"][1:-1] == [typed, {"role": "assistant", "content": "It is Paris."}]
    session.close()
