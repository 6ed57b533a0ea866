"""Fair scheduling between sessions: a playing reply holds back its next clause while another session's turn waits for
its first audio, and only while it has more than LEAD_S of audio ahead of its playback; a session's prefills hold while
another session's turn waits (fakes, virtual clock)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncGenerator

import numpy as np

from realtime.conversation import Message
from realtime.events import AudioOut, ReplyDone
from realtime.priority import LEAD_S, USER_SPEECH, FirstAudioFirst
from realtime.session import SessionConfig
from tests.fakes import FakeSink, FakeTts, FakeVad, Listened, VirtualClock, fake_models, settle, speak

STORY = " ".join(f"Sentence {i} of a long story." for i in range(30))


async def test_a_lane_gives_way_only_to_other_sessions_and_only_with_a_lead() -> None:
    priority = FirstAudioFirst()
    mine, other = priority.lane(), priority.lane()
    lead = [10.0]
    mine.waiting("my-next-turn")
    await asyncio.wait_for(mine.give_way(lambda: lead[0]), 1)  # its own session's turn waits for it anyway
    other.waiting("their-turn")
    giving = asyncio.ensure_future(mine.give_way(lambda: lead[0]))
    await asyncio.sleep(0.12)
    assert not giving.done()
    lead[0] = LEAD_S  # played down to the lead: on it goes
    await asyncio.wait_for(giving, 1)
    lead[0] = 10.0
    giving = asyncio.ensure_future(mine.give_way(lambda: lead[0]))
    await asyncio.sleep(0.12)
    other.started("their-turn")
    await asyncio.wait_for(giving, 1)
    other.started("their-turn")  # told twice (first audio, then the turn's end): counted once
    mine.waiting("mine-again")
    mine.waiting("mine-again")  # told twice: counted once
    assert not mine.gives_way(10.0) and other.gives_way(10.0), "nothing of the other session waits; mine do"


def test_background_work_waits_for_other_sessions_turns_only() -> None:
    priority = FirstAudioFirst()
    mine, other = priority.lane(), priority.lane()
    assert not mine.background_waits(), "nothing waits"
    other.waiting(USER_SPEECH)
    assert mine.background_waits() and not other.background_waits(), "the speaker's partial words go first"
    other.started(USER_SPEECH)
    other.waiting("their-turn")
    assert mine.background_waits() and not other.background_waits()
    mine.waiting(USER_SPEECH)
    assert not mine.background_waits(), "my own turn may need my prefill: it never waits for theirs"
    mine.started(USER_SPEECH)
    mine.started(USER_SPEECH)  # told twice: counted once
    assert mine.background_waits()
    other.close()
    assert not mine.background_waits(), "a closed session waits for nothing"


async def test_a_sessions_prefills_hold_while_another_sessions_turn_waits_for_its_first_audio() -> None:
    models, _, decoder, _ = fake_models({"hello.": "Hi there, nice to meet you."})
    models.tts = tts = FirstClauseGate()
    config = SessionConfig(turn_detection=False)
    clock = VirtualClock()
    async with Listened(models, config, FakeSink(), clock=clock), Listened(models, config, FakeSink(), clock=clock) as asking:
        await settle(lambda: len(decoder.prefill_holds) >= 2)
        others_prefill = decoder.prefill_holds[0]
        assert not others_prefill(), "nothing waits yet"
        asking.session.history.add(Message("user", "hello."))
        await settle(lambda: len(decoder.prefill_holds) >= 3)
        own_prefill = decoder.prefill_holds[-1]
        await asking.session.create_response()
        await settle(lambda: len(tts.spoken) > 0 or bool(decoder.held))
        assert others_prefill(), "the other session's prefill computes nothing while this turn waits for its first audio"
        assert not own_prefill(), "the asking session's own prefill goes on: its reply needs it"
        tts.gate.set()
        await settle(lambda: any(isinstance(i, AudioOut) for i in asking.items))
        assert not others_prefill(), "the first audio is out: the other session's prefill goes on"


def spoken_s(sink: FakeSink) -> float:
    return sum(len(item.samples) for item in sink.items if isinstance(item, AudioOut)) / sink.rate


async def test_a_long_reply_holds_its_synthesis_while_another_session_waits_for_its_first_audio() -> None:
    models, _, _, _ = fake_models({"tell me a story.": STORY})
    clock = VirtualClock()
    sink = FakeSink()
    config = SessionConfig(turn_detection=False)
    async with Listened(models, config, sink, clock=clock) as teller, Listened(models, config, FakeSink(), clock=clock) as other:
        waiting = other.session.lane
        waiting.waiting("their-turn")
        teller.session.history.add(Message("user", "tell me a story."))
        await teller.session.create_response()
        await settle(lambda: spoken_s(sink) > LEAD_S)
        await asyncio.sleep(0.2)  # real time for the reply to give way in
        held = spoken_s(sink)
        clause = max(len(text.split()) for text in models.tts.spoken) * FakeTts.word_samples / sink.rate  # type: ignore[attr-defined]
        assert LEAD_S < held <= LEAD_S + clause, "synthesis stops a clause past the lead while the other session waits"
        clock.t += 2.0  # two seconds played: it synthesises down to the lead again, no further
        await asyncio.sleep(0.2)
        assert held < spoken_s(sink) <= held + 2.0 + clause
        assert not [i for i in teller.items if isinstance(i, ReplyDone)]
        waiting.started("their-turn")  # the other session's first audio went out: the story goes on at full speed
        await settle(lambda: any(isinstance(i, ReplyDone) for i in teller.items))
        assert spoken_s(sink) > 10 * LEAD_S


async def test_a_reply_that_gives_way_holds_its_decoder() -> None:
    models, _, decoder, _ = fake_models({"tell me a story.": STORY})
    clock = VirtualClock()
    async with Listened(models, SessionConfig(turn_detection=False), FakeSink(), clock=clock) as teller:
        models.priority.lane().waiting("another session's turn")
        teller.session.history.add(Message("user", "tell me a story."))
        await teller.session.create_response()
        await settle(lambda: sum(decoder.held) >= 3)
        assert not decoder.held[0], "no audio yet: nothing to give way with"
        assert decoder.held[-1], "more than LEAD_S ahead while another session waits: the next words wait too"


async def test_another_sessions_speech_makes_a_long_reply_give_way() -> None:
    models, _, _, _ = fake_models()
    async with Listened(models, SessionConfig(), FakeSink(), vad=FakeVad(), clock=VirtualClock()) as other:
        lane = models.priority.lane()
        assert not lane.gives_way(LEAD_S + 1)
        await other.session.push_audio(speak("tell me a story."))
        await settle(steps=50)
        assert lane.gives_way(LEAD_S + 1) and not lane.gives_way(LEAD_S)
        await other.session.close()
        assert not lane.gives_way(LEAD_S + 1), "a closed session waits for nothing"


async def test_a_speaker_whose_turn_detection_is_turned_off_holds_no_one() -> None:
    models, _, _, _ = fake_models()
    async with Listened(models, SessionConfig(), FakeSink(), vad=FakeVad(), clock=VirtualClock()) as speaker:
        lane = models.priority.lane()
        await speaker.session.push_audio(speak("tell me a story."))
        await settle(steps=50)
        assert lane.background_waits()
        speaker.session.configure(dataclasses.replace(speaker.session.config, turn_detection=False))
        assert not lane.background_waits(), "nothing will end that speech now: nobody waits for it"


class FirstClauseGate(FakeTts):
    """A synthesiser whose first audio waits for :attr:`gate`."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def stream(self, text: str, *, trim_lead: bool = True) -> AsyncGenerator[np.ndarray, None]:
        await self.gate.wait()
        async for chunk in super().stream(text, trim_lead=trim_lead):
            yield chunk


async def test_the_decoder_holds_while_the_first_clause_is_synthesised() -> None:
    models, _, decoder, _ = fake_models({"tell me a story.": "Once upon a time, there was a dragon who loved to sing songs."})
    models.tts = tts = FirstClauseGate()
    async with Listened(models, SessionConfig(turn_detection=False), FakeSink(), clock=VirtualClock()) as h:
        h.session.history.add(Message("user", "tell me a story."))
        await h.session.create_response()
        await settle(lambda: len(decoder.held) >= 8)
        # "Once upon a time," is cut when " there" arrives: from then on the next words wait for the clause's audio.
        assert decoder.held[:5] == [False] * 5 and all(decoder.held[5:])
        tts.gate.set()
        await settle(lambda: any(isinstance(i, ReplyDone) for i in h.items))
        assert not decoder.held[-1], "once the first audio is out, the reply is written on"
