"""Semantic end of turn (``semantic_vad``) on fakes and a virtual clock: a turn that sounds and reads finished ends
after a short silence, an unfinished one waits and is answered whole, and the judgment is recorded; and what the
end of speech means for the partial transcripts (none starts in the silence before the final one)."""

from __future__ import annotations

import numpy as np

from realtime.events import ReplyDone, ReplyStarted
from realtime.policy import EAGERNESS, PolicyConfig
from realtime.session import SessionConfig
from tests.fakes import settle, silence, speak
from tests.test_session import QUESTION, Harness

SEMANTIC = SessionConfig(policy=PolicyConfig().semantic("medium"))
COMPLETE_MS, INCOMPLETE_MS = EAGERNESS["medium"]


class FixedTurnDetector:
    """An audio end-of-turn model that always hears the same probability."""

    def __init__(self, probability: float) -> None:
        self.probability = probability
        self.calls = 0

    async def probability_async(self, audio: np.ndarray) -> float:
        self.calls += 1
        return self.probability


def end_of_turn_ms(h: Harness) -> float:
    stamps = h.session.records[0].stamps
    return (stamps["end_of_turn"] - stamps["speech_end"]) * 1000


async def ask(h: Harness, text: str = QUESTION) -> ReplyDone:
    await h.push(silence(0.3))
    await h.push(speak(text))
    await h.push(silence(1.5))
    [done] = await h.done()
    return done


async def test_a_complete_turn_ends_sooner_than_under_server_vad() -> None:
    async with Harness(SEMANTIC) as semantic:
        semantic.models.turn_detector = FixedTurnDetector(0.9)  # type: ignore[assignment]
        done = await ask(semantic)
    async with Harness() as server_vad:
        await ask(server_vad)
    assert done.text == "Four."
    assert COMPLETE_MS - 40 <= end_of_turn_ms(semantic) < COMPLETE_MS + 100 < 480 - 40 <= end_of_turn_ms(server_vad)
    record = semantic.session.records[0]
    assert record.end_of_turn_probability == 0.9 and record.end_of_turn_complete is True
    assert record.as_dict()["stages_ms"]["end_of_turn_signal"] is not None


async def test_an_unfinished_turn_waits_and_is_answered_whole() -> None:
    answers = {"what is the capital of germany?": "Berlin."}
    async with Harness(SEMANTIC, answers) as h:
        await h.push(speak("what is the capital of"))
        await h.push(silence(0.7))  # a pause that server_vad (480 ms) would take for the end of the turn
        assert not h.of(ReplyStarted) and h.session.user_speaking
        await h.push(speak("germany?"))
        await h.push(silence(1.5))
        [done] = await h.done()
    assert done.text == "Berlin." and len(h.of(ReplyStarted)) == 1
    assert h.history() == [("user", "what is the capital of germany?"), ("assistant", "Berlin.")]


async def test_a_turn_that_does_not_sound_finished_waits_the_long_silence() -> None:
    async with Harness(SEMANTIC) as h:
        h.models.turn_detector = FixedTurnDetector(0.2)  # type: ignore[assignment]
        await ask(h)
    assert INCOMPLETE_MS - 40 <= end_of_turn_ms(h) < INCOMPLETE_MS + 100
    record = h.session.records[0]
    assert record.end_of_turn_probability == 0.2 and record.end_of_turn_complete is False


async def test_server_vad_does_not_judge() -> None:
    async with Harness() as h:
        detector = FixedTurnDetector(0.9)
        h.models.turn_detector = detector  # type: ignore[assignment]
        await ask(h)
        await settle()
    assert detector.calls == 0 and h.session.records[0].end_of_turn_complete is None


async def test_partials_come_from_their_own_model_and_none_starts_in_a_silence() -> None:
    from tests.fakes import FakeAsr

    async with Harness() as h:
        h.models.partial_asr = partial = FakeAsr()
        await h.push(speak("tell me about the weather in paris today please"))
        during_speech = partial.calls
        await h.push(silence(1.0))
        await h.done()
    assert during_speech >= 3 and partial.calls == during_speech
    assert h.asr.calls == 1  # the final transcript


def test_the_wording_rule() -> None:
    from realtime.asr import ends_open, looks_complete

    assert ends_open("What is the capital of?") and ends_open("How many legs does a") and ends_open("")
    assert not ends_open("what is the capital of england") and not ends_open("Yes.")
    assert looks_complete("What is the capital of England?") and not looks_complete("what is the capital of england")
