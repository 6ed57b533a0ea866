"""Function calling, per-response options and the item lifecycle in the session, on fakes (no models, no real time):
a reply that calls a tool, the tool's output answered in words, text-only replies, out-of-band replies beside the
conversation, item retrieval and placement. The real models and real clients are in ``test_agents_sdk.py``."""

from __future__ import annotations

import asyncio
import json

from realtime.conversation import ROOT, Message
from realtime.events import (
    AssistantTextDelta,
    AudioOut,
    ErrorEvent,
    ItemAdded,
    ItemRetrieved,
    ReplyDone,
    ReplyStarted,
    ToolCallDelta,
    ToolCallDone,
    ToolCallStarted,
)
from realtime.session import SessionConfig
from realtime.session.config import ResponseOptions
from realtime.tools import Tool, ToolCallSplitter, ToolUse, call_grammar
from tests.fakes import settle, silence, speak
from tests.test_session import Harness

WEATHER = Tool("get_weather", "The weather in a city", {"type": "object", "properties": {"city": {"type": "string"}}})
CALL = '<tool_call> {"name": "get_weather", "arguments": {"city": "Paris"}} </tool_call>'
OUTPUT = '{"sky": "sunny", "celsius": 21}'
ASKED = "what is the weather in paris?"
NOTE = f'The function get_weather({{"city": "Paris"}}) returned: {OUTPUT}\nTell the user exactly this result in one sentence.'
ANSWERS = {ASKED: CALL, NOTE: "It is sunny and 21 degrees in Paris."}


def typed(text: str) -> Message:
    return Message("user", text)


async def test_a_reply_calls_a_tool_and_the_next_one_answers_with_its_output() -> None:
    config = SessionConfig(turn_detection=False, tools=ToolUse((WEATHER,)))
    async with Harness(config, ANSWERS) as h:
        h.session.history.add(typed(ASKED))
        await h.session.create_response()
        [done] = await h.done()
        [started], [finished] = h.of(ToolCallStarted), h.of(ToolCallDone)
        assert (started.name, finished.call_id) == ("get_weather", started.call_id)
        assert json.loads(finished.arguments) == {"city": "Paris"}
        assert "".join(d.delta for d in h.of(ToolCallDelta)) == finished.arguments
        assert done.status == "completed" and done.text == "" and not h.sink.items, "a call alone says nothing"
        assert "<tools>" in h.decoder.prompts[0] and '"get_weather"' in h.decoder.prompts[0]
        call = h.session.conversation.messages[-1]
        assert (call.kind, call.call_id, call.id) == ("function_call", started.call_id, started.item_id)

        h.session.history.add(Message("user", OUTPUT, kind="function_call_output", call_id=started.call_id))
        await h.session.create_response()
        second = (await h.done(2))[1]
    assert second.text == "It is sunny and 21 degrees in Paris." and h.sink.items, "the answer is spoken"
    assert NOTE in h.decoder.prompts[1], "the call and its result are a note to the model"
    assert h.decoder.tools[1].offered == (), "a result is answered in words"
    head = h.decoder.prompts[0].split("<|im_start|>user")[0]
    assert "<tools>" in head and h.decoder.prompts[1].startswith(head), "with the tools still shown: the same head"
    assert [m.kind for m in h.session.conversation.messages] == ["message", "function_call", "function_call_output", "message"]


async def test_tool_choice_reaches_the_decoder_per_response() -> None:
    config = SessionConfig(turn_detection=False, tools=ToolUse((WEATHER,)))
    async with Harness(config, ANSWERS) as h:
        h.session.history.add(typed(ASKED))
        await h.session.create_response(ResponseOptions(tools=ToolUse((WEATHER,), "none")))
        await h.done()
    assert h.decoder.tools == [ToolUse((WEATHER,), "none")]
    assert "<tools>" not in h.decoder.prompts[0], "with tool_choice none the model is not shown the tools"
    assert call_grammar(ToolUse((WEATHER,), "none")) == {}
    assert "grammar_lazy" not in call_grammar(ToolUse((WEATHER,), "get_weather"))


async def test_a_forced_call_keeps_the_prompts_head() -> None:
    config = SessionConfig(turn_detection=False, tools=ToolUse((WEATHER,), "none"))
    async with Harness(config, ANSWERS) as h:
        h.session.history.add(typed(ASKED))
        await h.session.create_response(ResponseOptions(tools=ToolUse((WEATHER,), "get_weather")))
        await h.done()
    assert h.decoder.tools == [ToolUse((WEATHER,), "get_weather")], "the grammar writes the call"
    assert "<tools>" not in h.decoder.prompts[0], "the head is the session's, without tools: the prefix cache holds"
    [call] = h.of(ToolCallDone)
    assert json.loads(call.arguments) == {"city": "Paris"}


async def test_text_only_replies_make_no_audio() -> None:
    async with Harness(SessionConfig(turn_detection=False, audio_output=False)) as h:
        h.session.history.add(typed("what is two plus two?"))
        await h.session.create_response()
        [done] = await h.done()
    [started] = h.of(ReplyStarted)
    assert started.audio is False and not h.sink.items and not h.of(AudioOut)
    assert "".join(d.text for d in h.of(AssistantTextDelta)).strip() == "Four." == done.text
    assert h.history()[-1] == ("assistant", "Four.")


async def test_an_out_of_band_reply_runs_beside_the_conversation_and_leaves_it_alone() -> None:
    answers = {"tell me a story.": "Once upon a time there was a story.", "I love this!": "positive"}
    async with Harness(SessionConfig(turn_detection=False), answers) as h:
        h.decoder.gate, h.decoder.hold_after = asyncio.Event(), 2
        h.session.history.add(typed("tell me a story."))
        await h.session.create_response()
        await settle(lambda: bool(h.of(ReplyStarted)))
        review = typed("I love this!")
        options = ResponseOptions(instructions="Classify the sentiment in one word.", audio_output=False,
                                  metadata={"purpose": "sentiment"}, out_of_band=True, input=(review,))
        h.decoder.gate, story_gate = None, h.decoder.gate  # the story stays held; the classification runs
        await h.session.create_response(options)
        await settle(lambda: len(h.of(ReplyDone)) >= 1)
        [classified] = h.of(ReplyDone)
        assert classified.text == "positive", "the out-of-band reply finished while the story was held"
        story_gate.set()
        await h.done(2)
    started = h.of(ReplyStarted)
    assert started[1].out_of_band and started[1].metadata == {"purpose": "sentiment"}
    oob_prompt = next(p for p in h.decoder.prompts if "Classify" in p)
    assert "tell me a story." not in oob_prompt and "I love this!" in oob_prompt
    assert [text for _, text in h.history()] == ["tell me a story.", "Once upon a time there was a story."]


async def test_input_references_must_exist() -> None:
    async with Harness(SessionConfig(turn_detection=False)) as h:
        await h.session.create_response(ResponseOptions(input=("item_nowhere",)), "evt_1")
        await settle(steps=50)
    assert [(e.code, e.event_id) for e in h.of(ErrorEvent)] == [("item_not_found", "evt_1")]


async def test_items_are_placed_and_retrieved() -> None:
    async with Harness(SessionConfig(turn_detection=False)) as h:
        first, second = typed("first"), typed("second")
        h.session.history.add(first)
        h.session.history.add(second, ROOT)
        third = typed("third")
        h.session.history.add(third, first.id)
        h.session.history.add(typed("lost"), "item_nowhere", "evt_1")
        h.session.history.add(typed("again"))
        h.session.history.add(Message("user", "dup", first.id), None, "evt_2")
        h.session.retrieve(first.id, "evt_3")
        h.session.retrieve("item_nowhere", "evt_4")
        await settle(steps=50)
    assert [text for _, text in h.history()] == ["second", "first", "third", "again"]
    assert [a.previous_item_id for a in h.of(ItemAdded)] == [None, None, first.id, third.id]
    [retrieved] = h.of(ItemRetrieved)
    assert (retrieved.item.text, retrieved.event_id) == ("first", "evt_3")
    assert [(e.code, e.event_id) for e in h.of(ErrorEvent)] == [
        ("item_not_found", "evt_1"), ("invalid_value", "evt_2"), ("item_not_found", "evt_4")]


def test_the_splitter_reads_calls_cut_anywhere_and_drops_what_is_not_a_call() -> None:
    text = 'Sure.<tool_call>\n{"name": "f", "arguments": {"a": {"b": 1}}}\n</tool_call><tool_call>nonsense</tool_call> Bye'
    for step in (1, 2, 5, len(text)):
        splitter, out = ToolCallSplitter(), []
        for at in range(0, len(text), step):
            out += splitter.push(text[at : at + step])
        out += splitter.flush()
        assert "".join(o for o in out if isinstance(o, str)) == "Sure. Bye"
        calls = [o for o in out if not isinstance(o, str)]
        assert calls[0].name == "f" and calls[-1].done and calls[-1].arguments == '{"a": {"b": 1}}'
        assert "".join(c.arguments for c in calls[1:-1]) == calls[-1].arguments
    unfinished = ToolCallSplitter()
    assert next(iter(unfinished.push('<tool_call>{"name": "f", "arguments": {'))).name == "f"  # type: ignore[union-attr]
    assert list(unfinished.flush()) == []


async def test_an_output_sent_before_the_reply_ends_follows_its_call() -> None:
    """Clients run a tool as soon as its call is done (the Agents SDKs do), while the reply may still be speaking."""
    config = SessionConfig(turn_detection=False, tools=ToolUse((WEATHER,)))
    async with Harness(config, {ASKED: CALL + " One moment please."}) as h:
        h.decoder.gate, h.decoder.hold_after = asyncio.Event(), len(CALL.split())
        h.session.history.add(typed(ASKED))
        await h.session.create_response()
        await settle(lambda: bool(h.of(ToolCallDone)))
        [call] = h.of(ToolCallDone)
        h.session.add_item(Message("user", OUTPUT, kind="function_call_output", call_id=call.call_id))
        await settle(steps=50)
        assert [m.kind for m in h.session.conversation.messages] == ["message"], "held until the turn closes"
        h.decoder.gate.set()
        await h.done()
        await settle(lambda: len(h.of(ItemAdded)) >= 2)
    messages = h.session.conversation.messages
    assert [(m.role, m.kind) for m in messages] == [
        ("user", "message"), ("assistant", "function_call"), ("assistant", "message"), ("user", "function_call_output")
    ], "in the order they were announced: the call came before the words"
    assert messages[1].id == call.item_id and h.of(ItemAdded)[-1].previous_item_id == messages[2].id


async def test_an_older_reply_is_cut_to_the_words_that_fit_and_stays_addressable() -> None:
    story = " ".join(f"word{i}" for i in range(40)) + "."
    async with Harness(SessionConfig(turn_detection=False), {"tell me a story.": story, "and then?": "The end."}) as h:
        h.session.history.add(typed("tell me a story."))
        await h.session.create_response()
        [told] = await h.done()
        h.session.history.add(typed("and then?"))
        await h.session.create_response()
        await h.done(2)
        message = h.session.conversation.find(told.item_id)
        assert message is not None and message.audio_ms == 40 * 250  # the fake voice: 250 ms a word
        await h.session.turns.truncate(told.item_id, 2_500)
        assert message.text.split() == [f"word{i}" for i in range(10)]
        await h.session.turns.truncate(told.item_id, 0)
        assert message.text == "" and h.session.conversation.find(told.item_id) is message
        h.session.history.delete(told.item_id, "evt_1")
        await settle(steps=50)
    assert not h.of(ErrorEvent)
    assert "word0" not in h.decoder.prefilled[-1], "the history the model sees has lost the deleted reply"


async def test_a_brain_that_cannot_call_tools_says_so() -> None:
    async with Harness(SessionConfig(turn_detection=False)) as h:
        h.session.brain.calls_tools = False  # type: ignore[misc]  # as the audio LLM brains are
        h.session.configure(SessionConfig(turn_detection=False, tools=ToolUse((WEATHER,))))
        await h.session.create_response(ResponseOptions(tools=ToolUse((WEATHER,), "required")), "evt_2")
        await settle(steps=50)
    assert [(e.code, e.event_id) for e in h.of(ErrorEvent)] == [("invalid_value", None), ("invalid_value", "evt_2")]


async def test_a_spoken_user_item_is_transcribed_into_the_conversation() -> None:
    async with Harness(SessionConfig(turn_detection=False)) as h:
        h.session.add_item(Message("user", ""), None, "evt_1", speak("what is two plus two?"))
        await settle(lambda: bool(h.of(ItemAdded)))
        await h.session.create_response()
        [done] = await h.done()
    [added] = h.of(ItemAdded)
    assert added.item.text == "what is two plus two?" and added.item.audio_ms > 0
    assert done.text == "Four."


async def test_a_spoken_user_turn_is_kept_as_audio_with_its_transcript() -> None:
    async with Harness() as h:
        await h.push(silence(0.3))
        await h.push(speak("what is two plus two?"))
        await h.push(silence(1.0))
        await h.done()
        user = h.session.conversation.messages[0]
        h.session.retrieve(user.id, "evt_1")
        await settle(lambda: bool(h.of(ItemRetrieved)))
    assert (user.role, user.text) == ("user", "what is two plus two?") and user.audio_ms > 1_000
    assert h.of(ItemRetrieved)[0].item.audio_ms == user.audio_ms  # the wire shows it as input_audio
