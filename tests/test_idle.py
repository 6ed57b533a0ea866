"""Silence after a reply, on fakes and a virtual clock: the idle timeout prompts the user once, then the call ends."""

from __future__ import annotations

from realtime.events import IdleTimeout, ReplyDone
from realtime.session import SessionConfig
from realtime.session.idle import PROMPT
from tests.fakes import silence, speak
from tests.test_session import QUESTION, Harness


async def answered(h: Harness) -> None:
    await h.push(speak(QUESTION))
    await h.push(silence(0.6))
    await h.done()


async def test_silence_after_a_reply_prompts_the_user_once_then_ends_the_call() -> None:
    async with Harness(SessionConfig(idle_timeout_ms=2_000, idle_hangup_ms=3_000)) as h:
        await h.push(silence(3.0))
        assert h.of(IdleTimeout) == [], "no prompt before the first reply"
        await answered(h)
        await h.push(silence(1.5))
        assert h.of(IdleTimeout) == []
        await h.push(silence(1.0))
        [timeout] = h.of(IdleTimeout)
        assert 1_990 <= (timeout.end - timeout.start) / 16 <= 2_100 and timeout.item_id == h.session.user_item_id
        await h.done(2)
        assert PROMPT in h.decoder.prompts[-1], "the prompt is the model's, told why"
        await h.push(silence(2.0))  # 2.5 s after the prompt (it followed the timeout at once)
        assert not h.session.idle_watch.hung_up.is_set()
        await h.push(silence(0.6))
        assert h.session.idle_watch.hung_up.is_set() and h.session.stats["hung_up"] == 1
        await h.push(silence(5.0))
    assert len(h.of(IdleTimeout)) == 1 and len(h.of(ReplyDone)) == 2, "prompted once"


async def test_speech_starts_the_count_afresh_and_allows_a_new_prompt() -> None:
    async with Harness(SessionConfig(idle_timeout_ms=1_000)) as h:
        await answered(h)
        await h.push(silence(1.2))
        await h.done(2)
        await h.push(silence(2.0))
        assert len(h.of(IdleTimeout)) == 1
        await answered(h)
        await h.push(silence(0.6))
        assert len(h.of(IdleTimeout)) == 1, "the count starts after the reply"
        await h.push(silence(0.6))
        assert len(h.of(IdleTimeout)) == 2


async def test_off_by_default_and_hang_up_without_a_prompt() -> None:
    async with Harness() as h:
        await answered(h)
        await h.push(silence(10.0))
        assert h.of(IdleTimeout) == [] and not h.session.idle_watch.hung_up.is_set()
    async with Harness(SessionConfig(idle_hangup_ms=1_000)) as h:
        await answered(h)
        await h.push(silence(1.1))
        assert h.of(IdleTimeout) == [] and h.session.idle_watch.hung_up.is_set()
