"""The embedded decoder (llama.cpp, the real 0.5B from its package) holds a reply while asked to: it computes nothing
meanwhile and then goes on with the same words; a reply under a tool grammar is never held; a prefill held in the middle
of its prompt computes nothing meanwhile and then goes on from what it had cached."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import pytest

from realtime.conversation import STOP_SEQUENCES, Conversation
from realtime.decoder import PROMPT_BATCH, LlamaCppDecoder
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


NOTES = Conversation().user_prefix(
    "Please keep these notes in mind: " + " ".join(f"item {i} is a {colour} box," for i, colour in enumerate(["red", "blue", "green"] * 40))
)
"""A prompt of ~1000 tokens: several of llama.cpp's steps of PROMPT_BATCH tokens."""
STEP_S_PER_TOKEN = 0.05
"""A prompt token's share of a step, with room: ~0.013 s on two quiet cores (README, "Choosing the engine")."""


class Timed:
    """llama.cpp's server, keeping the figures of every request that ran to its end (tokens cached, computed)."""

    def __init__(self, server: object) -> None:
        self.server = server
        self.timings: list[dict[str, float]] = []

    def handle_completions(self, body: dict[str, object], callback: Callable[[object], bool]) -> None:
        def keep(response: object) -> bool:
            data = json.loads(response) if isinstance(response, str) else response
            if isinstance(data, dict) and "timings" in data:
                self.timings.append(data["timings"])
            return callback(response)

        self.server.handle_completions(body, keep)  # type: ignore[attr-defined]


class Scripted:
    """Stands in for llama.cpp's server: streams a report of progress, three pieces of text (none for a prefill) and
    the closing responses (the reason it stopped, its timings), and counts the requests."""

    def __init__(self) -> None:
        self.requests = 0

    def handle_completions(self, body: dict[str, object], callback: Callable[[object], bool]) -> None:
        self.requests += 1
        responses = [{"prompt_progress": {"total": 9, "cache": 0, "processed": 9}}]
        if body["max_tokens"]:  # a prefill asks for none
            responses += [{"choices": [{"text": word, "finish_reason": None}]} for word in ("Paris", " is", " lovely.")]
        responses += [{"choices": [{"text": "", "finish_reason": "stop"}]}, {"timings": {"cache_n": 0, "prompt_n": 9}}]
        for response in responses:
            if callback(json.dumps(response)):
                return


def held_on(call: int) -> Callable[[], bool]:
    """A hold that says so only the ``call``-th time it is asked."""
    asked = [0]

    def hold() -> bool:
        asked[0] += 1
        return asked[0] == call

    return hold


async def test_a_hold_that_comes_once_the_request_is_over_does_not_send_it_again() -> None:
    decoder = LlamaCppDecoder.__new__(LlamaCppDecoder)  # the request logic alone, no model
    decoder._server = server = Scripted()  # noqa: SLF001
    words = [piece async for piece in decoder.generate("Q", max_tokens=20, hold=held_on(5))]  # asked: progress, 3 words
    assert "".join(words) == "Paris is lovely." and server.requests == 1, "the request was over: nothing to hold"
    await decoder.prefill("Q", hold=held_on(3))  # asked before the request and at its report of progress
    assert server.requests == 2, "a prefill is not sent again for its closing responses"


@pytest.mark.slow
async def test_a_held_prefill_computes_nothing_and_goes_on_from_its_cache(decoder: LlamaCppDecoder) -> None:
    progress, holding, cpu = [0], [False], [0.0]

    def hold() -> bool:
        progress[0] += 1
        return holding[0]

    async def hold_after_a_step() -> None:
        while progress[0] < 3:  # asked before the request, then as llama.cpp starts the prompt and after its first step
            await asyncio.sleep(0.001)
        holding[0] = True
        asked = progress[0]
        while progress[0] < asked + 3:  # asked again at the end of the step in progress, then while the request waits
            await asyncio.sleep(0.001)
        # llama.cpp may have begun one more step before it saw the request end
        await asyncio.sleep(PROMPT_BATCH * STEP_S_PER_TOKEN)
        started = time.process_time()
        await asyncio.sleep(1.0)
        cpu[0] = time.process_time() - started
        holding[0] = False

    server = decoder._server  # noqa: SLF001 - the server's own figures
    decoder._server = timed = Timed(server)  # noqa: SLF001
    try:
        await asyncio.gather(decoder.prefill(NOTES, hold=hold), hold_after_a_step())
        await decoder.prefill(NOTES)
    finally:
        decoder._server = server  # noqa: SLF001
    assert cpu[0] < 0.2, "held, it computes nothing"
    resumed, again = timed.timings[-2:]
    total = resumed["cache_n"] + resumed["prompt_n"]
    assert total > 900, "the prompt needs several steps"
    assert PROMPT_BATCH <= resumed["cache_n"] < total / 2, "the request after the hold went on from the steps before it"
    assert again["cache_n"] >= total - 1, "then the whole prompt was cached"


@pytest.mark.slow
async def test_a_reply_under_a_tool_grammar_is_never_held(decoder: LlamaCppDecoder) -> None:
    call, cpu = await read(decoder, held=True, tools=TELL)
    assert call.startswith("<tool_call>") and cpu > 0.8
