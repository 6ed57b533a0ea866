"""Cutting a streamed answer into speakable clauses, and stopping a looping model."""

from __future__ import annotations

import pytest

from tts import ClauseSegmenter, RepetitionGuard, speakable


def segment(text: str, **limits: int) -> list[str]:
    """Feed ``text`` token by token (words with their leading space) and collect the clauses."""
    segmenter = ClauseSegmenter(**limits)
    clauses: list[str] = []
    for index, word in enumerate(text.split(" ")):
        clauses += segmenter.push(word if index == 0 else " " + word)
    return clauses + segmenter.flush()


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Yes. Seven is bigger than five.", ["Yes.", "Seven is bigger than five."]),
        ("The capital of Egypt is Cairo.", ["The capital of Egypt is Cairo."]),
        ("A brave little dragon named Zephyr lived in the hills.",
         ["A brave little dragon named Zephyr lived in", "the hills."]),
        ("Paris, of course.", ["Paris,", "of course."]),
        ("It costs 3.5 dollars, e.g. at Dr. Smith's shop.", ["It costs 3.5 dollars,", "e.g. at Dr. Smith's shop."]),
        ("Yes, seven is bigger than five.", ["Yes,", "seven is bigger than five."]),
        ("Well, I think so, but the answer depends on many things, really.",
         ["Well,", "I think so, but the answer depends on many things,", "really."]),
        ("**Bold** and `code` 🎉 here.", ["Bold and code here."]),
    ],
)
def test_clauses(text: str, expected: list[str]) -> None:
    assert segment(text) == expected


def test_later_clauses_are_cut_at_max_words() -> None:
    words = " ".join(f"w{i}" for i in range(40))
    clauses = segment("Hi. " + words, max_words=10)
    assert clauses[0] == "Hi." and all(len(c.split()) <= 10 for c in clauses) and " ".join(clauses[1:]) == words


def test_invalid_limits() -> None:
    with pytest.raises(ValueError):
        ClauseSegmenter(first_min_words=9, first_max_words=8)


def test_speakable_strips_markup_and_urls() -> None:
    assert speakable("- see https://example.org/page **now**\n```x = 1```") == "see example.org now"


def test_repetition_guard() -> None:
    guard = RepetitionGuard()
    assert not guard.repeats("Two plus two is four.")
    assert not guard.repeats("That is all.")
    assert guard.repeats("two plus two is four")
