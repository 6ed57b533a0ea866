"""The streaming <think> splitter, the prompt format and history truncation."""

from __future__ import annotations

import pytest

from realtime.asr import max_tokens, stable_prefix, window_seconds
from realtime.conversation import Conversation
from realtime.reasoning import Piece, ThinkSplitter


def split(chunks: list[str], thinking: bool) -> list[tuple[str, str]]:
    splitter = ThinkSplitter(thinking=thinking)
    pieces: list[Piece] = []
    for chunk in chunks:
        pieces += splitter.push(chunk)
    pieces += splitter.flush()
    merged: list[tuple[str, str]] = []
    for piece in pieces:
        if merged and merged[-1][0] == piece.channel:
            merged[-1] = (piece.channel, merged[-1][1] + piece.text)
        else:
            merged.append((piece.channel, piece.text))
    return merged


@pytest.mark.parametrize(
    "chunks,thinking,expected",
    [
        (["Paris."], False, [("answer", "Paris.")]),
        (["a bit", " more</think>Paris"], True, [("reasoning", "a bit more"), ("answer", "Paris")]),
        (["hm</th", "ink>Yes"], True, [("reasoning", "hm"), ("answer", "Yes")]),
        (["</think>", "Yes"], True, [("answer", "Yes")]),
        (["<thi", "nk>plan</think>", "Go"], False, [("reasoning", "plan"), ("answer", "Go")]),
        (["never closes"], True, [("reasoning", "never closes")]),
        (["a < b and c </ d"], False, [("answer", "a < b and c </ d")]),
    ],
)
def test_splitter(chunks: list[str], thinking: bool, expected: list[tuple[str, str]]) -> None:
    assert split(chunks, thinking) == expected


def test_splitter_char_by_char_matches_whole() -> None:
    text = "weigh it</think>Seven is bigger."
    assert split(list(text), True) == split([text], True)


def test_close_reasoning_switches_to_answer() -> None:
    splitter = ThinkSplitter(thinking=True)
    splitter.push("budget spent")
    splitter.close_reasoning()
    assert splitter.push("Answer") == [Piece("answer", "Answer")]


def test_prompt_format_and_history() -> None:
    conversation = Conversation(instructions="Be brief.")
    prefix = conversation.user_prefix("What is")
    prompt = conversation.reply_prompt("What is the capital of France?")
    assert prompt.startswith(prefix)
    assert prompt == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert conversation.reasoning_prompt("Hi").startswith(conversation.reply_prompt("Hi") + "<think>\n")
    answer = conversation.answer_prompt("Hi", "greet back")
    assert answer.startswith(conversation.history_prompt() + "<|im_start|>system\nYour private reasoning")
    assert answer.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    assert "greet back" in answer and "<think>" not in answer
    assert conversation.answer_prompt(None, "x").endswith("x<|im_end|>\n<|im_start|>assistant\n")
    conversation.add("user", "Tell me a story.")
    conversation.add("assistant", "Once upon a time there was a fox.")
    reply = conversation.messages[-1]
    conversation.truncate(reply.id, "Once upon a time")
    assert conversation.messages[-1].text == "Once upon a time"
    assert conversation.reply_prompt(None) == conversation.history_prompt() + "<|im_start|>assistant\n"
    conversation.truncate(reply.id, "")
    assert [(m.role, m.text) for m in conversation.messages] == [("user", "Tell me a story."), ("assistant", "")]
    assert conversation.history_prompt().endswith("Tell me a story.<|im_end|>\n"), "an unheard reply is not in the prompt"


@pytest.mark.parametrize(
    "previous,current,stable",
    [
        ("", "What is", ""),
        ("What is the cap", "What is the capital of", "What is"),
        ("What is the capital", "What is the capital of France", "What is the"),
        ("Where is", "What is the", ""),
    ],
)
def test_stable_prefix(previous: str, current: str, stable: str) -> None:
    assert stable_prefix(previous, current) == stable


@pytest.mark.parametrize("clip,window", [(0.5, 10), (3.0, 10), (9.6, 15), (14.0, 15), (22.0, 25), (40.0, 30)])
def test_asr_window(clip: float, window: int) -> None:
    assert window_seconds(clip) == window


def test_asr_token_cap_grows_with_the_clip() -> None:
    """A one-word clip cannot loop into a page of "15th 15th ..."; a long one keeps room for fast speech."""
    assert max_tokens(0.5) == 19 and max_tokens(10.0) == 76 and max_tokens(60.0) == 224
