"""Property-based fuzzing of the wire protocol: random sequences of valid and invalid client events.

Valid events come from strategies checked against the reference's client event models (``openai.types.realtime``);
invalid ones are valid events with one field replaced by a random JSON value (or dropped, or an unknown one added),
unknown types, non-JSON text, binary frames and odd audio (byte counts, base64, formats). What must hold, whatever
comes: nothing escapes :meth:`RealtimeProtocol.receive`; a refused event gets exactly one ``error`` event that names
it (its ``event_id``) and nothing else; every server event validates against the reference's models; the audio
appended adds up to what was sent. Then the same through a whole session on the fakes (:class:`RealtimeConnection`):
no event fails inside the session, nothing is logged as an error, and every response that was created is done.

Deterministic in CI (``tests/conftest.py``: the ``ci`` profile); ``FUZZ_SCALE=N`` explores N times as many random examples.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import dataclasses
import json
import logging
import math
from typing import Any

import numpy as np
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.realtime import RealtimeClientEvent

from audio.samples import PIPELINE_RATE, resample, to_pcm16
from realtime.asr import Transcript
from realtime.commands import AddItem, AppendAudio, Command, Configure, Send
from realtime.connection import RealtimeConnection
from realtime.protocol import RealtimeProtocol
from realtime.session import orchestrator
from tests import fakes, strict_events
from tests.conftest import fuzz_examples
from tests.fakes import FakeVad

GA_EVENT = pydantic.TypeAdapter(RealtimeClientEvent)
RESAMPLER_DELAY = 1024
"""Samples (16 kHz) the streaming resampler may hold back at a format's end (its filter delay, well under this)."""

# ---- strategies ---------------------------------------------------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False)
edge_values = st.sampled_from([math.nan, math.inf, -math.inf, 1e300, -1, 0, 0.5, 2**63, -(2**63), "", "auto", [], {}, None, True])
"""The values that break checks most often: NaN and infinities (Python's json reads them), huge and negative numbers,
empty containers, a well-known string."""
json_scalars = edge_values | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
ids = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12)
words = st.text(st.characters(codec="utf-8"), min_size=1, max_size=40).filter(str.strip)
event_ids = st.none() | ids

ga_formats = st.sampled_from([{"type": "audio/pcmu"}, {"type": "audio/pcma"}, {"type": "audio/pcm", "rate": 24_000}])
server_vad = st.fixed_dictionaries({"type": st.just("server_vad")}, optional={
    "threshold": st.floats(0.01, 0.99), "prefix_padding_ms": st.integers(0, 5000), "silence_duration_ms": st.integers(0, 5000),
    "create_response": st.booleans(), "interrupt_response": st.booleans(), "idle_timeout_ms": st.none() | st.integers(5000, 30_000),
})
semantic_vad = st.fixed_dictionaries({"type": st.just("semantic_vad")}, optional={
    "eagerness": st.sampled_from(["low", "medium", "high", "auto"]), "create_response": st.booleans(),
    "interrupt_response": st.booleans(),
})
tool = st.fixed_dictionaries({"type": st.just("function"), "name": st.from_regex(r"[a-z_]{1,20}", fullmatch=True)}, optional={
    "description": st.text(max_size=30), "parameters": st.just({"type": "object", "properties": {}}),
})
tools = st.lists(tool, max_size=3, unique_by=lambda t: t["name"])
choice = st.sampled_from(["auto", "none", "required"])
modalities = st.sampled_from([["audio"], ["text"]])
token_limits = st.integers(1, 4096) | st.just("inf")



def sessions(input_formats: bool = True) -> st.SearchStrategy[dict[str, Any]]:
    """``session.update``'s settings (with or without a change of the input format)."""
    audio_in = {"format": ga_formats} if input_formats else {}
    return st.fixed_dictionaries({"type": st.just("realtime")}, optional={
        "instructions": st.text(max_size=40), "output_modalities": modalities, "tools": tools, "tool_choice": choice,
        "max_output_tokens": token_limits,
        "audio": st.fixed_dictionaries({}, optional={
            "input": st.fixed_dictionaries({}, optional={**audio_in, "turn_detection": st.none() | server_vad | semantic_vad}),
            "output": st.fixed_dictionaries({}, optional={"format": ga_formats, "voice": st.sampled_from(["alloy", "marin"])}),
        }),
    })


text_part = st.builds(lambda kind, text: {"type": kind, "text": text}, st.just("input_text"), words)
message = st.one_of(
    st.fixed_dictionaries({"type": st.just("message"), "role": st.sampled_from(["user", "system"]),
                           "content": st.lists(text_part, min_size=1, max_size=2)}),
    st.fixed_dictionaries({"type": st.just("message"), "role": st.just("assistant"),
                           "content": st.lists(st.builds(lambda t: {"type": "output_text", "text": t}, words), min_size=1, max_size=2)}),
    st.fixed_dictionaries({"type": st.just("function_call_output"), "call_id": ids, "output": st.text(max_size=30)}),
    st.fixed_dictionaries({"type": st.just("function_call"), "call_id": ids, "name": st.from_regex(r"[a-z_]{1,20}", fullmatch=True),
                           "arguments": st.just("{}")}),
).flatmap(lambda item: st.fixed_dictionaries({}, optional={"id": ids}).map(lambda extra: {**item, **extra}))
response = st.fixed_dictionaries({}, optional={
    "instructions": st.text(max_size=40), "output_modalities": modalities, "max_output_tokens": token_limits,
    "conversation": st.sampled_from(["auto", "none"]), "tool_choice": choice,
    "metadata": st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=3),
})


def pcm_bytes(even: bool) -> st.SearchStrategy[bytes]:
    """Audio bytes for the input format: pcm16 needs an even count (``even``), G.711 takes any."""
    return st.binary(max_size=4000).map(lambda data: data[: len(data) // 2 * 2] if even else data)


def event(kind: str, **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A client event of ``kind``, with or without an ``event_id``."""
    return st.fixed_dictionaries({"type": st.just(kind), **fields}, optional={"event_id": ids})


def valid_events(audio: st.SearchStrategy[bytes], *, input_formats: bool = True) -> st.SearchStrategy[dict[str, Any]]:
    """Every client event of the reference, valid (``audio``: bytes in the input format)."""
    return st.one_of(
        event("session.update", session=sessions(input_formats)),
        event("input_audio_buffer.append", audio=audio.map(lambda data: base64.b64encode(data).decode())),
        event("input_audio_buffer.commit"), event("input_audio_buffer.clear"), event("output_audio_buffer.clear"),
        event("conversation.item.create", item=message),
        event("conversation.item.delete", item_id=ids), event("conversation.item.retrieve", item_id=ids),
        event("conversation.item.truncate", item_id=ids, content_index=st.just(0), audio_end_ms=st.integers(0, 10_000)),
        event("response.create", response=response), event("response.cancel"),
    )


@st.composite
def mutated(draw: st.DrawFn, events: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    """A valid event with one field, at any depth, replaced by a random JSON value, dropped, or joined by an unknown one."""
    original = copy.deepcopy(draw(events))  # strategies hand out shared objects (sampled_from, just)
    paths = list(_paths(original))
    path = draw(st.sampled_from(paths))
    target: Any = original
    for key in path[:-1]:
        target = target[key]
    how = draw(st.sampled_from(["replace", "replace", "drop", "add"]))
    if how == "add" and isinstance(target, dict):
        target[draw(st.text(min_size=1, max_size=8))] = draw(json_values)
    elif how == "drop" and isinstance(target, dict):
        del target[path[-1]]
    else:
        target[path[-1]] = draw(json_values)
    return original


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Any:
    """The path of every field and list entry in ``value``."""
    entries = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, inner in entries:
        yield (*prefix, key)
        yield from _paths(inner, (*prefix, key))


not_events = st.one_of(
    st.text(max_size=60),  # mostly not JSON
    st.binary(max_size=60),  # a binary frame, often not UTF-8
    json_values.map(json.dumps),  # JSON, mostly not an object
    st.dictionaries(st.text(max_size=8), json_values, max_size=4).map(json.dumps),  # an object with no known type
    st.builds(lambda kind, rest: json.dumps({**rest, "type": kind}), st.text(max_size=30) | json_scalars,
              st.dictionaries(st.text(max_size=8), json_values, max_size=3)),
    st.builds(lambda n: json.dumps({"type": "input_audio_buffer.append", "audio": "A" * n}), st.integers(0, 9)),  # odd base64
    st.sampled_from(["NaN", "[Infinity]", '{"type": "session.update", "session": {"temperature": 1e999}}', "[" * 60_000,
                     '{"type": "input_audio_buffer.append", "audio": "\\ud800"}']),
)


# ---- properties -----------------------------------------------------------------------------------------------------


def errors_of(commands: list[Command]) -> list[dict[str, Any]]:
    return [c.event for c in commands if isinstance(c, Send) and c.event["type"] == "error"]


def assert_strict(protocol: RealtimeProtocol, commands: list[Command]) -> None:
    """Every server event among ``commands`` is one a strict client of ``protocol`` accepts."""
    for command in commands:
        if isinstance(command, Send):
            assert (problem := strict_events.check(protocol, command.event)) is None, problem


def assert_refused_alone(commands: list[Command], event_id: object) -> None:
    """A refused event: one ``error`` event, nothing else, naming the event (its ``event_id``, unless it could not be
    read: JSON has no NaN or infinity) and what was wrong."""
    [send] = commands
    assert isinstance(send, Send) and send.event["type"] == "error", commands
    error = send.event["error"]
    named = event_id if isinstance(event_id, str) and error["code"] != "invalid_json" else None
    assert error["event_id"] == named
    assert error["type"] == "invalid_request_error" and error["code"] and error["message"]


class AudioLedger:
    """What was appended, per input format, against what the protocol passed on: the two add up."""

    def __init__(self, protocol: RealtimeProtocol) -> None:
        self.protocol = protocol
        self.format = protocol.input_format
        self.sent = 0
        """Samples sent (at the format's rate) since the format was set."""
        self.passed = 0
        """Samples passed on to the session (16 kHz) since then."""

    def note(self, message: dict[str, Any] | None, commands: list[Command]) -> None:
        if message is not None and message.get("type") == "input_audio_buffer.append" and not errors_of(commands):
            self.sent += len(self.format.decode(base64.b64decode(message["audio"])))
        self.passed += sum(len(c.samples) for c in commands if isinstance(c, AppendAudio))
        for added in (c for c in commands if isinstance(c, AddItem) and c.audio is not None):
            assert abs(len(added.audio) - self._expected(self._item_samples(message))) <= 1
        if any(isinstance(c, Configure) for c in commands) and self.protocol.input_format != self.format:
            self.check(flushed=False)
            self.format, self.sent, self.passed = self.protocol.input_format, 0, 0

    def check(self, *, flushed: bool = False) -> None:
        expected = self._expected(self.sent)
        assert self.passed <= expected + 1, f"{self.passed} samples passed on from {self.sent} sent at {self.format.rate} Hz"
        assert flushed or self.passed >= expected - RESAMPLER_DELAY, f"{self.passed} of {expected} samples passed on"

    def _expected(self, samples: int) -> int:
        return math.ceil(samples * PIPELINE_RATE / self.format.rate)

    def _item_samples(self, message: dict[str, Any] | None) -> int:
        parts = (message or {}).get("item", {}).get("content", [])
        return sum(len(self.format.decode(base64.b64decode(p["audio"]))) for p in parts if isinstance(p.get("audio"), str))


def receive(protocol: RealtimeProtocol, message: str | bytes) -> list[Command]:
    commands = protocol.receive(message)
    assert all(isinstance(c, Command) for c in commands)
    assert_strict(protocol, commands)
    return commands


@settings(max_examples=fuzz_examples(150))
@given(st.booleans(), st.data())
def test_valid_events_are_carried_out(beta: bool, data: st.DataObject) -> None:
    """Valid events (by the reference's models) in any order: none refused, and the audio adds up."""
    protocol = RealtimeProtocol("sess_fuzz", beta=beta)
    ledger = AudioLedger(protocol)
    for _ in range(data.draw(st.integers(1, 12))):
        message = data.draw(valid_events(pcm_bytes(protocol.input_format.codec == "pcm16")))
        GA_EVENT.validate_python(message)  # the GA shapes, which a beta client may send too
        commands = receive(protocol, json.dumps(message))
        assert not errors_of(commands), (message, errors_of(commands))
        ledger.note(message, commands)
    ledger.check()


@settings(max_examples=fuzz_examples(250))
@given(st.booleans(), st.data())
def test_any_event_gets_commands_or_exactly_one_error(beta: bool, data: st.DataObject) -> None:
    """Mutated events and garbage, between valid ones: each is carried out or refused alone, and the state holds."""
    protocol = RealtimeProtocol("sess_fuzz", beta=beta)
    ledger = AudioLedger(protocol)
    for _ in range(data.draw(st.integers(1, 10))):
        valid = valid_events(pcm_bytes(protocol.input_format.codec == "pcm16"))
        message: dict[str, Any] | str | bytes = data.draw(st.one_of(valid, mutated(valid), not_events))
        wire = json.dumps(message) if isinstance(message, dict) else message
        commands = receive(protocol, wire)
        event = message if isinstance(message, dict) else _loads(wire)
        if errors_of(commands):
            assert_refused_alone(commands, event.get("event_id") if isinstance(event, dict) else None)
        ledger.note(event if isinstance(event, dict) else None, commands)
    ledger.check()


@settings(max_examples=fuzz_examples(200))
@given(st.sampled_from(["pcm16", "g711_ulaw", "g711_alaw"]), st.lists(st.binary(max_size=3001), max_size=8), event_ids)
def test_audio_of_any_byte_count_adds_up(codec: str, chunks: list[bytes], event_id: str | None) -> None:
    """Appends of any size in each format: an odd pcm16 byte count is refused alone; the rest passes on in full."""
    protocol = RealtimeProtocol("sess_fuzz", beta=True)
    receive(protocol, json.dumps({"type": "session.update", "session": {"input_audio_format": codec}}))
    ledger = AudioLedger(protocol)
    for chunk in chunks:
        message = {"type": "input_audio_buffer.append", "audio": base64.b64encode(chunk).decode(),
                   **({"event_id": event_id} if event_id else {})}
        commands = receive(protocol, json.dumps(message))
        if codec == "pcm16" and len(chunk) % 2:
            assert_refused_alone(commands, event_id)
            assert errors_of(commands)[0]["error"]["code"] == "invalid_audio"
        ledger.note(message, commands)
    ledger.check()


SWEEP_VALUES = (math.nan, math.inf, -math.inf, 1e300, -1, 0, 2**63, "", "x", [], {}, None, True, [[]], [{}], {"type": []},
                {"type": "function", "name": []}, {"type": "server_vad", "silence_duration_ms": math.inf})
"""Every field of an event is tried with each of these (unhashable ones, nested wrong types, NaN, infinities)."""


@settings(max_examples=fuzz_examples(60))
@given(st.booleans(), st.data())
def test_every_field_takes_every_wrong_value(beta: bool, data: st.DataObject) -> None:
    """A valid event, then each of its fields in turn (at any depth) replaced by each of :data:`SWEEP_VALUES`:
    each variant is carried out or refused alone."""
    protocol = RealtimeProtocol("sess_fuzz", beta=beta)
    original = data.draw(valid_events(pcm_bytes(True)))
    for path in _paths(original):
        for value in SWEEP_VALUES:
            variant = copy.deepcopy(original)
            target = variant
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
            commands = receive(protocol, json.dumps(variant))
            if errors_of(commands):
                assert_refused_alone(commands, variant.get("event_id"))


def test_a_huge_event_is_refused_alone() -> None:
    protocol = RealtimeProtocol("sess_fuzz", max_event_bytes=1000)
    audio = base64.b64encode(bytes(2000)).decode()
    assert_refused_alone(receive(protocol, json.dumps({"type": "input_audio_buffer.append", "audio": audio, "event_id": "e1"})), None)


def _loads(wire: str | bytes) -> object:
    try:
        return json.loads(wire)
    except (ValueError, RecursionError):
        return None


# ---- a whole session on the fakes ---------------------------------------------------------------------------------

class LoudAsr:
    """Hears the same question in any audio that is loud enough (the session tests' speech is fake: a constant level per
    word, which the wire's resampling smears)."""

    async def transcribe_async(self, samples: np.ndarray) -> Transcript:
        await asyncio.sleep(0)
        heard = bool(len(samples)) and float(np.abs(samples).max()) > 0.05
        return Transcript("what time is it" if heard else "", 0.0 if heard else 0.99, -0.1 if heard else -1.0)


spoken = st.integers(1, 4).map(lambda words: to_pcm16(resample(
    np.concatenate([fakes.silence(0.2), fakes.speak(" ".join(["hello"] * words)), fakes.silence(0.8)]), PIPELINE_RATE, 24_000)))
quiet = st.integers(0, 8000).map(lambda count: bytes(count // 2 * 2))
session_events = valid_events(spoken | quiet, input_formats=False)


@settings(max_examples=fuzz_examples(40))
@given(beta=st.booleans(), messages=st.lists(st.one_of(session_events, session_events, mutated(session_events), not_events), max_size=12))
def test_a_session_survives_any_sequence(beta: bool, messages: list[dict[str, Any] | str | bytes], caplog: pytest.LogCaptureFixture,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Random valid and invalid events, with speech, into a real session on the fakes: no event fails inside it, nothing
    is logged as an error, and every response created is done once (none is left orphaned)."""
    monkeypatch.setattr(orchestrator, "VoiceActivityDetector", FakeVad)
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        sent = asyncio.run(_session_run([json.dumps(m) if isinstance(m, dict) else m for m in messages], beta))
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]
    assert not [e for e in sent if e["type"] == "error" and e["error"]["type"] == "server_error"]
    created = [e["response"]["id"] for e in sent if e["type"] == "response.created"]
    done = [e["response"]["id"] for e in sent if e["type"] == "response.done"]
    assert sorted(created) == sorted(done), "every response created is done, once"


async def _session_run(messages: list[str | bytes], beta: bool) -> list[dict[str, Any]]:
    """The session's events for ``messages``, then until it is idle."""
    sent: list[dict[str, Any]] = []

    async def send(event: dict[str, Any]) -> None:
        sent.append(event)

    connection = RealtimeConnection(dataclasses.replace(fakes.fake_models()[0], asr=LoudAsr()), send, beta=beta)
    async with connection:
        for message in messages:
            await connection.handle(message)
            await fakes.settle(steps=50)
        await connection.session.wait_idle(timeout=5.0)
        await fakes.settle(steps=200)
    for event in sent:
        assert (problem := strict_events.check(connection.protocol, event)) is None, problem
    return sent
