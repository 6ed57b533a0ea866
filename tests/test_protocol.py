"""The Sans-I/O protocol core, byte for byte, with no sockets and no models."""

from __future__ import annotations

import base64
import json
import warnings

import numpy as np
import pytest

from audio.codecs import AudioFormat, AudioFormatError, parse_format
from realtime.commands import (
    AddMessage,
    AppendAudio,
    CancelResponse,
    ClearInput,
    CommitInput,
    Configure,
    CreateResponse,
    DeleteMessage,
    Send,
    TruncateMessage,
)
from realtime.events import (
    AssistantTextDelta,
    AudioCleared,
    AudioOut,
    ErrorEvent,
    InputCleared,
    InputCommitted,
    ItemAdded,
    ItemDeleted,
    ReasoningDelta,
    ReasoningDone,
    ReplyDone,
    ReplyStarted,
    ReplyTruncated,
    SpeechStarted,
    SpeechStopped,
    UserTranscriptFinal,
    UserTranscriptPartial,
)
from realtime.protocol import RealtimeProtocol


def protocol(beta: bool = False) -> RealtimeProtocol:
    return RealtimeProtocol("sess_test", beta=beta)


def receive(proto: RealtimeProtocol, event: object) -> list:
    return proto.receive(event if isinstance(event, str) else json.dumps(event))


def error_code(commands: list) -> str:
    [send] = commands
    assert isinstance(send, Send) and send.event["type"] == "error"
    return send.event["error"]["code"]


def test_start_announces_the_session() -> None:
    configure, created = protocol().start()
    assert isinstance(configure, Configure) and configure.config.output_rate == 24_000
    session = created.event["session"]
    assert created.event["type"] == "session.created" and created.event["event_id"] == "event_000001"
    assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    assert session["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24_000}
    beta = protocol(beta=True).start()[1].event["session"]
    assert beta["input_audio_format"] == "pcm16" and beta["turn_detection"]["silence_duration_ms"] == 480


def test_append_decodes_and_resamples_to_16k() -> None:
    proto = protocol()
    tone = (0.5 * np.sin(np.arange(24_000) * 2 * np.pi * 440 / 24_000)).astype(np.float32)
    pcm = (tone * 32767).astype("<i2").tobytes()
    out = []
    for start in range(0, len(pcm), 960):
        chunk = base64.b64encode(pcm[start : start + 960]).decode()
        out += receive(proto, {"type": "input_audio_buffer.append", "audio": chunk})
    samples = np.concatenate([c.samples for c in out if isinstance(c, AppendAudio)])
    assert 16_000 - 400 < len(samples) <= 16_000  # the streaming resampler holds back its filter delay
    assert 0.3 < float(np.abs(samples[2000:]).max()) < 0.6
    assert receive(proto, {"type": "input_audio_buffer.append", "audio": ""}) == []


@pytest.mark.parametrize(
    "message,code",
    [
        ("{nope", "invalid_json"),
        ("[1, 2]", "invalid_event"),
        (json.dumps({"type": 5}), "invalid_event_type"),
        (json.dumps({"no": "type"}), "invalid_event_type"),
        (json.dumps({"type": "input_audio_buffer.append"}), "invalid_value"),
        (json.dumps({"type": "input_audio_buffer.append", "audio": "@@@"}), "invalid_audio"),
        (json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(b"abc").decode()}), "invalid_audio"),
        (json.dumps({"type": "session.update"}), "invalid_value"),
        (json.dumps({"type": "session.update", "session": {"instructions": 3}}), "invalid_value"),
        (json.dumps({"type": "session.update", "session": {"input_audio_format": "opus"}}), "invalid_value"),
        (json.dumps({"type": "session.update", "session": {
             "audio": {"output": {"format": {"type": "audio/pcm", "rate": 5}}}}}),
         "invalid_value"),
        (json.dumps({"type": "session.update", "session": {"turn_detection": {"type": "push_to_talk"}}}), "invalid_value"),
        (json.dumps({"type": "session.update", "session": {"turn_detection": {"threshold": "high"}}}), "invalid_value"),
        (json.dumps({"type": "session.update", "session": {"turn_detection": {"threshold": 1.5}}}), "invalid_value"),
        (json.dumps({"type": "session.update", "session": {"turn_detection": {"prefix_padding_ms": -1}}}), "invalid_value"),
        (json.dumps({"type": "session.update", "session": {"turn_detection": {"create_response": "yes"}}}), "invalid_value"),
        (json.dumps({"type": "session.update", "session": {"max_output_tokens": 0}}), "invalid_value"),
        (json.dumps({"type": "session.update", "session": {"temperature": 3}}), "invalid_value"),
        (json.dumps({"type": "session.update", "session": {"reasoning": {"budget_tokens": -2}}}), "invalid_value"),
        (json.dumps({"type": "conversation.item.create", "item": {"type": "function_call"}}), "invalid_value"),
        (json.dumps({"type": "conversation.item.create", "item": {"role": "tool", "content": []}}), "invalid_value"),
        (json.dumps({"type": "conversation.item.create", "item": {"role": "user", "content": []}}), "invalid_value"),
        (json.dumps({"type": "conversation.item.create", "item": {"role": "user", "content": [{"type": "input_audio"}]}}),
         "invalid_value"),
        (json.dumps({"type": "conversation.item.truncate", "item_id": "x"}), "invalid_value"),
        (json.dumps({"type": "conversation.item.delete"}), "invalid_value"),
    ],
)
def test_bad_events_become_errors(message: str, code: str) -> None:
    assert error_code(protocol().receive(message)) == code


def test_an_error_names_the_client_event() -> None:
    [send] = protocol().receive(json.dumps({"type": "bogus", "event_id": "evt_7"}))
    assert send.event["error"]["event_id"] == "evt_7" and send.event["error"]["param"] == "type"


def test_oversized_events_are_refused() -> None:
    proto = RealtimeProtocol("s", max_event_bytes=100)
    assert error_code(proto.receive("x" * 101)) == "message_too_large"


def test_session_update_in_both_shapes() -> None:
    proto = protocol()
    configure, updated = receive(proto, {"type": "session.update", "session": {
        "type": "realtime", "instructions": "Be brief.", "max_output_tokens": "inf", "temperature": 0.7,
        "reasoning": {"budget_tokens": 32},
        "audio": {"input": {"format": {"type": "audio/pcmu"}, "turn_detection": {
            "type": "server_vad", "threshold": 0.6, "prefix_padding_ms": 200, "silence_duration_ms": 700,
            "create_response": False, "interrupt_response": False}},
            "output": {"format": {"type": "audio/pcma"}}}}})
    config = configure.config
    assert (config.instructions, config.max_answer_tokens, config.temperature, config.reasoning_budget) == (
        "Be brief.", 4096, 0.7, 32
    )
    assert (config.policy.threshold, config.policy.end_of_turn_silence_ms, config.prefix_padding_ms) == (0.6, 700, 200)
    assert (config.auto_respond, config.interrupt_response, config.output_rate) == (False, False, 8_000)
    assert updated.event["session"]["audio"]["input"]["format"] == {"type": "audio/pcmu", "rate": 8_000}
    configure, _ = receive(proto, {"type": "session.update", "session": {"turn_detection": None, "input_audio_format": "pcm16",
                                                                          "max_response_output_tokens": 64}})
    assert configure.config.turn_detection is False and configure.config.max_answer_tokens == 64
    assert proto.input_format == AudioFormat("pcm16", 24_000)
    beta = protocol(beta=True)
    _, updated = receive(
        beta, {"type": "session.update", "session": {"output_audio_format": "g711_ulaw", "turn_detection": None}}
    )
    session = updated.event["session"]
    assert session["output_audio_format"] == "g711_ulaw" and session["turn_detection"] is None


def test_short_end_of_turn_caps_speculation() -> None:
    configure, _ = receive(protocol(), {"type": "session.update", "session": {"turn_detection": {"silence_duration_ms": 100}}})
    assert configure.config.policy.speculate_silence_ms == 100


@pytest.mark.parametrize(
    "event,command",
    [
        ({"type": "input_audio_buffer.commit", "event_id": "e1"}, CommitInput("e1")),
        ({"type": "input_audio_buffer.clear"}, ClearInput(None)),
        ({"type": "response.create"}, CreateResponse(None)),
        ({"type": "response.cancel", "event_id": "e2"}, CancelResponse("e2")),
        ({"type": "output_audio_buffer.clear"}, CancelResponse(None)),
        ({"type": "conversation.item.delete", "item_id": "item_1"}, DeleteMessage("item_1", None)),
        ({"type": "conversation.item.truncate", "item_id": "item_2", "content_index": 0, "audio_end_ms": 1500},
         TruncateMessage("item_2", 1500, None)),
        ({"type": "conversation.item.create",
          "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]}},
         AddMessage("user", "Hi", None, None)),
        ({"type": "conversation.item.create",
          "item": {"id": "mine", "role": "assistant",
                   "content": [{"type": "output_text", "text": "A"}, {"type": "output_text", "text": "B"}]}},
         AddMessage("assistant", "A B", "mine", None)),
    ],
)
def test_commands(event: dict, command: object) -> None:
    assert receive(protocol(), event) == [command]


def kinds(events: list[dict]) -> list[str]:
    return [e["type"] for e in events]


def test_a_spoken_turn_translates_in_order() -> None:
    proto = protocol()
    out = []
    for item in [
        SpeechStarted(16_000, "item_u"),
        UserTranscriptPartial("item_u", "What is"),
        UserTranscriptPartial("item_u", "What is the capital"),
        UserTranscriptPartial("item_u", "Where is the capital"),
        SpeechStopped(48_000, "item_u"),
        InputCommitted("item_u", None),
        UserTranscriptFinal("turn_1", "item_u", "What is the capital of France?"),
        ReplyStarted("turn_1", 1, "item_a"),
        ReasoningDelta("turn_1", 1, "Paris is"),
        ReasoningDone("turn_1", 1, "Paris is the capital."),
        AssistantTextDelta("turn_1", 1, "Paris. "),
        AudioOut("turn_1", 1, np.zeros(480, np.float32)),
        ReplyDone("turn_1", 1, "item_a", "completed", "Paris.", {"first_packet_delay_ms": 700.0}),
    ]:
        out += proto.translate(item)
    assert kinds(out) == [
        "input_audio_buffer.speech_started",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.delta",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.created",
        "conversation.item.input_audio_transcription.completed",
        "response.created",
        "response.output_item.added",
        "conversation.item.created",
        "response.content_part.added",
        "response.thinking.delta",
        "response.thinking.done",
        "response.output_audio_transcript.delta",
        "response.output_audio.delta",
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.done",
        "response.latency",
    ]
    assert out[0]["audio_start_ms"] == 1000 and out[4]["audio_end_ms"] == 3000
    assert [(e["delta"], e["transcript"]) for e in out[1:4]] == [
        ("What is", "What is"), (" the capital", "What is the capital"), ("Where is the capital", "Where is the capital")]
    assert out[10]["previous_item_id"] == "item_u" and out[10]["item"]["role"] == "assistant"
    audio = out[15]
    assert audio["response_id"] == "resp_turn_1" and audio["item_id"] == "item_a"
    assert base64.b64decode(audio["delta"]) == bytes(960)
    done = out[20]["response"]
    assert done["status"] == "completed"
    assert done["output"][0]["content"][0] == {"type": "output_audio", "transcript": "Paris."}
    assert out[21]["latency"] == {"first_packet_delay_ms": 700.0}
    assert len({e["event_id"] for e in out}) == len(out)


def test_beta_names_and_interrupted_replies() -> None:
    proto = protocol(beta=True)
    out = proto.translate(ReplyStarted("t", 1, "item_a"))
    out += proto.translate(AudioOut("t", 1, np.zeros(10, np.float32)))
    out += proto.translate(AssistantTextDelta("t", 1, "Once"))
    out += proto.translate(AudioCleared("t", 1))
    out += proto.translate(ReplyDone("t", 1, "item_a", "interrupted", "Once", {}))
    assert "response.audio.delta" in kinds(out) and "response.audio_transcript.delta" in kinds(out)
    assert "response.audio.done" in kinds(out) and "output_audio_buffer.cleared" in kinds(out)
    assert out[3]["part"]["type"] == "audio"
    done = next(e for e in out if e["type"] == "response.done")["response"]
    assert done["status"] == "cancelled" and done["status_details"]["reason"] == "interrupted"
    assert done["output"][0]["status"] == "incomplete"
    failed = proto.translate(ReplyDone("t2", 2, "item_b", "failed", "", {}))
    assert next(e for e in failed if e["type"] == "response.done")["response"]["status"] == "failed"


def test_items_and_errors_translate() -> None:
    proto = protocol()
    assert kinds(proto.translate(InputCleared())) == ["input_audio_buffer.cleared"]
    [user] = proto.translate(ItemAdded("item_1", "user", "Hi", None))
    assert user["item"]["content"] == [{"type": "input_text", "text": "Hi"}] and user["previous_item_id"] is None
    [assistant] = proto.translate(ItemAdded("item_2", "assistant", "Hello", "item_1"))
    assert assistant["item"]["content"][0]["type"] == "output_text" and assistant["previous_item_id"] == "item_1"
    assert protocol(beta=True).translate(ItemAdded("i", "assistant", "x", None))[0]["item"]["content"][0]["type"] == "text"
    [deleted] = proto.translate(ItemDeleted("item_1"))
    assert (deleted["type"], deleted["item_id"]) == ("conversation.item.deleted", "item_1")
    [truncated] = proto.translate(ReplyTruncated("item_2", "Hel", 250))
    assert (truncated["type"], truncated["audio_end_ms"], truncated["transcript"]) == (
        "conversation.item.truncated", 250, "Hel"
    )
    [error] = proto.translate(ErrorEvent("reply_failed", "boom", "evt_1"))
    assert error["error"] == {
        "type": "server_error", "code": "reply_failed", "message": "boom", "param": None, "event_id": "evt_1"
    }
    with pytest.raises(TypeError):
        proto.translate(object())  # type: ignore[arg-type]


def test_g711_matches_the_reference() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop
    ints = np.arange(-32767, 32768, dtype=np.int32)
    pcm = ints.astype("<i2").tobytes()
    samples = (ints / 32767).astype(np.float32)
    codecs = (("g711_ulaw", audioop.lin2ulaw, audioop.ulaw2lin), ("g711_alaw", audioop.lin2alaw, audioop.alaw2lin))
    for codec, encode, decode in codecs:
        wire = AudioFormat(codec, 8_000)
        assert wire.encode(samples) == encode(pcm, 2)
        every = bytes(range(256))
        assert (wire.decode(every) * 32768).astype("<i2").tobytes() == decode(every, 2)


def test_formats() -> None:
    assert parse_format("g711_alaw") == AudioFormat("g711_alaw", 8_000)
    assert parse_format({"type": "audio/pcm", "rate": 16_000}) == AudioFormat("pcm16", 16_000)
    assert parse_format({"type": "audio/pcm"}).ga_object() == {"type": "audio/pcm", "rate": 24_000}
    for bad in ("opus", {"type": "audio/opus"}, {"type": "audio/pcm", "rate": True}, 7):
        with pytest.raises(AudioFormatError):
            parse_format(bad)
    with pytest.raises(AudioFormatError):
        AudioFormat().decode(b"\x00")


def test_settings_changed_elsewhere_are_announced_and_the_base_of_the_next_update() -> None:
    import dataclasses

    from realtime.events import SettingsChanged

    p = protocol()
    p.config = dataclasses.replace(p.config, instructions="Speak like a pirate.")  # as the connection sets it
    [event] = p.translate(SettingsChanged())
    assert event["type"] == "session.updated" and event["session"]["instructions"] == "Speak like a pirate."
    [configure, _] = p.receive(json.dumps({"type": "session.update", "session": {"temperature": 0.4}}))
    assert configure.config.instructions == "Speak like a pirate." and configure.config.temperature == 0.4
