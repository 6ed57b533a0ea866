"""Admission control: new sessions are refused (``server_busy``) while the replies of the admitted ones are slower than
the budget; the delays are measured from the replies themselves, through the real websocket on loopback (fake models)."""

from __future__ import annotations

import json

import aiohttp
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from realtime.admission import Admission
from realtime.cascade import CascadeBrain
from realtime.models import Models
from realtime.server import RealtimeServer, ServerOptions
from realtime.session import SessionConfig
from tests.fakes import FakeDecoder, FakeTts
from tests.test_faults import QUESTION_TEXT, ScriptedAsr, ask, until


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_the_median_of_recent_replies_decides() -> None:
    clock = Clock()
    gate = Admission(1000, window_s=30, min_replies=3, clock=clock)
    for delay in (3000, 3000):
        gate.observe(delay)
    assert gate.refusal(sessions=2) is None, "two replies are too few to judge"
    gate.observe(500)
    assert gate.median_ms() == 3000 and "busy" in (gate.refusal(sessions=2) or "")
    assert gate.refusal(sessions=0) is None, "an idle server always admits"
    clock.t = 31
    assert gate.median_ms() is None and gate.refusal(sessions=2) is None, "old replies are forgotten"
    gate.observe(900), gate.observe(900), gate.observe(5000)
    assert gate.refusal(sessions=1) is None, "within budget at the median"
    assert "waited 1200 ms" in (gate.refusal(sessions=1, waiting_ms=1200) or ""), "an overload as it builds"
    assert gate.refused == 2 and Admission(None).refusal(sessions=5, waiting_ms=9e9) is None
    with pytest.raises(ValueError, match="positive"):
        Admission(0)


async def test_a_server_past_its_budget_refuses_new_sessions_and_calls(monkeypatch) -> None:
    from realtime.session import orchestrator
    from tests.fakes import FakeVad

    monkeypatch.setattr(orchestrator, "VoiceActivityDetector", FakeVad)
    models = Models(asr=ScriptedAsr(), brain=CascadeBrain(FakeDecoder({QUESTION_TEXT: "Four."})), tts=FakeTts())  # type: ignore[arg-type]
    options = ServerOptions(port=0, web_root=None, latency_budget_ms=0.001, session=SessionConfig(speculate=False))
    server = await RealtimeServer(models, options).start()
    server.admission.min_replies = 1
    url = f"ws://127.0.0.1:{server.port}/v1/realtime"
    try:
        async with connect(url) as first:
            await ask(first)
            assert (await until(first, "response.done"))[-1]["response"]["status"] == "completed"
            assert server.admission.median_ms() is not None, "the reply's first-packet delay was measured"
            async with connect(url) as second:
                error = json.loads(await second.recv())["error"]
                assert error["code"] == "server_busy" and "budget" in error["message"]
                with pytest.raises(ConnectionClosed) as closed:
                    await second.recv()
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
            async with aiohttp.ClientSession() as http:
                call = await http.post(f"http://127.0.0.1:{server.port}/v1/realtime/calls", data="v=0\r\n",
                                       headers={"Content-Type": "application/sdp"})
                body = await call.json()
                assert call.status == 503 and body["error"]["code"] == "server_busy" and call.headers["Retry-After"]
            async with aiohttp.ClientSession() as http:
                status = await (await http.get(f"http://127.0.0.1:{server.port}/v1/status")).json()
            assert (status["sessions"], status["calls"], status["refused"]) == (1, 0, 2), "asking counts no refusal"
            assert "budget" in status["busy"] and status["median_first_packet_delay_ms"] > 0
            assert status["asyncio_tasks"] > 0 and status["threads"] > 0
            await ask(first)  # the admitted session goes on
            assert (await until(first, "response.done"))[-1]["response"]["status"] == "completed"
    finally:
        await server.stop()
    assert server.admission.refused == 2


async def test_the_status_is_behind_the_api_key() -> None:
    models = Models(asr=ScriptedAsr(), brain=CascadeBrain(FakeDecoder({})), tts=FakeTts())  # type: ignore[arg-type]
    server = await RealtimeServer(models, ServerOptions(port=0, web_root=None, api_key="sk-test")).start()
    try:
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{server.port}/v1/status"
            assert (await http.get(url)).status == 401
            status = await (await http.get(url, headers={"Authorization": "Bearer sk-test"})).json()
    finally:
        await server.stop()
    assert status["sessions"] == 0 and status["busy"] is None and status["median_first_packet_delay_ms"] is None


async def test_a_reply_still_without_audio_counts_how_long_it_has_waited() -> None:
    import asyncio

    from tests.fakes import silence, speak
    from tests.test_overlaps import Overlapped
    from tests.test_session import QUESTION

    async with Overlapped() as h:
        assert h.session.turns.waiting_ms() == 0.0
        h.decoder.gate, h.decoder.hold_after = asyncio.Event(), 0  # the reply writes nothing until released
        await h.push(speak(QUESTION))
        await h.push(silence(1.5))
        waited = h.session.turns.waiting_ms()
        assert 1000 < waited < 1600, waited  # since the end of speech, on the session's (virtual) clock
        h.decoder.gate.set()
        await h.push(silence(0.5))
        assert h.session.turns.waiting_ms() == 0.0, "its audio began"
