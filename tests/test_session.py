"""The session's races on fakes and a virtual clock (no models, no real time): speculation, barge-in, cancel, truncate,
early answers, failures, and replies asked for while another is under way."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pytest

from realtime.conversation import Message
from realtime.events import (
    AudioCleared,
    AudioOut,
    ErrorEvent,
    ItemDeleted,
    ReplyDone,
    ReplyStarted,
    ReplyTruncated,
)
from realtime.policy import PolicyConfig
from realtime.session import SessionConfig
from tests.fakes import FakeSink, FakeVad, Listened, VirtualClock, fake_models, settle, silence, speak

CHUNK = 320  # 20 ms at 16 kHz

QUESTION = "what is two plus two?"
IMMEDIATE = PolicyConfig(min_interruption_ms=None)
"""Speech over a reply interrupts it at once, without a pause first (the fake sink here does not play in time: the
pauses are tested in ``test_overlaps`` on a sink that does)."""
STORY = " ".join(f"word{i}" for i in range(40)) + "."


class Harness(Listened):
    """A session on fakes and a virtual clock, its output collected as the router delivers it."""

    def __init__(self, config: SessionConfig | None = None, answers: dict[str, str] | None = None) -> None:
        self.models, self.asr, self.decoder, self.tts = fake_models(answers or {QUESTION: "Four.", "tell me a story.": STORY})
        self.sink = FakeSink()
        self.clock = VirtualClock()
        super().__init__(self.models, config or SessionConfig(policy=IMMEDIATE), self.sink, vad=FakeVad(), clock=self.clock)

    async def push(self, audio: np.ndarray) -> None:
        """Push ``audio`` in 20 ms chunks, the clock advancing with it, letting the session's tasks run."""
        for start in range(0, len(audio), CHUNK):
            self.clock.t += CHUNK / 16_000
            await self.session.push_audio(audio[start : start + CHUNK])
            await settle(steps=20)

    async def story_in_progress(self, words: int) -> None:
        """Ask for a story by voice; the reply is committed and has spoken ``words`` words, the rest held back until
        ``decoder.gate`` is set."""
        self.decoder.gate, self.decoder.hold_after = asyncio.Event(), words
        await self.push(speak("tell me a story."))
        await self.push(silence(0.6))
        await settle(lambda: len(self.sink.items) >= words)

    def of(self, kind: type) -> list:
        return [item for item in self.items if isinstance(item, kind)]

    def history(self) -> list[tuple[str, str]]:
        return [(m.role, m.text) for m in self.session.conversation.messages]

    async def done(self, count: int = 1) -> list[ReplyDone]:
        await settle(lambda: len(self.of(ReplyDone)) >= count)
        return self.of(ReplyDone)


async def test_a_spoken_question_gets_a_spoken_answer() -> None:
    async with Harness() as h:
        await h.push(silence(0.3))
        await h.push(speak(QUESTION))
        await h.push(silence(1.0))
        [done] = await h.done()
    assert done.status == "completed" and done.text == "Four."
    assert h.history() == [("user", QUESTION), ("assistant", "Four.")]
    assert h.sink.items and all(item.generation == done.generation for item in h.sink.items)
    assert h.session.records[0].stamps["first_audio_out"] >= h.session.records[0].stamps["speech_end"]


async def test_a_speculation_is_discarded_without_a_sound_when_the_user_goes_on() -> None:
    config = SessionConfig(policy=PolicyConfig(end_of_turn_silence_ms=800))
    async with Harness(config, answers={"what is the capital of germany?": "Berlin."}) as h:
        await h.push(speak("what is the capital of"))
        await h.push(silence(0.35))  # past the speculation pause, short of the end of turn
        assert h.session.stats["speculations"] == 1
        await h.push(speak("germany?"))
        await h.push(silence(1.2))
        [done] = await h.done()
    assert h.session.stats["discarded"] >= 1
    assert done.text == "Berlin."
    assert {item.generation for item in h.sink.items} == {done.generation}, "no audio of the discarded speculation"
    assert len(h.of(ReplyStarted)) == 1


async def test_barge_in_cuts_the_history_to_what_the_sink_played() -> None:
    async with Harness() as h:
        await h.story_in_progress(20)  # still writing when the user speaks over it
        h.sink.played_share = 0.25
        await h.push(speak("wait wait"))
        [done] = await h.done()
        produced = len(h.sink.items)
    assert done.status == "interrupted"
    assert h.of(AudioCleared) and h.sink.clears == 1
    heard = dict(h.history())["assistant"].split()
    assert heard == STORY.split()[: len(heard)]
    assert 0 < len(heard) <= produced * 0.25 + 1, "the history keeps what the sink played, not what was produced"
    assert h.session.stats["interrupted"] == 1


async def test_barge_in_after_the_reply_was_written_truncates_it_while_it_plays() -> None:
    async with Harness() as h:
        await h.push(speak("tell me a story."))
        await h.push(silence(0.6))
        await h.done()
        h.sink.playing, h.sink.played_share = True, 0.5
        await h.push(speak("stop"))
        await settle(lambda: bool(h.of(ReplyTruncated)))
    [truncated] = h.of(ReplyTruncated)
    assert truncated.text.split() == STORY.split()[:20]
    assert dict(h.history())["assistant"] == truncated.text


async def test_cancel_stops_the_reply_and_cancel_with_none_is_an_error() -> None:
    async with Harness(SessionConfig(turn_detection=False)) as h:
        await h.session.cancel_response("evt_1")
        h.decoder.gate = asyncio.Event()
        h.session.history.add(Message("user", "tell me a story."))
        await h.session.create_response()
        await settle(lambda: bool(h.of(ReplyStarted)))
        await h.session.cancel_response()
        [done] = await h.done()
    assert [e.code for e in h.of(ErrorEvent)] == ["response_cancel_not_active"]
    assert done.status == "cancelled" and h.session.stats["cancelled"] == 1


async def test_a_client_truncate_overrides_the_sink_estimate() -> None:
    async with Harness() as h:
        await h.push(speak("tell me a story."))
        await h.push(silence(0.6))
        [done] = await h.done()
        h.sink.playing = True
        await h.session.turns.truncate(done.item_id, audio_end_ms=1000)  # 1 s: four 0.25 s words
        await h.session.turns.truncate("item_nope", audio_end_ms=10, event_id="evt_2")
        await settle(lambda: bool(h.of(ReplyTruncated)))
    assert h.of(ReplyTruncated)[0].text.split() == STORY.split()[:4]
    assert [(e.code, e.event_id) for e in h.of(ErrorEvent)] == [("item_not_found", "evt_2")]


async def test_an_early_answer_is_confirmed_by_the_final_transcript() -> None:
    config = SessionConfig(answer_early=True, partial_interval_ms=200)
    async with Harness(config) as h:
        await h.push(speak(QUESTION))
        await h.push(silence(1.0))
        [done] = await h.done()
    assert h.session.stats["early"] == 1 and h.session.stats["early_confirmed"] == 1
    assert done.text == "Four." and done.status == "completed"


async def test_an_early_answer_is_replaced_when_the_final_transcript_differs() -> None:
    config = SessionConfig(answer_early=True, partial_interval_ms=200)
    async with Harness(config, answers={QUESTION: "Four.", "what is two plus three?": "Five."}) as h:
        await h.push(speak(QUESTION))
        assert h.session.stats["early"] == 1
        early = h.session.live_turn
        h.session.configure(dataclasses.replace(config, partial_interval_ms=60_000))  # no partial before the pause
        h.asr.rewrite = lambda text: text.replace("two?", "three?")  # the final transcript hears otherwise
        await h.push(silence(1.0))
        [done] = await h.done()
    assert h.session.stats["early_confirmed"] == 0 and h.session.stats["discarded"] == 1
    assert early is not None and early.outcome is not None and early.outcome.value == "discarded"
    assert done.text == "Five." and h.history() == [("user", "what is two plus three?"), ("assistant", "Five.")]
    assert {item.generation for item in h.sink.items} == {done.generation}


async def test_a_failing_recogniser_fails_the_turn_and_the_session_goes_on() -> None:
    async with Harness(SessionConfig(speculate=False)) as h:
        h.asr.fail = RuntimeError("the recogniser broke")
        await h.push(speak(QUESTION))
        await h.push(silence(0.8))
        await settle(lambda: bool(h.of(ErrorEvent)))
        assert [e.code for e in h.of(ErrorEvent)] == ["reply_failed"] and h.session.stats["failed"] == 1
        [failed] = await h.done()  # the reply the client was owed begins and fails
        assert failed.status == "failed" and failed.text == "" and h.of(ItemDeleted)  # the unheard message goes
        h.asr.fail = None
        await h.push(speak(QUESTION))
        await h.push(silence(0.8))
        done = (await h.done(2))[1]
    assert done.text == "Four." and h.history() == [("user", QUESTION), ("assistant", "Four.")]


async def test_a_failing_decoder_keeps_what_was_said_and_the_session_goes_on() -> None:
    async with Harness() as h:
        h.decoder.fail_after = 5
        await h.push(speak("tell me a story."))
        await h.push(silence(0.8))
        [failed] = await h.done()
        h.decoder.fail_after = None
        await h.push(speak(QUESTION))
        await h.push(silence(0.8))
        done = (await h.done(2))[1]
    assert failed.status == "failed" and "reply_failed" in [e.code for e in h.of(ErrorEvent)]
    assert done.status == "completed" and done.text == "Four."


async def test_say_during_a_reply_waits_for_it() -> None:
    async with Harness(SessionConfig(turn_detection=False)) as h:
        h.decoder.gate = asyncio.Event()
        h.session.history.add(Message("user", "tell me a story."))
        await h.session.create_response()
        await settle(lambda: bool(h.of(ReplyStarted)))
        await h.session.say("Hello there.")
        await settle(steps=200)
        assert len(h.of(ReplyStarted)) == 1, "the scripted reply waits for the one in progress"
        h.decoder.gate.set()
        first, second = await h.done(2)
    assert (first.status, second.status) == ("completed", "completed") and second.text == "Hello there."
    audio = [item.generation for item in h.items if isinstance(item, AudioOut)] or [i.generation for i in h.sink.items]
    assert audio == sorted(audio), "the two replies' audio never interleaves"


async def test_two_replies_asked_for_at_once() -> None:
    async with Harness(SessionConfig(turn_detection=False)) as h:
        h.decoder.gate = asyncio.Event()
        h.session.history.add(Message("user", QUESTION))
        await asyncio.gather(h.session.create_response(event_id="evt_a"), h.session.create_response(event_id="evt_b"))
        h.decoder.gate.set()
        await h.done()
        await settle(steps=200)
    assert len(h.of(ReplyDone)) == 1
    assert [(e.code, e.event_id) for e in h.of(ErrorEvent)] == [("conversation_already_has_active_response", "evt_b")]


async def test_a_reply_asked_for_after_a_commit_waits_for_the_transcript() -> None:
    async with Harness(SessionConfig(turn_detection=False)) as h:
        await h.push(speak(QUESTION))
        await h.session.commit_input()
        await h.session.create_response()
        [done] = await h.done()
    assert h.history() == [("user", QUESTION), ("assistant", "Four.")]
    assert done.text == "Four."


async def test_noise_leaves_no_reply_and_no_message() -> None:
    async with Harness() as h:
        h.asr.rewrite = lambda text: ""
        await h.push(speak("cough"))
        await h.push(silence(0.8))
        await settle(lambda: bool(h.of(ItemDeleted)))
    assert h.of(ReplyDone) == [] and h.history() == [] and h.session.stats["no_speech"] == 1


async def test_closing_stops_a_reply_in_flight_and_refuses_audio() -> None:
    from realtime.errors import SessionClosedError

    async with Harness() as h:
        h.decoder.gate = asyncio.Event()
        await h.push(speak(QUESTION))
        await h.push(silence(0.6))
        turn = h.session.live_turn
        assert turn is not None and turn.live
        await h.session.close()
        assert not turn.live and turn.outcome is not None and turn.outcome.value == "interrupted"
        with pytest.raises(SessionClosedError):
            await h.session.push_audio(silence(0.02))


async def test_settings_changed_elsewhere_are_announced() -> None:
    async with Harness() as h:
        h.session.configure(dataclasses.replace(h.session.config, instructions="Be brief."), announce=True)
        await settle(lambda: len(h.items) > 0)
    assert type(h.items[-1]).__name__ == "SettingsChanged" and h.session.conversation.instructions == "Be brief."



async def test_speech_over_an_uninterruptible_reply_is_answered_after_it() -> None:
    async with Harness(SessionConfig(interrupt_response=False)) as h:
        await h.story_in_progress(10)
        await h.push(speak(QUESTION))
        await h.push(silence(0.6))
        assert h.of(ReplyDone) == [] and len(h.of(ReplyStarted)) == 1, "the second reply waits for the first"
        h.decoder.gate.set()
        first, second = await h.done(2)
    assert (first.status, first.text, second.text) == ("completed", STORY, "Four.")
    assert [role for role, _ in h.history()] == ["user", "assistant", "user", "assistant"]


async def test_barge_in_stops_a_reply_and_the_one_waiting_for_it() -> None:
    async with Harness(SessionConfig(policy=IMMEDIATE)) as h:
        await h.story_in_progress(10)
        await h.session.say("And that is all.")
        said = h.session.live_turn
        await h.push(speak("stop"))
        [done] = await h.done()
    assert done.status == "interrupted" and said is not None and said.outcome is not None
    assert said.outcome.value == "interrupted" and "And that is all." not in h.tts.spoken
    assert h.session.live_turn is None


async def test_a_partial_and_its_prefill_end_before_the_next_partial_begins() -> None:
    async with Harness() as h:
        await settle(steps=50)  # the history's own prefill at the start (prefills run one at a time)
        h.decoder.prefill_gate = asyncio.Event()
        await h.push(speak("one two three four five six seven eight nine ten"))
        assert h.decoder.prefilled[-1].endswith("user\none"), "the stable words were handed to the decoder"
        blocked = h.asr.calls
        await h.push(speak("eleven twelve thirteen"))
        assert h.asr.calls == blocked, "no partial while the last one's prefill is running"
        h.decoder.prefill_gate.set()
        await h.push(speak("fourteen fifteen"))
        assert h.asr.calls > blocked


async def test_a_commit_during_a_reply_leaves_the_reply_tracked_and_cancellable() -> None:
    async with Harness(SessionConfig(turn_detection=False)) as h:
        h.decoder.gate, h.decoder.hold_after = asyncio.Event(), 10
        h.session.history.add(Message("user", "tell me a story."))
        await h.session.create_response()
        await settle(lambda: len(h.sink.items) >= 10)
        await h.push(speak(QUESTION))
        await h.session.commit_input()  # transcribed while the reply goes on
        await settle(lambda: ("user", QUESTION) in h.history())
        await h.session.cancel_response("evt_c")
        [done] = await h.done()
    assert done.status == "cancelled" and not h.of(ErrorEvent)
    assert [role for role, _ in h.history()] == ["user", "user", "assistant"]


async def test_an_interrupted_chain_enters_the_history_in_the_order_it_was_said() -> None:
    async with Harness(SessionConfig(interrupt_response=False)) as h:
        await h.story_in_progress(10)
        await h.push(speak(QUESTION))
        await h.push(silence(0.6))
        await h.session.cancel_response()
        await h.done()
    history = h.history()
    assert [role for role, _ in history] == ["user", "assistant", "user"]
    assert (history[0][1], history[2][1]) == ("tell me a story.", QUESTION)
    assert STORY.startswith(history[1][1])


async def test_a_new_output_rate_applies_to_the_next_reply() -> None:
    async with Harness(SessionConfig(turn_detection=False)) as h:
        h.session.configure(dataclasses.replace(h.session.config, output_rate=8_000))
        h.session.history.add(Message("user", QUESTION))
        await h.session.create_response()
        await h.done()
    assert sum(len(item.samples) for item in h.sink.items) == 8_000 // 4, "one word of 0.25 s at 8 kHz"


async def test_a_failing_verification_drops_the_early_reply_and_the_session_goes_on() -> None:
    config = SessionConfig(answer_early=True, partial_interval_ms=200)
    async with Harness(config) as h:
        await h.push(speak(QUESTION))
        assert h.session.stats["early"] == 1
        h.session.configure(dataclasses.replace(config, partial_interval_ms=60_000))
        h.asr.fail = RuntimeError("the recogniser broke")
        await h.push(silence(1.0))
        assert "reply_failed" in [e.code for e in h.of(ErrorEvent)] and h.session.live_turn is None
        h.asr.fail = None
        await h.push(speak(QUESTION))
        await h.push(silence(1.0))
        *failed, done = await h.done(2)
    assert [f.status for f in failed] == ["failed"] and done.text == "Four."  # the end of the turn failed to hear it too
