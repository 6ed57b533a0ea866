"""The history stays within the decoder's context and cache-friendly: old turns go rarely, in large steps, at quiet
moments, and every prompt after a cut shares its start with the history prefilled in the background."""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from typing import Any

import pytest

from realtime.brain import ReplyRequest
from realtime.cascade import CascadeBrain
from realtime.context_window import SLOT_CONTEXT
from realtime.conversation import HISTORY_TOKENS, Conversation, Message, Truncation, estimate_tokens
from tests.fakes import FakeDecoder, settle, silence, speak
from tests.test_session import QUESTION, Harness

ANSWER = "The answer is four, as two and two make four."


def turns(conversation: Conversation, count: int) -> None:
    for index in range(count):
        conversation.add("user", f"Question number {index}: what is two plus two?")
        conversation.add("assistant", ANSWER)


def test_the_limit_leaves_half_the_context_to_the_turn_and_the_reply() -> None:
    assert Conversation().max_history_tokens == HISTORY_TOKENS == SLOT_CONTEXT // 2
    assert estimate_tokens("1234567890 " * 20) >= 220  # the embedded tokenizer's counts, measured
    assert estimate_tokens("The capital of France is Paris. " * 25) >= 175


def test_old_turns_go_in_one_large_step_at_a_quiet_moment_and_whole() -> None:
    conversation = Conversation(instructions="Be brief.", max_history_tokens=400)
    turns(conversation, 6)
    assert estimate_tokens(conversation.history_prompt()) <= 350
    assert conversation.compact(quiet=True) == []  # under 7/8 of the limit: nothing goes
    turns(conversation, 1)
    assert 350 < estimate_tokens(conversation.history_prompt()) <= 400
    assert conversation.compact(quiet=False) == []  # the user speaks: it waits for a quiet moment
    dropped = conversation.compact(quiet=True)
    assert len(dropped) % 2 == 0 and dropped[0].text.startswith("Question number 0")
    assert estimate_tokens(conversation.history_prompt()) <= 400 // 4 + 20  # down to a quarter ("auto"), + the head
    assert conversation.messages[0].role == "user"  # a turn kept whole
    turns(conversation, 12)
    assert estimate_tokens(conversation.history_prompt()) > 400
    assert conversation.compact(quiet=False)  # past the limit itself: it goes even mid-turn
    assert estimate_tokens(conversation.history_prompt()) <= 200


def test_the_retention_ratio_and_the_token_limit_after_the_instructions_decide_what_stays() -> None:
    head = estimate_tokens(Conversation(instructions="Be brief.").history_prompt())
    for ratio in (0.0, 0.5, 0.8):
        conversation = Conversation(instructions="Be brief.", max_history_tokens=1000, truncation=Truncation(ratio, auto=False))
        turns(conversation, 40)
        conversation.compact(quiet=True)
        kept = estimate_tokens(conversation.history_prompt()) - head
        assert kept <= max(ratio * (1000 - head), 60), (ratio, kept)  # 0.0 still keeps the last turn (~55 tokens)
        assert conversation.messages[-1].text == ANSWER and conversation.messages[0].role == "user"
    limited = Conversation(instructions="Be brief.", truncation=Truncation(0.5, post_instructions_tokens=300, auto=False))
    turns(limited, 12)
    assert limited.compact(quiet=False), "past 300 tokens after the instructions, far below the slot's limit"
    assert estimate_tokens(limited.history_prompt()) - head <= 150
    with pytest.raises(ValueError):
        Truncation(1.5)


def test_a_turn_is_kept_whole_even_when_it_starts_with_a_call() -> None:
    conversation = Conversation(instructions="Be brief.", max_history_tokens=300)
    for index in range(12):
        conversation.add("user", f"What is the weather in town {index}?")
        conversation.insert(Message("assistant", '{"town": "x"}', kind="function_call", call_id=f"c{index}", name="weather"))
        conversation.insert(Message("user", "sunny", kind="function_call_output", call_id=f"c{index}"))
        conversation.add("assistant", "It is sunny.")
    conversation.compact(quiet=True)
    first = conversation.messages[0]
    assert (first.kind, first.role) == ("message", "user")


def test_two_hundred_turns_move_the_prompts_start_rarely() -> None:
    conversation = Conversation(instructions="Be brief.", max_history_tokens=1000)
    history, moves = conversation.history_prompt(), 0
    for index in range(200):
        turns(conversation, 1)
        conversation.compact(quiet=True)
        new = conversation.history_prompt()
        moves += not new.startswith(history)
        history = new
        assert estimate_tokens(new) <= 1000
    assert 5 <= moves <= 200 // 7  # one start move per seven turns or fewer (a drop each turn moved it every turn)


async def test_a_reply_waits_for_the_prefill_in_flight_and_stale_prefills_are_skipped() -> None:
    decoder = FakeDecoder(default="Four.")
    decoder.prefill_gate = asyncio.Event()
    conversation = Conversation(instructions="Be brief.")
    session = CascadeBrain(decoder).open(conversation)
    history = asyncio.create_task(session.prefill())  # in flight, slow
    partials = [asyncio.create_task(session.hear_partial(words)) for words in ("What", "What is")]
    await settle(steps=50)
    async with aclosing(session.reply(ReplyRequest("What is it?"))) as pieces:
        first = asyncio.create_task(anext(pieces))
        await settle(steps=50)
        assert decoder.prompts == []  # the reply waits for the history's prefill, not a second one beside it
        decoder.prefill_gate.set()
        assert (await first).text == "Four."
    await asyncio.gather(history, *partials)
    assert decoder.prefilled == [conversation.history_prompt()]  # the partials, superseded by the reply, never ran
    session.close()


async def test_every_spoken_reply_after_a_cut_extends_the_history_prefilled_before_it() -> None:
    """Spoken turns through the real session on fakes: the history is cut a few times, each time at the end of a turn,
    and every reply's prompt starts with the history prompt prefilled just before it (its start never moves on the
    reply's critical path)."""
    async with Harness() as h:
        h.session.conversation.max_history_tokens = 300
        log: list[tuple[str, str]] = []
        prefill, generate = h.decoder.prefill, h.decoder.generate

        async def logged_prefill(prompt: str, **options: Any) -> None:
            log.append(("prefill", prompt))
            await prefill(prompt, **options)

        def logged_generate(prompt: str, **options: object):  # noqa: ANN202 - the decoder's generator
            log.append(("reply", prompt))
            return generate(prompt, **options)  # type: ignore[arg-type]

        h.decoder.prefill, h.decoder.generate = logged_prefill, logged_generate  # type: ignore[method-assign]
        for count in range(1, 25):
            await h.push(speak(QUESTION))
            await h.push(silence(0.8))
            await h.done(count)
        history_prompts = [p for kind, p in log if kind == "prefill" and p.endswith("<|im_end|>\n")]
        cuts = sum(not new.startswith(old) for old, new in zip(history_prompts, history_prompts[1:]))
        assert 2 <= cuts <= 8
        replies = [i for i, (kind, _) in enumerate(log) if kind == "reply"]
        assert len(replies) >= 24
        for at in replies:
            last_history = next(p for kind, p in reversed(log[:at]) if kind == "prefill" and p.endswith("<|im_end|>\n"))
            assert log[at][1].startswith(last_history)
        assert estimate_tokens(h.session.conversation.history_prompt()) <= 300
