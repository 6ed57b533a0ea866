"""Speech over a reply, on fakes and a virtual clock, with a sink that plays in (virtual) real time: the reply pauses
at the first window of speech over it; a backchannel, a noise or a click resumes it where it paused, nothing lost from
the audio or the history; real words, or long speech, interrupt it, cut to what was heard, and are answered."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pytest

from realtime.events import AudioCleared, AudioPaused, AudioResumed, ItemDeleted, ReplyDone, SpeechStarted
from realtime.policy import PolicyConfig
from realtime.session import SessionConfig
from realtime.session.output import ClientClockSink
from tests.fakes import FakeVad, Listened, RecordingSpeaker, VirtualClock, fake_models, settle, silence, speak
from tests.test_session import CHUNK, QUESTION, STORY

RATE = 24_000
WORD = 6_000
"""Samples of one word of the fake synthesiser's reply at 24 kHz (0.25 s)."""


class Overlapped(Listened):
    """A session whose reply plays in virtual real time on a :class:`RecordingSpeaker` (or the given sink)."""

    def __init__(self, config: SessionConfig | None = None, *, websocket: bool = False) -> None:
        self.models, self.asr, self.decoder, self.tts = fake_models({QUESTION: "Four.", "tell me a story.": STORY})
        self.clock = VirtualClock()
        self.delivered: list[object] = []

        async def deliver(item: object) -> None:
            self.delivered.append(item)

        heard: list[object] = []
        self.speaker = RecordingSpeaker(heard, RATE, clock=self.clock)
        sink = ClientClockSink(RATE, deliver, self.clock) if websocket else self.speaker
        super().__init__(self.models, config, sink, vad=FakeVad(), clock=self.clock)

    async def push(self, audio: np.ndarray) -> None:
        for start in range(0, len(audio), CHUNK):
            self.clock.t += CHUNK / 16_000
            await self.session.push_audio(audio[start : start + CHUNK])
            await settle(steps=20)

    async def story_playing(self, words: int = 20) -> float:
        """Ask for the story; it plays, ``words`` words written (the rest wait for ``decoder.gate``). Returns when its
        audio began (on the virtual clock)."""
        self.decoder.gate, self.decoder.hold_after = asyncio.Event(), words
        await self.push(speak("tell me a story."))
        await self.push(silence(0.6))
        await settle(lambda: self.session.output.audio == 0 and bool(self.speaker.heard))
        await self.push(silence(0.5))  # half a second of the reply heard
        return self.speaker._started + self.speaker._chunks[0][0] / RATE  # noqa: SLF001

    def of(self, kind: type) -> list:
        return [item for item in self.items if isinstance(item, kind)]

    def history(self) -> list[tuple[str, str]]:
        return [(m.role, m.text) for m in self.session.conversation.messages]

    def reply_audio(self, generation: int) -> int:
        """Samples of reply ``generation`` on the speaker's timeline (played, or still to play)."""
        return sum(len(s) for _, g, s in self.speaker._chunks if g == generation)  # noqa: SLF001

    def loud_between(self, start: float, end: float) -> bool:
        """Reply audio on the timeline between two clock times."""
        timeline = self.speaker.timeline()
        first, last = (int((t - self.speaker._started) * RATE) for t in (start, end))  # noqa: SLF001
        return bool(np.abs(timeline[first:last]).max(initial=0.0) > 0)

    async def finish(self) -> ReplyDone:
        assert self.decoder.gate is not None
        self.decoder.gate.set()
        for _ in range(200):  # the rest of the reply plays out on the virtual clock
            await self.push(silence(0.1))
            if self.of(ReplyDone) and not self.session.playing:
                break
        return self.of(ReplyDone)[0]


async def a_backchannel_resumes(word: str, asr_hears: str) -> Overlapped:
    async with Overlapped() as h:
        await h.story_playing()
        h.asr.rewrite = lambda text: text.replace(word, asr_hears)
        onset = h.clock.t
        await h.push(speak(word))
        paused = h.of(AudioPaused)
        assert len(paused) == 1 and paused[0].audio_end_ms > 0, "paused with what had been heard"
        assert not h.loud_between(onset + 0.04, h.clock.t), "silent from one VAD window after the onset"
        await h.push(silence(0.3))  # the first pause: the words are judged
        assert len(h.of(AudioResumed)) == 1 and h.of(AudioCleared) == []
        done = await h.finish()
    assert done.status == "completed" and done.text == STORY
    assert h.history() == [("user", "tell me a story."), ("assistant", STORY)], "nothing lost from the history"
    assert h.reply_audio(done.generation) == len(STORY.split()) * WORD, "nothing lost from the audio"
    assert h.of(ReplyDone) == [done], "the backchannel is not answered"
    return h


async def test_a_backchannel_pauses_the_reply_which_resumes_with_nothing_lost() -> None:
    h = await a_backchannel_resumes("mm-hmm", "mm-hmm")
    assert h.session.stats["backchannels"] == 1 and h.session.stats["interrupted"] == 0
    assert len(h.of(ItemDeleted)) == 1, "the backchannel leaves no message"


async def test_a_cough_with_no_words_resumes_the_reply() -> None:
    await a_backchannel_resumes("cough", "")


async def test_a_click_too_short_for_speech_resumes_at_once() -> None:
    async with Overlapped() as h:
        await h.story_playing()
        await h.push(np.full(CHUNK * 2, 0.3, np.float32))
        await h.push(silence(0.2))
        assert len(h.of(AudioPaused)) == len(h.of(AudioResumed)) == 1 and h.of(SpeechStarted)[-1:] != []
        done = await h.finish()
    assert done.status == "completed" and h.reply_audio(done.generation) == len(STORY.split()) * WORD


async def interrupted(config: SessionConfig, words: str, *, by_length: bool) -> Overlapped:
    async with Overlapped(config) as h:
        await h.story_playing()
        onset = h.clock.t
        await h.push(speak(words))
        assert not h.loud_between(onset + 0.04, h.clock.t), "paused from the first window"
        assert bool(h.of(AudioCleared)) is by_length, "long speech is confirmed while it goes on, words at a pause"
        await h.push(silence(1.0))
        await settle(lambda: len(h.of(ReplyDone)) == 2)
        h.decoder.gate.set()
    first, second = h.of(ReplyDone)
    paused = h.of(AudioPaused)[0]
    assert first.status == "interrupted" and h.of(AudioCleared) and h.of(AudioResumed) == []
    heard = first.text.split()
    assert heard == STORY.split()[: len(heard)] and len(heard) == paused.audio_end_ms * RATE // 1000 // WORD, (
        "cut to what was heard before the pause"
    )
    assert h.reply_audio(first.generation) == paused.audio_end_ms * RATE // 1000, "no audio after the pause"
    assert second.text == "Four." and h.history()[2:] == [("user", QUESTION), ("assistant", "Four.")]
    return h


async def test_real_words_over_a_reply_interrupt_it_and_are_answered() -> None:
    config = SessionConfig(policy=PolicyConfig(min_interruption_ms=5_000))  # judged by its words only
    await interrupted(config, QUESTION, by_length=False)


async def test_long_speech_over_a_reply_interrupts_it_before_its_words_are_known() -> None:
    await interrupted(SessionConfig(), QUESTION, by_length=True)  # 1.7 s of speech: confirmed at 1 s


async def test_a_backchannel_drawn_out_past_min_interruption_ms_does_not_interrupt() -> None:
    async with Overlapped() as h:
        await h.story_playing()
        hum = speak(" ".join(["mm-hmm"] * 8))
        assert len(hum) > 16_000 * PolicyConfig().min_interruption_ms / 1000, "longer than the limit"
        await h.push(hum)
        assert h.asr.calls >= 1 and h.of(AudioCleared) == [], "its words so far were checked: a hum"
        await h.push(silence(0.3))
        assert len(h.of(AudioResumed)) == 1
        done = await h.finish()
    assert done.status == "completed" and h.reply_audio(done.generation) == len(STORY.split()) * WORD


async def test_a_backchannel_then_more_words_pauses_again_and_interrupts() -> None:
    async with Overlapped(SessionConfig(policy=PolicyConfig(min_interruption_ms=5_000))) as h:
        await h.story_playing()
        await h.push(speak("yeah"))
        await h.push(silence(0.25))  # judged a backchannel: the reply resumes ...
        assert len(h.of(AudioResumed)) == 1
        await h.push(speak(QUESTION))  # ... and the user goes on: paused again, then interrupted
        await h.push(silence(1.0))
        await settle(lambda: len(h.of(ReplyDone)) == 2)
        h.decoder.gate.set()
    assert len(h.of(AudioPaused)) == 2 and [d.status for d in h.of(ReplyDone)] == ["interrupted", "completed"]


async def test_a_websocket_client_keeps_its_audio_and_a_backchannel_does_not_interrupt() -> None:
    async with Overlapped(websocket=True) as h:
        h.decoder.gate, h.decoder.hold_after = asyncio.Event(), 20
        await h.push(speak("tell me a story."))
        await h.push(silence(1.0))
        await h.push(speak("mm-hmm"))
        await h.push(silence(0.8))
        h.decoder.gate.set()
        await settle(lambda: bool(h.of(ReplyDone)))
    assert h.of(AudioPaused) == [] and h.of(ReplyDone)[0].status == "completed"
    assert h.session.stats["backchannels"] == 1


async def test_off_speech_over_a_reply_interrupts_it_without_a_pause() -> None:
    async with Overlapped(SessionConfig(policy=PolicyConfig(min_interruption_ms=None))) as h:
        await h.story_playing()
        await h.push(speak("mm-hmm"))
        await settle(lambda: bool(h.of(ReplyDone)))
    assert h.of(AudioPaused) == [] and h.of(ReplyDone)[0].status == "interrupted"


async def test_turning_interruptions_off_during_a_pause_resumes_the_reply() -> None:
    async with Overlapped() as h:
        await h.story_playing()
        await h.push(speak("yeah"))
        assert len(h.of(AudioPaused)) == 1 and h.of(AudioResumed) == []
        h.session.configure(dataclasses.replace(h.session.config, interrupt_response=False))
        await settle(lambda: bool(h.of(AudioResumed)))
        done = await h.finish()
    assert done.status == "completed" and h.reply_audio(done.generation) == len(STORY.split()) * WORD


async def test_a_greeting_that_is_not_interruptible_plays_whole_and_speech_over_it_is_answered_after() -> None:
    async with Overlapped() as h:
        await h.session.say(STORY, interruptible=False)  # the agent speaks first
        await settle(lambda: bool(h.speaker.heard))
        await h.push(silence(0.5))
        await h.push(speak(QUESTION))  # the caller talks over the greeting
        await h.push(silence(1.0))
        assert h.of(AudioPaused) == [] and h.of(AudioCleared) == [], "the greeting neither paused nor stopped"
        for _ in range(200):
            await h.push(silence(0.1))
            if len(h.of(ReplyDone)) == 2 and not h.session.playing:
                break
    greeting, answer = h.of(ReplyDone)
    assert greeting.status == "completed" and h.reply_audio(greeting.generation) == len(STORY.split()) * WORD
    assert answer.status == "completed" and answer.text == "Four."
    assert h.history() == [("assistant", STORY), ("user", QUESTION), ("assistant", "Four.")]


async def test_speech_over_a_reply_written_whole_but_still_playing_cuts_it_and_is_answered() -> None:
    # The turn begins at the end of the user's turn (no speculation) and is committed before its words are judged (no
    # judgment by length either): the interruption must stop the reply it was spoken over, not the new turn itself.
    async with Overlapped(SessionConfig(speculate=False, policy=PolicyConfig(min_interruption_ms=5_000))) as h:
        await h.story_playing()
        h.decoder.gate.set()  # the whole story is written; it goes on playing
        await settle(lambda: bool(h.of(ReplyDone)))
        await h.push(speak(QUESTION))
        await h.push(silence(1.0))
        await settle(lambda: len(h.of(ReplyDone)) == 2)
    story, answer = h.of(ReplyDone)
    assert story.status == "completed" and answer.status == "completed" and answer.text == "Four."
    heard = h.history()[1][1].split()
    assert len(heard) < len(STORY.split()) and heard == STORY.split()[: len(heard)], "the story cut to what was heard"
    assert h.history()[2:] == [("user", QUESTION), ("assistant", "Four.")]


@pytest.mark.parametrize("min_speech_ms", [500, 0])
async def test_a_short_sound_heard_as_two_words_interrupts_only_when_long_enough(min_speech_ms: int) -> None:
    # Whisper hears a short synthetic "uh-huh" as "Emma. Emma.": two words, but 0.34 s of speech.
    policy = PolicyConfig(min_interruption_ms=5_000, min_interruption_speech_ms=min_speech_ms)
    async with Overlapped(SessionConfig(policy=policy)) as h:
        await h.story_playing()
        h.asr.rewrite = lambda text: text.replace("uhhuh", "emma emma")
        await h.push(speak("uhhuh"))
        await h.push(silence(0.4))
        await settle(lambda: bool(h.of(AudioResumed) or h.of(AudioCleared)))
        assert bool(h.of(AudioCleared)) is (min_speech_ms == 0), "long enough (0 ms) it interrupts; 0.34 s does not"
        h.decoder.gate.set()
        for _ in range(100):
            await h.push(silence(0.1))
            if len(h.of(ReplyDone)) == 2:
                break
    story = h.of(ReplyDone)[0]
    assert story.status == ("interrupted" if min_speech_ms == 0 else "completed")
    assert h.history()[2][0] == "user" and "emma" in h.history()[2][1], "the words are not lost either way"


async def test_fewer_words_than_interrupt_resume_the_reply_and_are_answered_after_it() -> None:
    # "What is the capital of ... Germany?": the reply to the first half began; the last word, over it, is too little
    # to interrupt (min_interruption_words 2) but is not lost.
    async with Overlapped(SessionConfig(policy=PolicyConfig(min_interruption_ms=5_000))) as h:
        await h.story_playing()
        await h.push(speak("germany"))
        await h.push(silence(0.4))
        assert len(h.of(AudioResumed)) == 1 and h.of(AudioCleared) == [], "the reply plays on"
        story = await h.finish()
        for _ in range(100):
            await h.push(silence(0.1))
            if len(h.of(ReplyDone)) == 2:
                break
    assert story.status == "completed" and h.reply_audio(story.generation) == len(STORY.split()) * WORD
    assert [role for role, _ in h.history()] == ["user", "assistant", "user", "assistant"]
    assert h.history()[2] == ("user", "germany") and h.of(ReplyDone)[1].status == "completed"
