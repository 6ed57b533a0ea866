"""Instructions changed during a conversation keep the prompt's prefix (and so the decoder's cache) as it was: they
follow the last item until the next compaction folds them into the system message at the head."""

from __future__ import annotations

from realtime.conversation import Conversation, Message


def conversation(turns: int = 3) -> Conversation:
    c = Conversation(instructions="Be brief.")
    for i in range(turns):
        c.add("user", f"question {i}")
        c.add("assistant", f"answer {i}")
    return c


def test_before_any_item_new_instructions_replace_the_head() -> None:
    c = Conversation(instructions="Be brief.")
    c.instruct("Be warm.")
    assert c.history_prompt().startswith("<|im_start|>system\nBe warm.") and c.changes == []


def test_new_instructions_follow_the_last_item_and_keep_the_prefix() -> None:
    c = conversation()
    before = c.history_prompt()
    c.instruct("Be warm.")
    after = c.history_prompt()
    assert after.startswith(before), "everything the decoder has cached is still the prompt's start"
    assert after.removeprefix(before) == "<|im_start|>system\nNew instructions, in place of all the earlier ones: Be warm.<|im_end|>\n"
    assert c.current_instructions == "Be warm." and c.instructions == "Be brief."
    c.instruct("Be warm.")
    assert c.history_prompt() == after, "the same instructions again change nothing"
    c.add("user", "question 3")
    assert c.history_prompt().index("Be warm.") < c.history_prompt().index("question 3")


def test_a_compaction_folds_them_into_the_head() -> None:
    c = conversation(40)
    c.instruct("Be warm.")
    c.max_history_tokens = 300
    assert c.compact(quiet=True), "the oldest turns went"
    prompt = c.history_prompt()
    assert prompt.startswith("<|im_start|>system\nBe warm.<|im_end|>") and "New instructions" not in prompt
    assert c.current_instructions == "Be warm." and c.changes == []


def test_deleting_the_item_they_follow_moves_them_to_the_item_before() -> None:
    c = conversation()
    c.instruct("Be warm.")
    last = c.messages[-1]
    assert c.delete(last.id)
    assert c.changes == [(c.messages[-1].id, "Be warm.")]
    assert c.history_prompt().endswith("Be warm.<|im_end|>\n")
    c.messages.clear()
    c.changes = [("gone", "Be kind.")]
    assert c.history_prompt() == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>system\nNew instructions, in place of all the earlier ones: Be kind.<|im_end|>\n"
    ), "instructions whose item is not there are given first"


def test_one_replys_instructions_come_before_the_question_it_answers_and_leave_the_conversation_alone() -> None:
    c = conversation()
    history = c.history_prompt()
    c.add("user", "question 3")
    view = c.view(instructions="Answer in French.")
    prompt = view.reply_prompt(None)
    assert prompt.startswith(history), "the cached history is the reply's prompt's start"
    assert prompt.index("Answer in French.") < prompt.index("question 3"), "the question stays the last message"
    assert c.changes == [] and view.current_instructions == "Answer in French."
    assert c.view(instructions="Be brief.").changes == [], "the instructions in force change nothing"
    other = c.view(instructions="Classify.", messages=[Message("user", "I love this!")])
    assert other.history_prompt() == "<|im_start|>system\nClassify.<|im_end|>\n<|im_start|>user\nI love this!<|im_end|>\n"
