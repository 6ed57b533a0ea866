"""Property-based fuzzing of the MQTT control topics: random payloads (bytes, text, any JSON, controls with one field
wrong) on random topics, into the parser and the bus's dispatch (no broker: what the bus would publish waits in its
outbox). Whatever comes: nothing but a :class:`ControlError` leaves the parser, the bus never raises, and a bad message
is answered with exactly one ``invalid_control`` error naming it (its ``id``) on the right topic.

Deterministic in CI (``tests/conftest.py``); ``FUZZ_SCALE=N`` explores N times as many random examples.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.mqtt import MAX_PENDING_CONTROLS, BusSession, MqttBus
from realtime.mqtt_messages import MAX_CONTROL_BYTES, Control, ControlError, parse_control
from tests.conftest import fuzz_examples

PREFIX = "fuzz/agent"
SESSION = "sess_fuzz"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
controls = st.fixed_dictionaries(
    {"type": st.sampled_from(["say", "interrupt", "instructions", "end"])},
    optional={"text": st.text(max_size=30), "id": st.text(max_size=8)},
)


@st.composite
def wrong_controls(draw: st.DrawFn) -> dict[str, Any]:
    """A control message with one field replaced by any JSON value, or an unknown one added."""
    control = draw(controls)
    control[draw(st.sampled_from(["type", "text", "id", "other"]))] = draw(json_values)
    return control


payloads = st.one_of(
    controls.map(json.dumps), wrong_controls().map(json.dumps), json_values.map(json.dumps),
    st.binary(max_size=64), st.text(max_size=64).map(str.encode),
    st.just(b"[" * 60_000), st.just(json.dumps({"type": "say", "text": "a" * MAX_CONTROL_BYTES})),
).map(lambda payload: payload if isinstance(payload, bytes) else payload.encode())
topics = st.sampled_from([f"{PREFIX}/control", f"{PREFIX}/{SESSION}/control", f"{PREFIX}/sess_gone/control"])


@settings(max_examples=fuzz_examples(400))
@given(payloads)
def test_the_parser_raises_only_control_errors(payload: bytes) -> None:
    try:
        control = parse_control(payload)
    except ControlError as exc:
        assert str(exc)
        return
    assert isinstance(control, Control) and control.type in ("say", "interrupt", "instructions", "end")
    assert control.id is None or isinstance(control.id, str)
    assert bool(control.text and control.text.strip()) == (control.type in ("say", "instructions"))


@settings(max_examples=fuzz_examples(300))
@given(st.lists(st.tuples(topics, payloads), min_size=1, max_size=MAX_PENDING_CONTROLS + 8))
def test_the_bus_answers_every_bad_control_once(messages: list[tuple[str, bytes]]) -> None:
    """Each message is carried to the session (or refused as busy) or answered with one error naming it; never a raise."""
    bus = MqttBus("127.0.0.1", prefix=PREFIX)
    session = BusSession(bus, SimpleNamespace(id=SESSION, session=None))  # type: ignore[arg-type]
    bus._sessions[SESSION] = session  # noqa: SLF001 - the bus's registry, as a session scope fills it
    for topic, payload in messages:
        before, queued = len(bus.outbox), session._controls.qsize()  # noqa: SLF001
        bus._dispatch(topic, payload, retained=False)  # noqa: SLF001 - what the receive loop calls for each message
        answers = _published(bus)[before:]
        expected = _parsed(payload)
        if isinstance(expected, ControlError) or "sess_gone" in topic:
            [(where, error)] = answers
            assert error["type"] == "error" and error["code"] == "invalid_control" and error["message"]
            assert error["control_id"] == (expected.control_id if isinstance(expected, ControlError) else expected.id)
            assert where == topic.removesuffix("/control") + "/error"
        elif queued < MAX_PENDING_CONTROLS:
            assert not answers and session._controls.qsize() == queued + 1  # noqa: SLF001
        else:
            [(_, busy)] = answers
            assert busy["code"] == "control_busy" and busy["control_id"] == expected.id


def test_a_retained_control_is_ignored() -> None:
    bus = MqttBus("127.0.0.1", prefix=PREFIX)
    bus._dispatch(f"{PREFIX}/control", b"not json", retained=True)  # noqa: SLF001
    assert not len(bus.outbox)


def _parsed(payload: bytes) -> Control | ControlError:
    try:
        return parse_control(payload)
    except ControlError as exc:
        return exc


def _published(bus: MqttBus) -> list[tuple[str, dict[str, Any]]]:
    """What the bus has queued for the broker: (topic, message)."""
    return [(m.topic, json.loads(m.payload)) for m in bus.outbox._items]  # noqa: SLF001
