"""The JavaScript Agents SDK (``@openai/agents``), unchanged, in a voice conversation with a function tool against
``realtime serve`` on the real embedded models, loopback only: a RealtimeAgent whose ``get_weather({city})`` tool (zod
parameters) answers '{"sky": "sunny", "celsius": 21}', asked by voice "What is the weather like in Paris?".

- over the SDK's websocket transport, in Node (tests/node/agents_tools.mjs): the question, resampled to 24 kHz PCM16,
  goes out with ``session.sendAudio`` in 20 ms frames in real time, then silence;
- over the SDK's WebRTC transport, in headless Chromium (tests/node/agents_webrtc.html) whose microphone is the
  question as a WAV file: the page comes from another origin (a second static server on another loopback port serving
  tests/node, the SDK's browser bundle and zod's ES modules included), so the call goes through CORS with the API key.

Both share tests/node/weather_agent.mjs and hand back the tool's calls, the SDK's ``session.history``, the answer and
every server event. Node and the packages come from scripts/setup.sh (``npm ci`` in tests/node)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aioice.ice
import numpy as np
import pytest
from aiohttp import web
from playwright.async_api import async_playwright

from audio.samples import resample, to_pcm16
from benchmarks.browser import CHROMIUM, chromium_args, launch
from realtime.models import Models
from realtime.server import RealtimeServer, ServerOptions
from tests.conftest import silence, write_question
from tests.test_node_clients import KEY, NODE, NODE_DIR, run_node

QUESTION = "What is the weather like in Paris?"
WIRE_RATE = 24_000

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(NODE is None or not (NODE_DIR / "node_modules").is_dir(), reason="needs Node and `npm ci` in tests/node (scripts/setup.sh)"),
]


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's ICE candidates are 127.0.0.1 only (aioice sees no other interface), as in tests/test_webrtc.py."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: [])


@pytest.fixture
async def page_server() -> AsyncIterator[str]:
    """tests/node served on its own loopback port: the page's origin, other than the realtime server's."""
    app = web.Application()
    app.router.add_static("/", NODE_DIR, follow_symlinks=False)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


@pytest.fixture
async def server(models: Models, loopback_only: None, page_server: str) -> AsyncIterator[RealtimeServer]:
    """`realtime serve --api-key KEY --allowed-origin PAGE_ORIGIN` on loopback, in this process."""
    running = await RealtimeServer(models, ServerOptions(port=0, api_key=KEY, allowed_origins=(page_server,))).start()
    yield running
    await running.stop()


def spoken_question(say: Any) -> np.ndarray:
    """The question at 16 kHz after half a second of silence."""
    return np.concatenate([silence(0.5), say(QUESTION)])


def check_conversation(result: dict[str, Any]) -> None:
    """The tool ran for Paris and the spoken answer uses its result; the SDK's history holds the user's transcript, the
    call with its output and the answer; no error came."""
    assert result["done"] and not result["errors"], result["errors"]
    assert [event for event in result["received"] if event["type"] == "error"] == []
    assert result["cities"] == ["Paris"], result["cities"]
    history = result["history"]
    user = [item for item in history if item["type"] == "message" and item["role"] == "user"]
    assert user and "weather" in user[0]["text"].lower(), history
    calls = [item for item in history if item["type"] == "function_call"]
    assert len(calls) == 1, history
    call = calls[0]
    assert call["name"] == "get_weather" and json.loads(call["arguments"]) == {"city": "Paris"}, call
    assert call["status"] == "completed" and "21" in (call["output"] or ""), call
    answers = [item for item in history if item["type"] == "message" and item["role"] == "assistant"]
    assert answers and history.index(answers[-1]) > history.index(call), history
    words = answers[-1]["text"].lower()
    assert words == result["answer"].lower(), (words, result["answer"])
    assert "21" in words and "sunny" in words, words


async def test_the_js_agents_sdk_calls_a_tool_asked_by_voice_over_websocket(server: RealtimeServer, say: Any, tmp_path: Path) -> None:
    assert NODE is not None
    audio = tmp_path / "question.pcm"
    audio.write_bytes(to_pcm16(resample(spoken_question(say), 16_000, WIRE_RATE)))
    url = f"ws://127.0.0.1:{server.port}/v1/realtime?model=embedded"
    started = time.monotonic()
    code, result = await run_node("agents_tools.mjs", url, str(audio), timeout_s=240)  # the script gives up after 150 s
    print(f"websocket conversation: {time.monotonic() - started:.1f} s, {result['times']}")
    sent = [event["type"] for event in result["sent"]]
    assert sent[0] == "session.update" and "function_call_output" in json.dumps(result["sent"]), sent
    check_conversation(result)
    assert code == 0


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")
async def test_the_js_agents_sdk_calls_a_tool_asked_by_voice_over_webrtc_from_another_origin(
    server: RealtimeServer, page_server: str, say: Any, tmp_path: Path
) -> None:
    # The lead-in covers the page's start (Chromium starts the file when the microphone opens); the long tail keeps the
    # looped file from asking again.
    wav = write_question(tmp_path / "microphone.wav", silence(3.0), say(QUESTION), silence(60.0))
    calls = f"http://127.0.0.1:{server.port}/v1/realtime/calls"
    started = time.monotonic()
    async with async_playwright() as playwright:
        browser = await launch(playwright, chromium_args(wav))
        try:
            page = await browser.new_page()
            console: list[str] = []
            page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
            page.on("pageerror", lambda error: console.append(f"page error: {error}"))
            await page.goto(f"{page_server}/agents_webrtc.html?{KEY}#{calls}")
            await page.wait_for_function("window.result !== undefined", timeout=200_000)  # the page gives up after 150 s
            result = await page.evaluate("window.result")
        finally:
            await browser.close()
    print(f"webrtc conversation: {time.monotonic() - started:.1f} s, {result['times']}; the page's console: {console}")
    assert result["origin"] == page_server != f"http://127.0.0.1:{server.port}", "the page came from another origin"
    assert result["callId"], result
    check_conversation(result)
    assert "response.output_audio.delta" not in {event["type"] for event in result["received"]}, "reply audio travels as RTP"
