"""Table-driven tests of the turn-taking policy: VAD windows in, decisions out, no I/O."""

from __future__ import annotations

import pytest

from realtime.policy import Decision, PolicyConfig, TurnPolicy

W = 512  # one 32 ms Silero window
TABLE_CONFIG = PolicyConfig(speculate_silence_ms=64)
"""The defaults, but speculation after two silent windows, so the table stays short."""
D = Decision


def run(pattern: str, config: PolicyConfig | None = None, agent_active: str = "") -> list[tuple[Decision, int]]:
    """Feed one window per character ('S' speech, '.' silence); ``agent_active`` marks windows ('A')."""
    policy = TurnPolicy(config or TABLE_CONFIG)
    decisions = []
    for index, char in enumerate(pattern):
        active = index < len(agent_active) and agent_active[index] == "A"
        for event in policy.window(index * W, (index + 1) * W, 0.9 if char == "S" else 0.1, agent_active=active):
            decisions.append((event.decision, event.sample // W))
    return decisions


CASES = [
    ("silence only", "..........", []),
    ("a click is not a turn", "..S.......", []),
    ("a cough shorter than min speech", ".SSS...........................", []),
    # 160 ms of speech = 5 windows; speculate after 2 silent windows (64 ms); end after 15 (480 ms)
    (
        "a turn: start, pause, end",
        ".SSSSSS" + "." * 16,
        [(D.SPEECH_STARTED, 1), (D.PAUSED, 7), (D.END_OF_TURN, 7)],
    ),
    (
        "a short gap inside speech is not a pause",
        ".SSSSSS.SSSS" + "." * 16,
        [(D.SPEECH_STARTED, 1), (D.PAUSED, 12), (D.END_OF_TURN, 12)],
    ),
    (
        "speech resumes after a pause: speculation discarded",
        ".SSSSSS....SSSS" + "." * 16,
        [(D.SPEECH_STARTED, 1), (D.PAUSED, 7), (D.RESUMED, 11), (D.PAUSED, 15), (D.END_OF_TURN, 15)],
    ),
    (
        "one speech window after a pause does not resume",
        ".SSSSSS....S" + "." * 16,
        [(D.SPEECH_STARTED, 1), (D.PAUSED, 7), (D.END_OF_TURN, 7)],
    ),
    (
        "onset with a gap under max_gap still counts",
        ".SSS..SSS" + "." * 16,
        [(D.SPEECH_STARTED, 1), (D.PAUSED, 9), (D.END_OF_TURN, 9)],
    ),
    ("onset with a long gap resets", ".SSS....SS" + "." * 16, []),
]


@pytest.mark.parametrize("name,pattern,expected", CASES, ids=[c[0] for c in CASES])
def test_decisions(name: str, pattern: str, expected: list[tuple[Decision, int]]) -> None:
    assert run(pattern) == expected


def test_barge_in_needs_more_speech_than_a_turn_start() -> None:
    # 192 ms = 6 windows while the agent is active
    short = run(".SSSSS......", agent_active="A" * 12)
    assert short == []
    long = run(".SSSSSSS", agent_active="A" * 8)
    assert long == [(D.SPEECH_STARTED, 1), (D.BARGE_IN, 1)]


def test_knobs_change_decisions() -> None:
    config = PolicyConfig(min_speech_ms=64, speculate_silence_ms=32, end_of_turn_silence_ms=96)
    assert run(".SS....", config) == [(D.SPEECH_STARTED, 1), (D.PAUSED, 3), (D.END_OF_TURN, 3)]


def test_user_speaking_and_paused_flags() -> None:
    policy = TurnPolicy()
    for i in range(6):
        policy.window(i * W, (i + 1) * W, 0.9)
    assert policy.user_speaking and not policy.paused
    for i in range(6, 12):
        policy.window(i * W, (i + 1) * W, 0.0)
    assert policy.user_speaking and policy.paused
    for i in range(12, 30):
        policy.window(i * W, (i + 1) * W, 0.0)
    assert not policy.user_speaking and not policy.paused


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold": 0.0}, {"threshold": 1.0}, {"min_speech_ms": -1},
        {"speculate_silence_ms": 600, "end_of_turn_silence_ms": 500},
    ],
)
def test_invalid_config(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        PolicyConfig(**kwargs)
