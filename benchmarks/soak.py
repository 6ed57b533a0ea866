"""Soak: one long spoken conversation, then many short sessions closed abruptly, against one ``realtime serve``.

The server runs in its own process on loopback. One websocket conversation holds ``--turns`` turns: spoken questions
(the corpus's synthetic voices, streamed in real time as 20 ms appends, silence in between, as a microphone would),
with barge-ins (the next question spoken over the reply), ``response.cancel`` s, typed ``conversation.item.create``
messages, tool calls and ``session.update`` s (new instructions) mixed in; the client waits for each reply to play out
before it speaks again. The session has a tool from the start with ``tool_choice: "none"``; a tool turn asks for the
weather in text, forces the call with the response's ``tool_choice``, hands back the function's output and asks for
the answer with ``tool_choice: "auto"``, as an app that calls a tool now and then would. Then ``--sessions``
sessions are opened one after another, and each is dropped without a close handshake at some point (before speaking,
mid-question, on the reply's first audio, after the reply).

Measured: the server's resident memory, open file descriptors and threads (``/proc``) at the start, the middle and
the end of the conversation and after the sessions; the first-packet delay (client clock, from sending the frame
with the true last speech sample to the first reply audio) of the spoken turns, p50 of the first and the last
quarter; the server's live asyncio tasks (``GET /v1/status``); and the history the server holds at the end (every
item the client saw added, retrieved with ``conversation.item.retrieve``), in items and in estimated prompt tokens.

    .venv/bin/python -m benchmarks.soak --turns 200 --sessions 50 --label cpu2
    .venv/bin/python -m benchmarks.soak --tree ../before --label cpu2-before   # the same soak on another checkout
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from audio.samples import PIPELINE_RATE, read_audio, resample, to_pcm16
from benchmarks.client import AGENT, FRAME, FRAME_S, WIRE_RATE, Server, launch, ready
from benchmarks.corpus import VOICES, load_questions, spoken_question
from benchmarks.procstat import usage
from benchmarks.report import EMBEDDED_MODELS, Record, distribution, machine, now_iso, write_results
from realtime.conversation import DEFAULT_INSTRUCTIONS, Conversation, Message, estimate_tokens
from realtime.respond import speech_segments

Event = tuple[float, dict[str, Any]]
INSTRUCTIONS = (DEFAULT_INSTRUCTIONS, DEFAULT_INSTRUCTIONS + " Be warm and encouraging.")
"""What the ``session.update`` s alternate between (each changes the prompt's start)."""
SPOKEN = ("spoken", "barge-in", "cancel")
"""The kinds of turn whose first-packet delay runs from the end of speech."""
REPLY_TIMEOUT_S = 90.0
WEATHER = {"type": "function", "name": "get_weather", "description": "The current weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
CITIES = ("Paris", "Tokyo", "Oslo", "Lima", "Cairo", "Denver")


class Inbox:
    """Every server event of one connection with its arrival on the client's clock (audio deltas keep only their size)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._new = asyncio.Event()

    async def pump(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):  # the soak sees a lost connection as missing events
            async for message in ws:
                event = json.loads(message)
                if event["type"] == "response.output_audio.delta":
                    event = {"type": event["type"], "response_id": event.get("response_id"),
                             "bytes": len(base64.b64decode(event["delta"]))}
                self.events.append((time.monotonic(), event))
                self._new.set()

    async def first(self, wanted: Callable[[dict[str, Any]], bool], since: int, timeout_s: float = REPLY_TIMEOUT_S) -> Event | None:
        """The first event from index ``since`` on that ``wanted`` accepts, waiting up to ``timeout_s`` (None)."""
        deadline, at = time.monotonic() + timeout_s, since
        while True:
            for arrived, event in self.events[at:]:
                if wanted(event):
                    return arrived, event
            at = len(self.events)
            self._new.clear()
            try:
                await asyncio.wait_for(self._new.wait(), deadline - time.monotonic())
            except TimeoutError:
                return None

    def audio_s(self, response_id: str) -> float:
        """Seconds of reply audio received for ``response_id``."""
        return sum(e.get("bytes", 0) for _, e in self.events if e.get("response_id") == response_id
                   and e["type"] == "response.output_audio.delta") / 2 / WIRE_RATE


class Mic:
    """Streams 20 ms PCM16 24 kHz appends in real time: silence, or the clip given to :meth:`say`."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws, self._clip, self._at, self._end = ws, np.zeros(0, np.float32), 0, 0
        self._spoken: asyncio.Future[float] | None = None

    def say(self, audio16k: np.ndarray, speech_end_s: float) -> asyncio.Future[float]:
        """Speak ``audio16k`` from the next frame; the future gets the time the frame with its true end
        (``speech_end_s`` into it) was sent."""
        self._clip, self._at = resample(audio16k, PIPELINE_RATE, WIRE_RATE), 0
        self._end = int(speech_end_s * WIRE_RATE)
        self._spoken = asyncio.get_running_loop().create_future()
        return self._spoken

    async def run(self) -> None:
        start, sent = time.monotonic(), 0
        try:
            while True:
                await asyncio.sleep(max(0.0, start + sent * FRAME_S - time.monotonic()))
                frame = self._clip[self._at : self._at + FRAME]
                frame = np.concatenate([frame, np.zeros(FRAME - len(frame), np.float32)])
                self._at += FRAME
                await self.ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(to_pcm16(frame)).decode()}))
                if self._spoken is not None and not self._spoken.done() and self._at >= self._end:
                    self._spoken.set_result(time.monotonic())
                sent += 1
        except ConnectionClosed as closed:  # whoever waits for the speech to end hears of it
            if self._spoken is not None and not self._spoken.done():
                self._spoken.set_exception(closed)


class Questions:
    """The corpus's questions in turn, each voiced once by the next voice (16 kHz audio and its true end of speech)."""

    def __init__(self, folder: Path) -> None:
        self._questions, self._folder, self._next = load_questions(), folder, 0

    @property
    def asked(self) -> int:
        """How many questions were handed out."""
        return self._next

    def next(self) -> tuple[str, np.ndarray, float]:
        index = self._next
        self._next += 1
        question = self._questions[index % len(self._questions)]
        wav = self._folder / f"q{index}.wav"
        spoken_question(question.text, VOICES[index % len(VOICES)], wav)
        audio = read_audio(wav, PIPELINE_RATE)
        return question.text, audio, speech_segments(audio)[-1][1] / PIPELINE_RATE


@dataclasses.dataclass
class Conversing:
    """One connection: its inbox, microphone and the tasks that run them."""

    ws: ClientConnection
    inbox: Inbox
    mic: Mic
    tasks: tuple[asyncio.Task[None], ...]

    @classmethod
    async def open(cls, url: str) -> Conversing:
        # a loaded server answers pings and handshakes late: the soak measures its replies, not the client's keepalive
        ws = await connect(url, max_size=None, ping_interval=None, open_timeout=120)
        inbox, mic = Inbox(), Mic(ws)
        tasks = (asyncio.create_task(inbox.pump(ws)), asyncio.create_task(mic.run()))
        await inbox.first(lambda e: e["type"] in ("session.created", "error"), 0, 30)  # error: refused (server_busy, ...)
        return cls(ws, inbox, mic, tasks)

    @property
    def refused(self) -> str | None:
        """The error code the server refused the session with (None: admitted)."""
        first = self.inbox.events[0][1] if self.inbox.events else {}
        return first.get("error", {}).get("code") if first.get("type") == "error" else None

    @staticmethod
    async def send(ws: ClientConnection, event: dict[str, Any]) -> None:
        await ws.send(json.dumps(event))

    def stop(self) -> None:
        for task in self.tasks:
            task.cancel()


async def spoken_turn(c: Conversing, audio: np.ndarray, end_s: float, *, then: str = "", barge: tuple[np.ndarray, float] | None = None
                      ) -> tuple[Record, asyncio.Future[float] | None, int]:
    """Speak a question and follow its reply: to its end and played out (``then`` empty), cancelled on its first audio
    (``"cancel"``), or interrupted 0.5 s into it by ``barge`` (which the caller then follows as the next turn)."""
    mark = len(c.inbox.events)
    spoken_at = await c.mic.say(audio, end_s)
    first = await c.inbox.first(lambda e: e["type"] == "response.output_audio.delta", mark)
    if first is None:
        return {"first_packet_ms": None, "status": "no reply"}, None, len(c.inbox.events)
    arrived, event = first
    response_id = event["response_id"]
    record: Record = {"first_packet_ms": round((arrived - spoken_at) * 1000, 1)}
    next_spoken, next_mark = None, 0
    if then == "cancel":
        await c.send(c.ws, {"type": "response.cancel"})
    elif barge is not None:
        await asyncio.sleep(max(0.0, arrived + 0.5 - time.monotonic()))
        next_mark = len(c.inbox.events)
        next_spoken = c.mic.say(*barge)
    done = await c.inbox.first(lambda e: e["type"] == "response.done" and e["response"]["id"] == response_id, mark)
    record["status"] = None if done is None else done[1]["response"]["status"]
    if barge is None:  # the user listens to the reply as it plays, then pauses
        await asyncio.sleep(max(0.0, arrived + c.inbox.audio_s(response_id) + 0.8 - time.monotonic()))
    return record, next_spoken, next_mark


async def typed_turn(c: Conversing, text: str) -> Record:
    """A typed user message and ``response.create``: the delay runs from sending it to the first reply audio."""
    mark, sent = len(c.inbox.events), time.monotonic()
    await c.send(c.ws, {"type": "conversation.item.create",
                        "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}})
    await c.send(c.ws, {"type": "response.create"})
    return await spoken_reply(c, mark, sent)


async def tool_turn(c: Conversing, city: str) -> Record:
    """A typed question whose reply must call the tool, its output handed back, and the spoken answer to it:
    ``call_ms`` from ``response.create`` to the call's ``response.done``, ``first_packet_ms`` from the second
    ``response.create`` to the answer's first audio."""
    mark, sent = len(c.inbox.events), time.monotonic()
    await c.send(c.ws, {"type": "conversation.item.create", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": f"What is the weather in {city} now?"}]}})
    await c.send(c.ws, {"type": "response.create", "response": {"tool_choice": {"type": "function", "name": "get_weather"}}})
    done = await c.inbox.first(lambda e: e["type"] == "response.done", mark)
    calls = [] if done is None else [i for i in done[1]["response"]["output"] if i["type"] == "function_call"]
    if done is None or not calls:
        return {"first_packet_ms": None, "call_ms": None, "status": "no call"}
    record: Record = {"call_ms": round((done[0] - sent) * 1000, 1)}
    output = json.dumps({"city": city, "sky": "sunny", "celsius": 21})
    await c.send(c.ws, {"type": "conversation.item.create",
                        "item": {"type": "function_call_output", "call_id": calls[0]["call_id"], "output": output}})
    mark, sent = len(c.inbox.events), time.monotonic()
    await c.send(c.ws, {"type": "response.create", "response": {"tool_choice": "auto"}})
    return {**record, **await spoken_reply(c, mark, sent)}


async def spoken_reply(c: Conversing, mark: int, sent: float) -> Record:
    """Follow the reply asked for at ``sent`` (events from ``mark``) to its end and its playout: its first-packet
    delay from ``sent`` and its status."""
    first = await c.inbox.first(lambda e: e["type"] == "response.output_audio.delta", mark)
    if first is None:
        return {"first_packet_ms": None, "status": "no reply"}
    response_id = first[1]["response_id"]
    done = await c.inbox.first(lambda e: e["type"] == "response.done" and e["response"]["id"] == response_id, mark)
    await asyncio.sleep(max(0.0, first[0] + c.inbox.audio_s(response_id) + 0.8 - time.monotonic()))
    return {"first_packet_ms": round((first[0] - sent) * 1000, 1), "status": None if done is None else done[1]["response"]["status"]}


def kind_of(turn: int) -> str:
    """The schedule: mostly plain spoken turns, a barge-in every 7th, a cancel every 9th, a tool call every 8th, a
    typed message every 6th."""
    if turn % 7 == 3:
        return "barge-in"
    if turn % 9 == 5:
        return "cancel"
    if turn % 8 == 6:
        return "tool"
    return "typed" if turn % 6 == 2 else "spoken"


async def snapshot(server: Server, at: str) -> Record:
    """The server process's resources now (``/proc``), and its live asyncio tasks (None: a server without
    ``/v1/status``, an older checkout)."""
    u = usage(server.pid)
    status_url = server.url.replace("ws://", "http://", 1).split("/v1/")[0] + "/v1/status"
    async with aiohttp.ClientSession() as http, http.get(status_url) as response:
        tasks = (await response.json())["asyncio_tasks"] if response.status == 200 else None
    return {"at": at, "rss_mb": u.rss_mb, "fds": u.fds, "threads": u.threads, "asyncio_tasks": tasks, "cpu_s": round(u.cpu_s, 1)}


TURNS_PER_SAMPLE = 20


async def conversation(server: Server, turns: int, questions: Questions) -> tuple[list[Record], list[Record], Record, list[list[float]]]:
    """The long conversation: its turns, the resource snapshots, the history the server holds at the end, and the
    server's resident memory (MB) at the start and after every :data:`TURNS_PER_SAMPLE` turns, as ``[turns so far, MB]``
    pairs."""
    c = await Conversing.open(server.url)
    started = time.monotonic()
    snapshots, records = [await snapshot(server, "start")], []
    rss_mb = [[0, snapshots[0]["rss_mb"]]]
    mark = len(c.inbox.events)
    await c.send(c.ws, {"type": "session.update", "session": {"type": "realtime", "tools": [WEATHER], "tool_choice": "none"}})
    await c.inbox.first(lambda e: e["type"] in ("session.updated", "error"), mark, 10)
    pending: Pending = None
    updates, lost = 0, False
    for turn in range(1, turns + 1):
        kind = "spoken" if pending is not None or (turn == turns and kind_of(turn) == "barge-in") else kind_of(turn)
        try:
            if turn % 10 == 0:
                updates += 1
                mark = len(c.inbox.events)
                await c.send(c.ws, {"type": "session.update", "session": {"instructions": INSTRUCTIONS[updates % 2]}})
                await c.inbox.first(lambda e: e["type"] in ("session.updated", "error"), mark, 10)
            record, pending = await one_turn(c, kind, pending, questions)
        except ConnectionClosed as closed:
            record, lost = {"first_packet_ms": None, "status": f"connection lost: {closed}"}, True
        records.append({"turn": turn, "kind": kind, "at_s": round(time.monotonic() - started, 1), **record})
        print(f"turn {turn:4} {kind:9} {record['first_packet_ms']!s:>8} ms {record['status']}", flush=True)
        if lost:
            break
        if turn == turns // 2:
            snapshots.append(await snapshot(server, "middle"))
        if turn % TURNS_PER_SAMPLE == 0:
            rss_mb.append([turn, usage(server.pid).rss_mb])
    snapshots.append(await snapshot(server, "end"))
    history = {"items_added": None, "items_held": None, "prompt_tokens_estimated": None} if lost else await held_history(c, INSTRUCTIONS[updates % 2])
    c.stop()
    await c.ws.close()
    return records, snapshots, history, rss_mb


Pending = tuple[asyncio.Future[float] | None, int] | None
"""A question spoken over the last reply: when its speech ended, and where its events begin."""


async def one_turn(c: Conversing, kind: str, pending: Pending, questions: Questions) -> tuple[Record, Pending]:
    """One turn of ``kind`` (the reply to ``pending`` when a question barged in); returns it and what barged in now."""
    if pending is not None:  # follow the reply to the question that barged in
        return await follow(c, *pending), None
    if kind == "typed":
        return await typed_turn(c, questions.next()[0]), None
    if kind == "tool":
        return await tool_turn(c, CITIES[questions.asked % len(CITIES)]), None
    _, audio, end = questions.next()
    barge = questions.next()[1:] if kind == "barge-in" else None
    record, spoken_next, next_mark = await spoken_turn(c, audio, end, then=kind, barge=barge)
    return record, None if spoken_next is None else (spoken_next, next_mark)


async def follow(c: Conversing, spoken: asyncio.Future[float] | None, mark: int) -> Record:
    """The reply to a question spoken over the previous reply: first audio of a response begun after it was spoken."""
    assert spoken is not None
    spoken_at = await spoken
    late = await c.inbox.first(lambda e: e["type"] == "response.created", mark)
    if late is None:
        return {"first_packet_ms": None, "status": "no reply"}
    response_id = late[1]["response"]["id"]
    first = await c.inbox.first(lambda e: e["type"] == "response.output_audio.delta" and e["response_id"] == response_id, mark)
    done = await c.inbox.first(lambda e: e["type"] == "response.done" and e["response"]["id"] == response_id, mark)
    if first is None:
        return {"first_packet_ms": None, "status": None if done is None else done[1]["response"]["status"]}
    await asyncio.sleep(max(0.0, first[0] + c.inbox.audio_s(response_id) + 0.8 - time.monotonic()))
    return {"first_packet_ms": round((first[0] - spoken_at) * 1000, 1),
            "status": None if done is None else done[1]["response"]["status"]}


async def held_history(c: Conversing, instructions: str) -> Record:
    """Retrieve every item the client saw added: those the server still holds make the history, in items and in
    estimated prompt tokens (:func:`~realtime.conversation.estimate_tokens` of the prompt they render to)."""
    added = list(dict.fromkeys(e["item"]["id"] for _, e in c.inbox.events if e["type"] == "conversation.item.added"))
    kept: list[Message] = []
    for item_id in added:
        mark = len(c.inbox.events)
        await c.send(c.ws, {"type": "conversation.item.retrieve", "item_id": item_id})
        answer = await c.inbox.first(lambda e: e["type"] in ("conversation.item.retrieved", "error"), mark, 10)
        if answer is not None and answer[1]["type"] == "conversation.item.retrieved":
            item = answer[1]["item"]
            text = " ".join(p.get("text") or p.get("transcript") or "" for p in item.get("content", [])) or item.get(
                "arguments") or item.get("output") or ""
            kept.append(Message(item.get("role", "user"), text, item_id))
    prompt = Conversation(instructions=instructions, messages=[m for m in kept if m.text.strip()]).history_prompt()
    return {"items_added": len(added), "items_held": len(kept), "prompt_tokens_estimated": estimate_tokens(prompt)}


SESSIONS_PER_SAMPLE = 10
"""How often the session phase reads the server's resident memory (sessions), to show whether it levels off."""


async def sessions(server: Server, count: int, questions: Questions) -> Record:
    """``count`` sessions one after another, each dropped without a close handshake: before speaking, mid-question, on
    the reply's first audio, or after the reply (in turn). ``rss_mb``: the server's resident memory (MB) before the
    first session and after every :data:`SESSIONS_PER_SAMPLE` sessions, as ``[sessions so far, MB]`` pairs."""
    opened, moments = 0, ("before speaking", "mid-question", "first audio", "after the reply")
    rss_mb = [[0, usage(server.pid).rss_mb]]
    for index in range(count):
        if index and index % SESSIONS_PER_SAMPLE == 0:
            rss_mb.append([index, usage(server.pid).rss_mb])
        c = await Conversing.open(server.url)
        opened += any(e["type"] == "session.created" for _, e in c.inbox.events)
        moment = moments[index % len(moments)]
        with contextlib.suppress(ConnectionClosed):  # it is being dropped anyway
            await drop_at(c, moment, questions)
        c.stop()
        c.ws.transport.abort()  # gone, without a close frame
    return {"sessions": count, "opened": opened, "moments": list(moments), "rss_mb": rss_mb}


async def drop_at(c: Conversing, moment: str, questions: Questions) -> None:
    """Go on with a session until ``moment`` (one of :func:`sessions`' moments)."""
    if moment == "before speaking":
        return
    _, audio, end = questions.next()
    mark = len(c.inbox.events)
    spoken = c.mic.say(audio, end)
    if moment == "mid-question":
        await asyncio.sleep(end / 2)
        return
    await spoken
    wanted = "response.output_audio.delta" if moment == "first audio" else "response.done"
    await c.inbox.first(lambda e: e["type"] == wanted, mark)


def quarters(records: list[Record]) -> Record:
    """First-packet p50 of the spoken turns in the first and the last quarter of the conversation."""
    turns = max((r["turn"] for r in records), default=0)
    spoken = [r for r in records if r["kind"] in SPOKEN and r["first_packet_ms"] is not None]

    def p50(low: float, high: float) -> Record:
        return distribution([r["first_packet_ms"] for r in spoken if low < r["turn"] <= high])

    return {"first_quarter": p50(0, turns / 4), "last_quarter": p50(turns * 3 / 4, turns), "all": p50(0, turns)}


def sampled_growth(samples: list[list[float]], turns: int) -> float | None:
    """Growth (%) of resident memory from the second quarter of a conversation to its last, each the median of the
    ``[turns so far, MB]`` samples taken in it: past the first quarter's warm-up, and steadier than one sample at the
    middle and one at the end, which move with what is live when they are read. None: a quarter has no sample."""

    def median_in(low: float, high: float) -> float | None:
        inside = [mb for turn, mb in samples if low < turn <= high]
        return statistics.median(inside) if inside else None

    second, last = median_in(turns / 4, turns / 2), median_in(turns * 3 / 4, turns)
    return None if second is None or last is None else round((last - second) * 100 / second, 1)


async def soak(turns: int, count: int, tree: Path | None = None) -> Record:
    """Run the soak against a server started here (from ``tree``, another checkout of the project, when given)."""
    process = launch(AGENT, tree=tree)
    server = ready(process)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            questions = Questions(Path(tmp))
            records, snapshots, history, rss_mb = await conversation(server, turns, questions)
            dropped = await sessions(server, count, questions)
            await asyncio.sleep(3.0)
            snapshots.append(await snapshot(server, "after sessions"))
    finally:
        server.stop()
    kinds = {kind: sum(r["kind"] == kind for r in records) for kind in ("spoken", "barge-in", "cancel", "typed", "tool")}
    middle, end = snapshots[1] if len(snapshots) > 3 else snapshots[0], snapshots[-2]
    return {
        "turns": turns, "kinds": kinds, "session_updates": turns // 10,
        "first_packet_ms": quarters(records),
        "typed_first_packet_ms": distribution([r["first_packet_ms"] for r in records if r["kind"] == "typed" and r["first_packet_ms"] is not None]),
        "tool_call_ms": distribution([r["call_ms"] for r in records if r["kind"] == "tool" and r.get("call_ms") is not None]),
        "tool_answer_first_packet_ms": distribution([r["first_packet_ms"] for r in records
                                                     if r["kind"] == "tool" and r["first_packet_ms"] is not None]),
        "statuses": {s: sum(str(r["status"]) == s for r in records) for s in sorted({str(r["status"]) for r in records})},
        "history": history, "resources": snapshots, "conversation_rss_mb": rss_mb,
        "growth_middle_to_end_pct": {k: round((end[k] - middle[k]) * 100 / middle[k], 1)
                                     for k in ("rss_mb", "fds", "threads", "asyncio_tasks") if end[k] is not None and middle[k]},
        "rss_growth_second_to_last_quarter_pct": sampled_growth(rss_mb, turns),
        "abrupt_sessions": dropped, "records": records,
    }


def _percent(value: float | None) -> str:
    return "n/a (a quarter without a sample)" if value is None else f"{value} %"


def markdown(label: str, result: Record) -> str:
    s = result["summary"]
    q = s["first_packet_ms"]
    lines = [
        f"# Soak ({label}, {result['date']})", "",
        f"{result['machine']['cpus']} CPUs, load average {result['load_average']} at the start; {EMBEDDED_MODELS}; "
        f"`realtime serve` (defaults) in its own process on loopback{' from ' + result['tree'] if result.get('tree') else ''}. "
        f"One websocket conversation of {s['turns']} turns ({', '.join(f'{k} {v}' for k, v in s['kinds'].items())}; "
        f"{s['session_updates']} `session.update`s with new instructions), then {s['abrupt_sessions']['sessions']} sessions "
        "one after another, each dropped without a close frame. Spoken questions: the corpus's synthetic voices in real time.",
        "", "## First-packet delay of the spoken turns (ms, client clock)", "",
        "| turns | n | p50 | p90 | mean | max |", "|---|---|---|---|---|---|",
    ]
    for name in ("first_quarter", "last_quarter", "all"):
        d = q[name]
        lines.append(f"| {name.replace('_', ' ')} | {d['n']} | {d['p50']} | {d['p90']} | {d['mean']} | {d['max']} |")
    t = s["typed_first_packet_ms"]
    lines += ["", f"Typed messages: p50 {t['p50']} ms (n {t['n']}, from `response.create`). Reply statuses: {s['statuses']}."]
    if "tool_call_ms" in s:
        call, answer = s["tool_call_ms"], s["tool_answer_first_packet_ms"]
        lines += ["", f"Tool turns (n {call['n']}): the forced call done p50 {call['p50']} / p90 {call['p90']} / max "
                      f"{call['max']} ms from `response.create`; the answer to its output, first audio p50 {answer['p50']} / "
                      f"p90 {answer['p90']} / max {answer['max']} ms."]
    lines += ["",
              "", "## Server process (/proc, and `GET /v1/status` for asyncio tasks)", "",
              "| at | RSS MB | fds | threads | asyncio tasks | CPU s |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['at']} | {r['rss_mb']} | {r['fds']} | {r['threads']} | {r.get('asyncio_tasks')} | {r['cpu_s']} |"
              for r in s["resources"]]
    h = s["history"]
    lines += ["", f"Growth from the middle to the end of the conversation: {s['growth_middle_to_end_pct']} (%).", "",
              f"History at the end: {h['items_held']} of {h['items_added']} items added still held, "
              f"~{h['prompt_tokens_estimated']} prompt tokens (upper estimate).", ""]
    if s.get("conversation_rss_mb"):
        lines += ["## Resident memory through the conversation", "", "| turns so far | RSS MB |", "|---|---|",
                  *(f"| {n} | {mb} |" for n, mb in s["conversation_rss_mb"]), "",
                  "Growth from the second quarter to the last (the median of each quarter's samples): "
                  f"{_percent(s.get('rss_growth_second_to_last_quarter_pct'))}.", ""]
    samples = s["abrupt_sessions"].get("rss_mb", [])
    if samples:
        lines += ["## Resident memory through the abrupt sessions", "", "| sessions so far | RSS MB |", "|---|---|",
                  *(f"| {n} | {mb} |" for n, mb in samples), ""]
    return "\n".join(lines)


async def run(turns: int, count: int, label: str, tree: Path | None) -> Path:
    load = Path("/proc/loadavg").read_text().split()[:3]
    summary = await soak(turns, count, tree)
    result: Record = {"benchmark": "soak", "date": now_iso(), "label": label, "machine": machine(), "models": EMBEDDED_MODELS,
                      "load_average": " ".join(load), "tree": tree.name if tree else None, "summary": summary}
    text = markdown(label, result)
    print(text)
    return write_results("soak", label, result, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--label", default="cpu")
    parser.add_argument("--tree", type=Path, help="serve the code of another checkout (e.g. a git worktree of an older commit)")
    args = parser.parse_args()
    asyncio.run(run(args.turns, args.sessions, args.label, args.tree))


if __name__ == "__main__":
    main()
