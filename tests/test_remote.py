"""The openai-compatible brain against a real OpenAI-compatible server on loopback: llama.cpp's HTTP server
(``realtime llm-server``) serving the embedded model, in its own process so that it can be killed mid-turn.

An audio chat model cannot be served here (no audio GGUF is packaged), so the audio path is checked for its
requests (WAV blocks, history) and for a clear error from a server that takes no audio.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import socket
import subprocess
import sys
import time
import wave
from collections.abc import AsyncGenerator
from contextlib import aclosing

import aiohttp
import aiohttp.web
import numpy as np
import pytest

from benchmarks.client import LLM_SERVER, ready
from realtime.brain import ReplyRequest
from realtime.cascade import CascadeBrain
from realtime.chat_client import ChatClient, ChatEndpoint, ServerUnavailable
from realtime.conversation import Conversation, Message, chat_messages
from realtime.decoder import DecoderError
from realtime.errors import BrainStateError
from realtime.events import ErrorEvent, ReplyDone, UserTranscriptFinal
from realtime.models import Models
from realtime.reasoning import Piece
from realtime.remote_brain import RemoteAudioBrain, RemoteTextDecoder
from realtime.tools import CallPiece, Tool, ToolUse
from tests.conftest import silence, write_question
from tests.fakes import Listened

MODEL = "qwen2.5-0.5b-instruct"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LlmServer:
    """``realtime llm-server`` with one slot (a generation that is not stopped would hold up the next request)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [*LLM_SERVER, "--port", str(self.port), "--slots", "1", "--context", "8192"],
            stdout=subprocess.PIPE, text=True,
        )
        ready(self.process)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture(scope="module")
def llm_server():
    server = LlmServer()
    server.start()
    yield server
    server.kill()


def endpoint(server: LlmServer, **options: float) -> ChatEndpoint:
    return ChatEndpoint(server.url, MODEL, **options)


async def test_streams_an_answer_in_pieces(llm_server) -> None:
    decoder = RemoteTextDecoder(ChatClient(endpoint(llm_server)))
    pieces = [p async for p in decoder.generate(Conversation().reply_prompt("What is the capital of France?"), max_tokens=30)]
    assert len(pieces) > 3
    assert "Paris" in "".join(pieces)
    await decoder.client.close()


async def test_closing_the_stream_stops_generation_on_the_server(llm_server) -> None:
    """One slot: a generation left running would hold the next request for its whole length."""
    decoder = RemoteTextDecoder(ChatClient(endpoint(llm_server)))
    prompt = Conversation().reply_prompt("Count from one to five hundred in words, separated by commas.")
    started = time.monotonic()
    async with aclosing(decoder.generate(prompt, max_tokens=600)) as pieces:
        async for _ in pieces:
            if time.monotonic() - started > 0.5:
                break
    begun = time.monotonic()
    async for _ in decoder.generate(Conversation().reply_prompt("Say yes."), max_tokens=1):
        break
    # the cancelled request had ~550 tokens to go, over 15 s at this machine's speed
    assert time.monotonic() - begun < 5.0
    await decoder.client.close()


async def post(server: LlmServer, body: dict) -> dict:
    async with aiohttp.ClientSession() as session, session.post(f"{server.url}/chat/completions", json=body) as response:
        return await response.json()


def long_conversation(topic: str) -> Conversation:
    """A conversation of ~300 tokens that the server has never seen (``topic`` makes it unique)."""
    conversation = Conversation(instructions=f"You answer questions about {topic} in one short sentence. " * 12)
    for turn in range(4):
        conversation.add("user", f"Tell me about {topic} number {turn} of the list we discussed earlier today.")
        conversation.add("assistant", f"Number {turn} of the {topic} is well known and found in three countries.")
    return conversation


async def test_prefill_warms_the_servers_prefix_cache(llm_server) -> None:
    """llama.cpp reports how many prompt tokens it computed (``timings.prompt_n``), the rest coming from its cache."""
    client = ChatClient(endpoint(llm_server))
    decoder = RemoteTextDecoder(client)
    question = "Which is the longest one in Europe?"
    cold = long_conversation("rivers")
    cold_final = await post(llm_server, client.body(chat_messages(cold.reply_prompt(question))[0], max_tokens=1))
    warm = long_conversation("mountains")
    await decoder.prefill(warm.user_prefix("Which is the"))
    await decoder.prefill(warm.user_prefix("Which is the longest one"))
    warm_final = await post(llm_server, client.body(chat_messages(warm.reply_prompt(question))[0], max_tokens=1))
    assert cold_final["timings"]["prompt_n"] > 250
    assert warm_final["timings"]["prompt_n"] < 20  # only the tail after the partial words
    await client.close()


async def test_a_server_that_is_down_is_named_after_the_retries() -> None:
    client = ChatClient(ChatEndpoint(f"http://127.0.0.1:{free_port()}", MODEL, retries=2, backoff_s=0.05))
    started = time.monotonic()
    with pytest.raises(ServerUnavailable, match=r"127\.0\.0\.1:\d+/v1/chat/completions is unreachable"):
        async for _ in RemoteTextDecoder(client).generate(Conversation().reply_prompt("Hi"), max_tokens=4):
            pass
    assert 0.14 <= time.monotonic() - started < 5  # 0.05 + 0.1 s of back-off between three tries
    await client.close()


async def test_an_unknown_request_gets_the_servers_own_words(llm_server) -> None:
    client = ChatClient(endpoint(llm_server))
    with pytest.raises(DecoderError, match="refused the request"):
        async for _ in client.stream({"model": MODEL, "messages": "not a list"}):
            pass
    await client.close()


class KillsTheServer:
    """A decoder that kills the server once, in the middle of the first generation that streams ``after`` pieces
    (the rest of a long answer is then still to come, whatever the machine's speed)."""

    tools_in_prompt = False

    def __init__(self, decoder: RemoteTextDecoder, server: LlmServer, after: int = 6) -> None:
        self.decoder, self.server, self.after, self.killed = decoder, server, after, False

    async def prefill(self, prompt: str, **options) -> None:
        await self.decoder.prefill(prompt, **options)

    async def generate(self, prompt: str, **options) -> AsyncGenerator[str, None]:
        async with aclosing(self.decoder.generate(prompt, **options)) as pieces:
            count = 0
            async for piece in pieces:
                yield piece
                count += 1
                if count == self.after and not self.killed:
                    self.killed = True
                    self.server.kill()


def remote_decoder(server: LlmServer) -> RemoteTextDecoder:
    return RemoteTextDecoder(ChatClient(endpoint(server, read_timeout_s=30.0)))  # a killed server resets at once


async def ask(listened: Listened, audio: np.ndarray) -> list[object]:
    """Push ``audio`` and then silence in real time until the reply is done; the session's output items."""
    session, items = listened.session, []
    for start in range(0, len(audio), 320):
        await session.push_audio(audio[start : start + 320])
        await asyncio.sleep(0.02)
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        await session.push_audio(np.zeros(320, np.float32))
        await asyncio.sleep(0.02)
        items.extend(listened.take())
        if any(isinstance(i, ReplyDone) for i in items):
            return items
    raise AssertionError(f"no reply done: {items}")


@pytest.mark.slow
async def test_the_session_survives_the_server_dying_mid_reply(models, say) -> None:
    server = LlmServer()
    server.start()
    decoder = KillsTheServer(remote_decoder(server), server)
    listened = Listened(Models(asr=models.asr, brain=CascadeBrain(decoder), tts=models.tts))
    try:
        await listened.__aenter__()
        question = np.concatenate([silence(0.3), say("Tell me about the history of the Roman Empire."), silence(0.2)])
        items = await ask(listened, question)
        assert decoder.killed, [i for i in items if isinstance(i, (ReplyDone, ErrorEvent, UserTranscriptFinal))]
        errors = [i for i in items if isinstance(i, ErrorEvent)]
        assert errors and "model server" in errors[0].message, items
        assert [i.status for i in items if isinstance(i, ReplyDone)] == ["failed"]

        server.start()  # same port: the session goes on as if nothing happened
        japan = say("What is the capital of Japan?", "flite:slt")
        items = await ask(listened, np.concatenate([silence(0.5), japan, silence(0.2)]))
        assert not [i for i in items if isinstance(i, ErrorEvent)]
        assert "japan" in next(i.text for i in items if isinstance(i, UserTranscriptFinal)).lower()
        assert "Tokyo" in next(i.text for i in items if isinstance(i, ReplyDone))
    finally:
        await listened.__aexit__(None, None, None)
        server.kill()


@pytest.mark.slow
def test_realtime_respond_with_a_served_model(llm_server, say, tmp_path) -> None:
    question = write_question(tmp_path / "q.wav", silence(0.4), say("What is the capital of Japan?"), silence(0.3))
    run = subprocess.run(
        [sys.executable, "-m", "realtime.cli", "respond", str(question), "-o", str(tmp_path / "reply.wav"), "--fast",
         "--brain", "openai-compatible", "--base-url", f"http://127.0.0.1:{llm_server.port}", "--model", MODEL],
        capture_output=True, text=True, timeout=180,
    )
    assert run.returncode == 0, run.stderr
    turns = json.loads((tmp_path / "reply.json").read_text())["turns"]
    assert "Tokyo" in turns[0]["reply_text"]


def test_the_brain_options_are_checked_before_loading() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "realtime.cli", "respond", "in.wav", "-o", "out.wav", "--brain", "openai-compatible"],
        capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 2 and "--base-url" in run.stderr


def wav_seconds(part: dict) -> float:
    with wave.open(io.BytesIO(base64.b64decode(part["input_audio"]["data"]))) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16_000, 1, 2)
        return wav.getnframes() / 16_000


async def test_audio_goes_out_in_blocks_and_history_keeps_what_was_heard(llm_server) -> None:
    conversation = RemoteAudioBrain(ChatClient(endpoint(llm_server))).open(Conversation("Be brief."), block_seconds=1.0)
    await conversation.hear(np.full(40_000, 0.1, np.float32))  # 2.5 s: two blocks now (warm-up refused), the rest waits
    with pytest.raises(DecoderError, match="audio input is not supported"):  # a text model: the server says so
        async for _ in conversation.reply(ReplyRequest(None, max_tokens=8)):
            pass
    conversation.rewind()  # the user went on: the unblocked 0.5 s waits again
    await conversation.hear(np.full(8_000, 0.1, np.float32))
    with pytest.raises(DecoderError):
        async for _ in conversation.reply(ReplyRequest(None, max_tokens=8)):
            pass
    await conversation.finish_turn("  It is Paris. ")
    messages = conversation.messages([])
    assert [m["role"] for m in messages] == ["system", "human", "assistant"]
    assert [wav_seconds(p) for p in messages[1]["content"]] == [1.0, 1.0, 1.0]
    assert messages[2]["content"] == "It is Paris."
    with pytest.raises(ValueError, match="budget"):
        async for _ in conversation.reply(ReplyRequest(None, max_tokens=8, mode="speak-first")):
            pass
    conversation.close()
    with pytest.raises(BrainStateError, match="closed"):
        await conversation.hear(np.zeros(160, np.float32))


class ScriptedStepAudioServer:
    """A stand-in for Step-Audio-R1 on vLLM, which cannot run here: it speaks the same wire format (SSE chat
    completion chunks) and streams the model's shape of reply (reasoning, ``</think>``, the answer), inline or,
    like vLLM's reasoning parsers, in ``reasoning_content``; it records every request."""

    REASONING = ["The", " user", " asks", " for", " the", " capital", " of", " France", "."]

    def __init__(self, *, reasoning_field: bool = False) -> None:
        self.reasoning_field = reasoning_field
        self.requests: list[dict] = []

    async def handle(self, request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if body.get("tools"):  # two calls in one reply, after a few words, as vLLM's tool parsers stream them
            deltas = [{"content": "Let me check."}]
            for index, (city, call_id) in enumerate((("Paris", "chatcmpl-tool-1"), ("Rome", "chatcmpl-tool-2"))):
                deltas += [
                    {"tool_calls": [{"index": index, "id": call_id, "type": "function",
                                     "function": {"name": "get_weather", "arguments": ""}}]},
                    {"tool_calls": [{"index": index, "function": {"arguments": '{"city": '}}]},
                    {"tool_calls": [{"index": index, "function": {"arguments": f'"{city}"}}'}}]},
                ]
        elif body.get("continue_final_message"):
            deltas = [{"content": "It is"}, {"content": " Paris."}]
        elif self.reasoning_field:
            deltas = [{"reasoning_content": t} for t in self.REASONING] + [{"content": "Paris."}]
        else:
            deltas = [{"content": t} for t in [*self.REASONING, "</th", "ink>", "Paris", "."]]
        for delta in deltas:
            await response.write(f"data: {json.dumps({'choices': [{'index': 0, 'delta': delta}]})}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        return response


@pytest.fixture
async def step_audio_server():
    servers = []

    async def start(**options) -> tuple[ScriptedStepAudioServer, str]:
        scripted = ScriptedStepAudioServer(**options)
        app = aiohttp.web.Application()
        app.router.add_post("/v1/chat/completions", scripted.handle)
        runner = aiohttp.web.AppRunner(app)
        await runner.setup()
        site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        servers.append(runner)
        return scripted, f"http://127.0.0.1:{runner.addresses[0][1]}/v1"

    yield start
    for runner in servers:
        await runner.cleanup()


async def reply_pieces(url: str, **options) -> list[tuple[str, str]]:
    client = ChatClient(ChatEndpoint(url, "step-audio-r1"))
    conversation = RemoteAudioBrain(client).open(Conversation("Be brief."), block_seconds=1.0)
    await conversation.hear(np.full(24_000, 0.1, np.float32))
    pieces = [(p.channel, p.text) async for p in conversation.reply(ReplyRequest(None, max_tokens=32, **options))]
    await client.close()
    return pieces


def joined(pieces: list[tuple[str, str]], channel: str) -> str:
    return "".join(text for c, text in pieces if c == channel)


async def test_the_reasoning_is_split_from_the_answer_as_step_audio_streams_it(step_audio_server) -> None:
    scripted, url = await step_audio_server()
    pieces = await reply_pieces(url, reasoning_budget=1_000)
    assert joined(pieces, "reasoning") == "The user asks for the capital of France."
    assert joined(pieces, "answer") == "Paris."
    warm, final = scripted.requests  # the complete first block warmed the cache; then the reply
    assert warm["max_tokens"] == 1 and final["stream"] is True
    assert final["stop"] == ["<|EOT|>"] and final["skip_special_tokens"] is False
    assert [wav_seconds(p) for p in final["messages"][-1]["content"]] == [1.0, 0.5]
    assert final["messages"][-1]["content"][0] == warm["messages"][-1]["content"][0]  # the same prefix, byte for byte


async def test_a_spent_budget_asks_for_the_answer_after_the_reasoning_so_far(step_audio_server) -> None:
    scripted, url = await step_audio_server()
    pieces = await reply_pieces(url, reasoning_budget=3)
    assert joined(pieces, "reasoning") == "The user asks"
    assert joined(pieces, "answer") == "It is Paris."
    continued = scripted.requests[-1]
    assert continued["continue_final_message"] is True and continued["add_generation_prompt"] is False
    assert continued["messages"][-1] == {"role": "assistant", "content": "<think>\nThe user asks\n</think>\n"}

    scripted.requests.clear()
    pieces = await reply_pieces(url, reasoning_budget=0)  # no reasoning: one request, the block closed at once
    assert joined(pieces, "reasoning") == "" and joined(pieces, "answer") == "It is Paris."
    assert scripted.requests[-1]["messages"][-1]["content"] == "<think>\n\n</think>\n"


async def test_reasoning_from_a_servers_reasoning_parser(step_audio_server) -> None:
    _, url = await step_audio_server(reasoning_field=True)
    pieces = await reply_pieces(url, reasoning_budget=1_000)
    assert joined(pieces, "reasoning") == "The user asks for the capital of France."
    assert joined(pieces, "answer") == "Paris."


async def test_a_served_model_streams_several_tool_calls_back(step_audio_server) -> None:
    """The tools go in the request (the server renders them with the model's template); its ``tool_calls`` come back
    as call pieces. llama.cpp's server here (``realtime llm-server``) answers tool requests as plain content for this
    model, so the stand-in speaks vLLM's streaming shape."""
    scripted, url = await step_audio_server()
    client = ChatClient(ChatEndpoint(url, "qwen"))
    weather = Tool("get_weather", "The weather", {"type": "object", "properties": {"city": {"type": "string"}}})
    brain = CascadeBrain(RemoteTextDecoder(client)).open(Conversation("Be brief."))
    request = ReplyRequest("Weather in Paris and Rome?", tools=ToolUse((weather,), "required"))
    pieces = [p async for p in brain.reply(request)]
    await client.close()
    body = scripted.requests[-1]
    assert body["tools"] == [weather.signature()] and body["tool_choice"] == "required"
    assert "<tools>" not in body["messages"][0]["content"], "the server renders the tools, not the prompt"
    assert "".join(p.text for p in pieces if isinstance(p, Piece)) == "Let me check."
    done = [p for p in pieces if isinstance(p, CallPiece) and p.done]
    assert [(c.name, json.loads(c.arguments)) for c in done] == [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})]
    assert done[0].call_id != done[1].call_id


async def test_client_items_enter_the_served_audio_brains_history() -> None:
    client = ChatClient(ChatEndpoint(f"http://127.0.0.1:{free_port()}/v1", "step-audio-r1"))  # nothing is sent
    conversation = RemoteAudioBrain(client).open(Conversation("Be brief."), block_seconds=1.0)
    conversation.add_item(Message("user", "Hi there."))
    conversation.add_item(Message("assistant", "Hello."))
    conversation.add_item(Message("user", "", audio_ms=2_500), np.full(40_000, 0.1, np.float32))
    conversation.add_item(Message("assistant", "{}", kind="function_call", call_id="c1", name="f"))  # no functions here
    messages = conversation.messages([])
    assert [m["role"] for m in messages] == ["system", "human", "assistant", "human"]
    assert messages[1]["content"] == [{"type": "text", "text": "Hi there."}] and messages[2]["content"] == "Hello."
    assert [wav_seconds(part) for part in messages[3]["content"]] == [1.0, 1.0, 0.5]
    await client.close()
