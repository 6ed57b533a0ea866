"""The agent speaks first: a server's greeting on every new session (``realtime serve --greeting``), and a client's
``response.create`` before the user said anything, marked not interruptible (``response.interruptible``, an extension),
through the real websocket endpoint on loopback with the fake models (every server event is checked against the
reference's models by the suite's autouse fixture)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import connect

from realtime.cascade import CascadeBrain
from realtime.models import Models
from realtime.server import RealtimeServer, ServerOptions
from realtime.session import SessionConfig
from tests.fakes import FakeAsr, FakeDecoder, FakeTts
from tests.test_faults import kinds, reply_words, until

GREETING = "Hello there, how can I help you today?"


async def served(config: SessionConfig) -> RealtimeServer:
    models = Models(asr=FakeAsr(), brain=CascadeBrain(FakeDecoder(default="Welcome, caller.")), tts=FakeTts())  # type: ignore[arg-type]
    return await RealtimeServer(models, ServerOptions(port=0, web_root=None, session=config)).start()


@pytest.fixture
async def greeter() -> AsyncIterator[RealtimeServer]:
    server = await served(SessionConfig(greeting=GREETING, greeting_interruptible=False))
    yield server
    await server.stop()


async def test_every_new_session_is_greeted_first(greeter: RealtimeServer) -> None:
    for _ in range(2):
        async with connect(f"ws://127.0.0.1:{greeter.port}/v1/realtime") as ws:
            events = await until(ws, "response.done")
            assert kinds(events)[0] == "session.created" and "response.created" in kinds(events)
            done = events[-1]["response"]
            assert done["status"] == "completed" and done["output"][0]["content"][0]["transcript"] == GREETING
            assert reply_words(events) == len(GREETING.split()), "the whole greeting was spoken"


async def test_a_client_may_ask_the_agent_to_speak_first_and_not_be_interrupted() -> None:
    server = await served(SessionConfig())
    try:
        async with connect(f"ws://127.0.0.1:{server.port}/v1/realtime") as ws:
            assert kinds(await until(ws, "session.created")) == ["session.created"]
            await ws.send(json.dumps({"type": "response.create",
                                      "response": {"instructions": "Greet the caller.", "interruptible": False}}))
            events = await until(ws, "response.done")
            assert events[-1]["response"]["status"] == "completed"
            assert events[-1]["response"]["output"][0]["content"][0]["transcript"] == "Welcome, caller."
            await ws.send(json.dumps({"type": "response.create", "response": {"interruptible": "no"}}))
            error = (await until(ws, "error"))[-1]["error"]
            assert (error["code"], error["param"]) == ("invalid_value", "interruptible")
    finally:
        await server.stop()
