"""Clients nobody here wrote, unchanged, against ``realtime serve`` on the real embedded models (loopback only): the
OpenAI Agents SDK for Python (``openai-agents``: a realtime agent with a function tool, asked by voice, and a
barge-in) and the ``openai`` SDK (text-only replies, an out-of-band classification beside the conversation,
per-response instructions). The Agents SDK validates every server event against the ``openai`` package's models, so
an event of the wrong shape surfaces here as an error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest
from agents import function_tool
from agents.realtime import RealtimeAgent, RealtimeRunner, RealtimeSession
from openai import AsyncOpenAI

from audio.samples import resample, to_pcm16
from realtime.server import RealtimeServer, ServerOptions
from tests.conftest import silence

pytestmark = pytest.mark.slow
WIRE_RATE = 24_000


@pytest.fixture
async def server(models) -> AsyncIterator[RealtimeServer]:
    running = await RealtimeServer(models, ServerOptions(port=0, api_key="secret-key")).start()
    yield running
    await running.stop()


async def talk(session: RealtimeSession, audio16k: np.ndarray, *, then_silence_s: float = 30.0) -> None:
    """Send speech, then silence, as a microphone would: 20 ms frames of 24 kHz PCM16 in real time."""
    wire = resample(np.concatenate([audio16k, silence(then_silence_s)]), 16_000, WIRE_RATE)
    for offset in range(0, len(wire), WIRE_RATE // 50):
        await session.send_audio(to_pcm16(wire[offset : offset + WIRE_RATE // 50]))
        await asyncio.sleep(0.02)


async def agent_session(server: RealtimeServer, agent: RealtimeAgent) -> RealtimeSession:
    runner = RealtimeRunner(starting_agent=agent)
    url = f"ws://127.0.0.1:{server.port}/v1/realtime?model=embedded"
    return await runner.run(model_config={"url": url, "api_key": "secret-key"})


async def test_a_realtime_agent_calls_a_tool_asked_by_voice(server, say) -> None:
    cities: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """Get the current weather in a city."""
        cities.append(city)
        return '{"sky": "sunny", "celsius": 21}'

    agent = RealtimeAgent(name="Assistant", instructions="You are a voice assistant. Use the tools to answer.",
                          tools=[get_weather])
    session = await agent_session(server, agent)
    errors, ends = [], 0
    async with session:
        speaking = asyncio.create_task(talk(session, np.concatenate([silence(0.5), say("What is the weather like in Paris?")])))
        async with asyncio.timeout(120):
            async for event in session:
                if event.type == "error":
                    errors.append(event.error)
                elif event.type == "agent_end":
                    ends += 1  # the call, then the answer with its result
                    if ends == 2:
                        break
        speaking.cancel()
        history = list(session._history)  # noqa: SLF001 - the SDK keeps its history there (RealtimeHistoryUpdated holds it too)
    assert not errors, errors
    assert cities == ["Paris"]
    user = next(item for item in history if item.type == "message" and item.role == "user")
    assert "weather" in (user.content[0].transcript or "").lower()
    call = next(item for item in history if item.type == "function_call")
    assert call.name == "get_weather" and "Paris" in call.arguments and "21" in (call.output or "")
    answer = [item for item in history if item.type == "message" and item.role == "assistant"][-1]
    words = (answer.content[0].transcript or "").lower()
    assert "21" in words and "sunny" in words, words


async def test_talking_over_an_agent_interrupts_it(server, say) -> None:
    agent = RealtimeAgent(name="Storyteller", instructions="You tell long, detailed stories when asked.")
    session = await agent_session(server, agent)
    interrupted, errors = asyncio.Event(), []
    async with session:
        async def listen() -> None:
            async for event in session:
                if event.type == "error":
                    errors.append(event.error)
                elif event.type == "audio_interrupted":
                    interrupted.set()

        listener = asyncio.create_task(listen())
        question = np.concatenate([silence(0.5), say("Please tell me a long story about a brave little dragon.")])
        await talk(session, question, then_silence_s=3.0)
        await talk(session, say("Stop, stop, wait a moment please."), then_silence_s=1.0)
        async with asyncio.timeout(30):
            await interrupted.wait()
        listener.cancel()
    assert not errors, errors


async def test_the_openai_sdk_text_replies_out_of_band_and_per_response_instructions(server) -> None:
    client = AsyncOpenAI(api_key="secret-key", base_url=f"http://127.0.0.1:{server.port}/v1",
                         websocket_base_url=f"ws://127.0.0.1:{server.port}/v1")
    async with client.realtime.connect(model="embedded") as connection:
        await connection.session.update(session={"type": "realtime", "output_modalities": ["text"]})
        await connection.response.create(response={"instructions": "Greet the caller and say that your name is Robin."})
        async with asyncio.timeout(60):
            async for event in connection:
                if event.type == "response.done":
                    greeting = event.response.output[0].content[0].text  # type: ignore[union-attr]
                    break
        assert "robin" in (greeting or "").lower(), greeting
        await connection.conversation.item.create(item={
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": "What is the capital of France?"}]})
        await connection.response.create()
        await connection.response.create(response={
            "conversation": "none", "output_modalities": ["text"], "metadata": {"purpose": "topic"},
            "instructions": "Name the topic of the user's message in one word.",
            "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "I love my new bicycle!"}]}],
        })
        done: dict[str, object] = {}
        kinds: list[str] = []
        async with asyncio.timeout(90):
            async for event in connection:
                kinds.append(event.type)
                if event.type == "error":
                    raise AssertionError(event.error)
                if event.type == "response.done":
                    done["band" if event.response.conversation_id is None else "conversation"] = event.response
                    if len(done) == 2:
                        break
        conversation, band = done["conversation"], done["band"]
        assert "response.output_audio.delta" not in kinds and "response.output_text.delta" in kinds
        assert "paris" in conversation.output[0].content[0].text.lower()  # type: ignore[attr-defined]
        assert band.metadata == {"purpose": "topic"} and band.output[0].content[0].text  # type: ignore[attr-defined]

        await connection.conversation.item.retrieve(item_id=conversation.output[0].id)  # type: ignore[attr-defined]
        async with asyncio.timeout(10):
            async for event in connection:
                if event.type == "conversation.item.retrieved":
                    assert "paris" in event.item.content[0].text.lower()  # type: ignore[union-attr]
                    break
