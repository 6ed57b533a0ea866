"""The terminal view of a conversation, on a terminal and into a file."""

from __future__ import annotations

import io

import numpy as np

from realtime.console import ConsoleView
from realtime.events import (
    AssistantTextDelta,
    AudioOut,
    ErrorEvent,
    ReasoningDelta,
    ReplyDone,
    ReplyTruncated,
    UserTranscriptFinal,
    UserTranscriptPartial,
)

TURN = [
    UserTranscriptPartial("item_1", "What is"),
    UserTranscriptPartial("item_1", "What is the capital"),
    UserTranscriptFinal("turn_1", "item_1", "What is the capital of France?"),
    ReasoningDelta("turn_1", 1, "France's capital"),
    ReasoningDelta("turn_1", 1, " is Paris."),
    AssistantTextDelta("turn_1", 1, "The capital of France "),
    AudioOut("turn_1", 1, np.zeros(480, np.float32)),
    AssistantTextDelta("turn_1", 1, "is Paris. "),
    ReplyDone("turn_1", 1, "item_2", "completed", "The capital of France is Paris.", {"first_packet_delay_ms": 612.5}),
    ErrorEvent("reply_failed", "the reply failed: boom"),
]


def shown(live: bool) -> str:
    out = io.StringIO()
    view = ConsoleView(out, live=live)
    for item in TURN:
        view.show(item)
    return out.getvalue()


def test_into_a_file_only_whole_lines() -> None:
    assert shown(live=False).splitlines() == [
        "you: What is the capital of France?",
        "thinking: France's capital is Paris.",
        "agent: The capital of France is Paris. ",
        "  (first packet 612.5 ms)",
        "error: the reply failed: boom",
    ]


def test_on_a_terminal_partials_are_rewritten_and_reasoning_is_dimmed() -> None:
    text = shown(live=True)
    assert text.startswith("you: What is\r\x1b[2Kyou: What is the capital\r\x1b[2Kyou: What is the capital of France?\n")
    assert "thinking: \x1b[2mFrance's capital\x1b[0m\x1b[2m is Paris.\x1b[0m\n" in text
    assert "\x1b[2m  (first packet 612.5 ms)\x1b[0m\n" in text


def test_an_interrupted_reply_says_so() -> None:
    out = io.StringIO()
    ConsoleView(out, live=False).show(ReplyDone("t", 1, "i", "interrupted", "The", {"first_packet_delay_ms": 700.0}))
    assert out.getvalue() == "  (first packet 700.0 ms, interrupted)\n"


def test_a_reply_cut_while_it_played_says_what_was_heard() -> None:
    out = io.StringIO()
    ConsoleView(out, live=False).show(ReplyTruncated("item_2", "Once upon a time,", 1480))
    assert out.getvalue() == "  (cut after 1.5 s: Once upon a time,)\n"
