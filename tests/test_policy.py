"""Table-driven tests of the turn-taking policy: VAD windows in, decisions out, no I/O."""

from __future__ import annotations

import pytest

from realtime.policy import BACKCHANNELS, Decision, PolicyConfig, TurnPolicy, content_words, interrupts

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


IMMEDIATE = PolicyConfig(speculate_silence_ms=64, min_interruption_ms=None)
"""Speech over a reply interrupts it at once (no pause first): the behaviour before pauses."""


def test_barge_in_needs_more_speech_than_a_turn_start() -> None:
    # 192 ms = 6 windows while the agent is active
    short = run(".SSSSS......", IMMEDIATE, agent_active="A" * 12)
    assert short == []
    long = run(".SSSSSSS", IMMEDIATE, agent_active="A" * 8)
    assert long == [(D.SPEECH_STARTED, 1), (D.BARGE_IN, 1)]


OVERLAP = PolicyConfig(speculate_silence_ms=64, min_interruption_ms=320)
"""Speech over a reply pauses it at once; 10 windows of speech confirm the interruption."""


def test_speech_over_a_reply_pauses_it_at_its_first_window() -> None:
    # a click: paused at once, resumed once the gap shows it was no speech
    assert run(".S.....", OVERLAP, "A" * 7) == [(D.OVERLAP, 1), (D.OVERLAP_ENDED, 1)]
    # a backchannel (5 windows): a turn to judge by its words, never confirmed by its length
    short = run(".SSSSS" + "." * 16, OVERLAP, "A" * 22)
    assert short == [(D.OVERLAP, 1), (D.SPEECH_STARTED, 1), (D.PAUSED, 6), (D.END_OF_TURN, 6)]
    # long speech: confirmed at 10 windows of speech, counted across a short pause
    long = run(".SSSSSS...SSSS" + "." * 16, OVERLAP, "A" * 30)
    assert long == [(D.OVERLAP, 1), (D.SPEECH_STARTED, 1), (D.PAUSED, 7), (D.RESUMED, 10), (D.BARGE_IN, 10),
                    (D.PAUSED, 14), (D.END_OF_TURN, 14)]
    unbroken = run(".SSSSSSSSSSSS....", OVERLAP, "A" * 17)
    assert unbroken == [(D.OVERLAP, 1), (D.SPEECH_STARTED, 1), (D.BARGE_IN, 1), (D.PAUSED, 13)]
    assert run(".SSSSS.SSSSSS", OVERLAP, "A" * 13)[-1] == (D.BARGE_IN, 7), "a short gap: speech goes on (from 7)"


def test_a_single_window_after_a_pause_counts_toward_the_interruption() -> None:
    assert (D.BARGE_IN, 13) in run(".SSSSSS...S..SSS" + "." * 3, OVERLAP, "A" * 30)


def test_switching_pauses_off_during_an_overlap_interrupts_at_once() -> None:
    policy = TurnPolicy(OVERLAP)
    events = [e.decision for i in range(1, 7) for e in policy.window(i * W, (i + 1) * W, 0.9, agent_active=True)]
    assert events == [D.OVERLAP, D.SPEECH_STARTED]
    policy.config = IMMEDIATE
    assert [e.decision for e in policy.window(7 * W, 8 * W, 0.9)] == [D.BARGE_IN]
    assert policy.window(8 * W, 9 * W, 0.9) == [], "confirmed once"


def test_backchannels_and_noise_do_not_interrupt_words_do() -> None:
    config = PolicyConfig()
    assert not interrupts("", config) and not interrupts(" ... ", config), "noise: no words"
    for backchannel in ("Mm-hmm.", "Yeah.", "Okay, right.", "Uh-huh", "I see.", "yeah yeah all right", "M M H H M M", "NMHMM", "Ha, ha, ha."):
        assert not interrupts(backchannel, config), backchannel
    for real in ("Wait, stop, what about Spain?", "Stop.", "No.", "Wait!", "Yeah, but what about Spain?", "Wade's Chut."):
        assert interrupts(real, config), real
    for misheard in ("Share.", "Amir."):  # "Sure" and a synthetic "uh-huh", heard as one other word
        assert not interrupts(misheard, config), misheard
    assert content_words("Okay I see a problem", BACKCHANNELS) == 2, "a phrase is taken whole"
    one = PolicyConfig(min_interruption_words=1)
    assert interrupts("Share.", one) and interrupts("Stop.", one)
    no_commands = PolicyConfig(interrupt_words=())
    assert not interrupts("Stop.", no_commands) and interrupts("Stop, please.", no_commands)
    assert interrupts("Mm-hmm.", PolicyConfig(min_interruption_words=0)), "0: any words interrupt"
    assert interrupts("Yeah, yeah.", PolicyConfig(backchannels=("okay",)))
    assert not interrupts("Emma. Emma.", config, speech_ms=400), "short speech: a misheard 'uh-huh'"
    assert interrupts("Emma. Emma.", config, speech_ms=500) and interrupts("Emma. Emma.", config)
    assert interrupts("Stop.", config, speech_ms=200), "a command word interrupts however short"


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
        {"speculate_silence_ms": 600, "end_of_turn_silence_ms": 500}, {"min_interruption_ms": -1},
        {"min_interruption_words": -1},
    ],
)
def test_invalid_config(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        PolicyConfig(**kwargs)


SEMANTIC = PolicyConfig(speculate_silence_ms=64).semantic("medium")


def semantic_policy(windows: str) -> tuple[TurnPolicy, list[tuple[Decision, int]]]:
    policy = TurnPolicy(SEMANTIC)
    decisions = []
    for index, char in enumerate(windows):
        for event in policy.window(index * W, (index + 1) * W, 0.9 if char == "S" else 0.1):
            decisions.append((event.decision, event.sample // W))
    return policy, decisions


def test_a_turn_judged_complete_ends_after_the_short_silence() -> None:
    policy, decisions = semantic_policy(".SSSSSS...")  # 3 silent windows: paused, judged
    assert decisions == [(D.SPEECH_STARTED, 1), (D.PAUSED, 7)] and policy.in_silence
    assert policy.judge(True) == []  # 96 ms of silence: not yet 256
    ended = [e.decision for i in range(10, 16) for e in policy.window(i * W, (i + 1) * W, 0.1)]
    assert ended == [D.END_OF_TURN]  # at 256 ms, not the 1000 ms of an unjudged pause


def test_a_late_judgment_ends_the_turn_at_once() -> None:
    policy, _ = semantic_policy(".SSSSSS" + "." * 12)
    assert [(e.decision, e.sample // W) for e in policy.judge(True)] == [(D.END_OF_TURN, 7)]
    assert not policy.user_speaking and policy.judge(True) == []  # no pause any more: ignored


def test_a_turn_judged_incomplete_waits_the_long_silence_and_a_new_pause_starts_unjudged() -> None:
    policy, _ = semantic_policy(".SSSSSS" + "." * 12)
    assert policy.judge(False) == []
    decisions = [e.decision for i in range(19, 40) for e in policy.window(i * W, (i + 1) * W, 0.9 if i < 23 else 0.1)]
    assert decisions == [D.RESUMED, D.PAUSED]  # the judgment was for the earlier pause
    assert [e.decision for i in range(40, 70) for e in policy.window(i * W, (i + 1) * W, 0.1)] == [D.END_OF_TURN]


def test_server_vad_ignores_judgments_and_eagerness_is_checked() -> None:
    policy = TurnPolicy(TABLE_CONFIG)
    for i in range(10):
        policy.window(i * W, (i + 1) * W, 0.9 if 0 < i < 7 else 0.1)
    assert policy.paused and policy.judge(True) == []
    with pytest.raises(ValueError, match="eagerness"):
        PolicyConfig().semantic("eager")
    with pytest.raises(ValueError, match="complete_silence_ms"):
        PolicyConfig(complete_silence_ms=1000)
