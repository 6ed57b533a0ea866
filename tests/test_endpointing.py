"""Semantic end of turn (``semantic_vad``) on fakes and a virtual clock: a turn that sounds and reads finished ends
after a short silence, an unfinished one waits and is answered whole, and the judgment is recorded; and what the
end of speech means for the partial transcripts (none starts in the silence before the final one)."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pytest

from realtime.events import ReplyDone, ReplyStarted, SpeechStopped
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


async def paused_mid_question(h: Harness, *, reply_ready: bool) -> int:
    """The user says what reads as a whole question, pauses 600 ms (more than the short silence, less than the long
    one) and goes on; the reply to the first part is ready at once, or only after the pause (the decoder waits).
    Returns how many turns had ended when the user went on."""
    if not reply_ready:
        h.decoder.gate, h.decoder.hold_after = asyncio.Event(), 0
    await h.push(speak("what do you call a baby"))
    await h.push(silence(0.6))
    ended = len(h.of(SpeechStopped))
    await h.push(speak("cat?"))
    if h.decoder.gate is not None:
        h.decoder.gate.set()
    await h.push(silence(1.5))
    return ended


async def test_a_user_who_goes_on_before_the_reply_could_be_heard_is_not_cut_off() -> None:
    """A pause judged complete ends the turn only once its reply has something to say: before that, going on is no
    interruption of anything, and the question is answered whole."""
    answers = {"what do you call a baby cat?": "A kitten.", "what do you call a baby": "A baby."}
    async with Harness(SEMANTIC, answers) as h:
        assert await paused_mid_question(h, reply_ready=False) == 0
        [done] = await h.done()
    assert done.text == "A kitten." and len(h.of(SpeechStopped)) == len(h.of(ReplyStarted)) == 1
    assert h.history() == [("user", "what do you call a baby cat?"), ("assistant", "A kitten.")]
    async with Harness(SEMANTIC, answers) as ready:  # the control: a reply ready within the pause is committed in it
        assert await paused_mid_question(ready, reply_ready=True) == 1
        first = (await ready.done())[0]
    assert first.text == "A baby."


async def test_the_end_of_turn_waits_for_the_reply_only_as_long_as_the_long_silence() -> None:
    async with Harness(SEMANTIC) as h:
        h.decoder.gate, h.decoder.hold_after = asyncio.Event(), 0  # the reply never gets ready on its own
        await h.push(speak(QUESTION))
        await h.push(silence(1.6))
        assert len(h.of(SpeechStopped)) == 1, "committed at the long silence"
        h.decoder.gate.set()
        [done] = await h.done()
    assert done.text == "Four." and INCOMPLETE_MS - 40 <= end_of_turn_ms(h) < INCOMPLETE_MS + 100
    assert h.session.records[0].end_of_turn_complete is True


@pytest.mark.parametrize("interrupt_response", [True, False])
async def test_a_judgment_that_waited_past_its_pause_does_not_end_the_next_one(interrupt_response: bool) -> None:
    """The first turn ends at the long silence before its reply has a word; the user then says something unfinished
    over it ("and ...") and pauses; the first reply's words arriving now must not apply its "finished" to this pause."""
    config = dataclasses.replace(SEMANTIC, interrupt_response=interrupt_response)
    async with Harness(config, {QUESTION: "Four.", "and": "What?", "what is the capital of": "Hm?"}) as h:
        h.decoder.gate, h.decoder.hold_after = asyncio.Event(), 0
        await h.push(speak(QUESTION))
        await h.push(silence(1.5))
        assert len(h.of(SpeechStopped)) == 1, "committed at the long silence"
        await h.push(speak("and" if interrupt_response else "what is the capital of"))
        await h.push(silence(0.3))
        h.decoder.gate.set()  # the first reply begins to answer during the second utterance's pause
        await h.push(silence(0.3))  # past the short silence, short of the long one
        assert len(h.of(SpeechStopped)) == 1, "the unfinished second utterance was cut off"


async def test_an_early_reply_replaced_by_the_final_transcript_still_ends_at_the_short_silence() -> None:
    config = dataclasses.replace(SEMANTIC, answer_early=True, partial_interval_ms=200)
    async with Harness(config, {QUESTION: "Four.", "what is two plus three?": "Five."}) as h:
        h.decoder.gate, h.decoder.hold_after = asyncio.Event(), 0  # the early reply has no word by the pause
        await h.push(speak(QUESTION))
        assert h.session.stats["early"] == 1
        h.session.configure(dataclasses.replace(config, partial_interval_ms=60_000))
        h.asr.rewrite = lambda text: text.replace("two?", "three?")  # the final transcript differs: a new turn
        await h.push(silence(0.2))
        h.decoder.gate.set()
        await h.push(silence(0.6))
        assert len(h.of(SpeechStopped)) == 1, "ended at the short silence, not the long one"
        [done] = await h.done()
    assert done.text == "Five."


async def test_a_reply_that_fails_before_a_word_does_not_hold_the_end_of_the_turn() -> None:
    """A turn with nothing more to say (here a decoder that fails at once) ends at the short silence, the client is
    told, and the next turn works."""
    async with Harness(SEMANTIC) as h:
        h.decoder.fail_after = 0
        await h.push(speak(QUESTION))
        await h.push(silence(0.5))  # past the short silence (256 ms), well short of the long one (1400 ms)
        assert len(h.of(SpeechStopped)) == 1
        [failed] = await h.done()
        h.decoder.fail_after = None
        await h.push(speak(QUESTION))
        await h.push(silence(1.5))
        done = (await h.done(2))[1]
    assert failed.status == "failed" and done.text == "Four."


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
