"""Early answers (``SessionConfig.answer_early``) on the real models: a reply started on a partial transcript is
confirmed by the final transcript of the whole utterance."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from realtime.events import ItemDeleted, ReplyDone, UserTranscriptFinal
from realtime.session import SessionConfig
from tests.conftest import silence
from tests.fakes import Listened

pytestmark = pytest.mark.slow


async def test_an_early_reply_begun_during_the_pause_is_verified_on_the_whole_utterance(models, say) -> None:
    """The end of the turn can reach an early reply before its verification started (the partial that began it
    arrived during the pause): the verification must hear the utterance before it becomes a message. It used to
    hear nothing, replace the reply with one to an empty transcript and drop that as noise: no reply at all."""
    question = np.concatenate([silence(0.4), say("What is the capital of Japan?", "flite:slt")])
    heard = (await models.asr.transcribe_async(question)).text
    # No speculation and no partials of its own: the early turn is begun here, as a partial would begin it.
    listened = Listened(models, SessionConfig(answer_early=True, speculate=False, listen_while_thinking=False))
    session = listened.session
    frame = 320
    async with listened:
        for start in range(0, len(question), frame):
            await session.push_audio(question[start : start + frame])
            await asyncio.sleep(0)
        began = False
        for _ in range(100):  # 2 s of silence: the pause, then the end of the turn
            await session.push_audio(silence(0.02))
            await asyncio.sleep(0)
            if session.paused and not began:  # the race needs the moment after PAUSED
                (await session.turns.begin(None, respond=True, text=heard)).early = True
                began = True
        assert began
        await session.wait_idle(60)
        await asyncio.sleep(0.05)
    items = listened.items
    assert not [i for i in items if isinstance(i, ItemDeleted)]
    assert "japan" in next(i.text for i in items if isinstance(i, UserTranscriptFinal)).lower()
    done = [i for i in items if isinstance(i, ReplyDone)]
    assert [d.status for d in done] == ["completed"] and "Tokyo" in done[0].text
    assert session.stats["early_confirmed"] == 1
