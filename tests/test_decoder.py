"""The embedded decoder (llama.cpp, the real 0.5B from its package) holds a reply while asked to: it computes nothing
meanwhile and then goes on with the same words; a reply under a tool grammar is never held; a prefill is computed in
parts and holds between them."""

from __future__ import annotations

import asyncio
import time

import pytest

from realtime.conversation import STOP_SEQUENCES, Conversation
from realtime.decoder import PREFILL_PART_CHARS, LlamaCppDecoder, prefill_parts
from realtime.tools import Tool, ToolUse

STORY = Conversation().reply_prompt("Tell me a long story about a brave knight and a clever dragon.")
TELL = ToolUse((Tool("tell_story", "Tell the user a story.", {"type": "object", "properties": {"story": {"type": "string"}}}),), "required")
"""A tool whose arguments are long: the call is written under the grammar for a while."""


@pytest.fixture(scope="module")
def decoder() -> LlamaCppDecoder:
    return LlamaCppDecoder(slots=1)


async def read(decoder: LlamaCppDecoder, *, held: bool, tools: ToolUse = ToolUse()) -> tuple[str, float]:
    """The whole reply, and the CPU time this process spent in one second in which, after 20 pieces, the reader
    stops reading and (``held``) asks the decoder to hold."""
    holding, pieces, cpu = [False], [], 0.0
    async for piece in decoder.generate(STORY, max_tokens=120, stop=STOP_SEQUENCES, tools=tools, hold=lambda: holding[0]):
        pieces.append(piece)
        if len(pieces) == 20:
            holding[0] = held
            await asyncio.sleep(0.3)  # a held request ends at its next token
            started = time.process_time()
            await asyncio.sleep(1.0)
            cpu = time.process_time() - started
            holding[0] = False
    return "".join(pieces), cpu


@pytest.mark.slow
async def test_a_held_reply_computes_nothing_and_goes_on_with_the_same_words(decoder: LlamaCppDecoder) -> None:
    whole, busy = await read(decoder, held=False)
    again, idle = await read(decoder, held=True)
    assert busy > 0.8, "unheld, the decoder writes on while the reader is away (two cores)"
    assert idle < 0.2, "held, it computes nothing"
    for story in (whole, again):
        assert len(story.split()) > 40 and story.count(story[:30]) == 1, "one story, long enough to be held in the middle"
    # The words after the hold are the model's own continuation of the text so far; they may differ from the
    # unheld run's, as they do for any change of the cache's state (the numerics of a re-evaluated token).


@pytest.mark.slow
async def test_a_reply_under_a_tool_grammar_is_never_held(decoder: LlamaCppDecoder) -> None:
    call, cpu = await read(decoder, held=True, tools=TELL)
    assert call.startswith("<tool_call>") and cpu > 0.8


def test_a_prefill_is_cut_into_growing_prefixes_before_spaces() -> None:
    prompt = Conversation().reply_prompt(" ".join(f"word{i}" for i in range(600)))
    parts = prefill_parts(prompt)
    assert parts[-1] == prompt and len(prompt) // PREFILL_PART_CHARS <= len(parts) <= len(prompt) // PREFILL_PART_CHARS + 1
    assert all(len(part) - len(before) >= PREFILL_PART_CHARS for before, part in zip(["", *parts], parts[:-1], strict=False))
    for shorter, longer in zip(parts, parts[1:], strict=False):
        assert longer.startswith(shorter) and longer[len(shorter)] == " ", "a prefix, cut where a word begins"
    assert prefill_parts("a short prompt") == ["a short prompt"]
    assert prefill_parts("x" * 2000) == ["x" * 2000], "no space: one part"


async def test_a_prefill_waits_between_its_parts_while_held() -> None:
    decoder = object.__new__(LlamaCppDecoder)  # the parts it asks for, without a model
    asked: list[str] = []
    decoder._request = lambda body, on_piece: asked.append(str(body["prompt"]))  # type: ignore[method-assign]
    prompt = " ".join(f"word{i}" for i in range(400))
    holding = [True]
    prefill = asyncio.ensure_future(decoder.prefill(prompt, hold=lambda: holding[0]))
    await asyncio.sleep(0.2)
    assert asked == [] and not prefill.done(), "held before its first part"
    holding[0] = False
    await asyncio.wait_for(prefill, 2)
    assert asked == prefill_parts(prompt) and len(asked) > 3


@pytest.mark.slow
async def test_a_held_prefill_computes_nothing_and_then_completes(decoder: LlamaCppDecoder) -> None:
    prompt = Conversation().reply_prompt(" ".join(["Here are my notes about rivers, mountains and old harbours."] * 60))
    holding = [False]
    parts = prefill_parts(prompt)
    assert len(parts) > 4
    prefill = asyncio.ensure_future(decoder.prefill(prompt, hold=lambda: holding[0]))
    await asyncio.sleep(1.0)  # some parts in
    holding[0] = True
    await asyncio.sleep(2.5)  # the part in flight ends (~130 tokens)
    started = time.process_time()
    await asyncio.sleep(1.0)
    assert time.process_time() - started < 0.2, "held between parts, it computes nothing"
    assert not prefill.done()
    holding[0] = False
    await asyncio.wait_for(prefill, 120)
