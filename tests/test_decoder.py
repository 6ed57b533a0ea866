"""The embedded decoder (llama.cpp, the real 0.5B from its package) holds a reply while asked to: it computes nothing
meanwhile and then goes on with the same words; a reply under a tool grammar is never held."""

from __future__ import annotations

import asyncio
import time

import pytest

from realtime.conversation import STOP_SEQUENCES, Conversation
from realtime.decoder import LlamaCppDecoder
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
