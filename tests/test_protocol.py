"""The Sans-I/O protocol core, byte for byte, with no sockets and no models."""

from __future__ import annotations

import base64
import json
import warnings

import numpy as np
import pytest

from audio.codecs import AudioFormat, AudioFormatError, parse_format
from realtime.commands import (
    AddItem,
    AppendAudio,
    CancelResponse,
    ClearInput,
    CommitInput,
    Configure,
    CreateResponse,
    DeleteMessage,
    RetrieveItem,
    Send,
    TruncateMessage,
)
from realtime.conversation import Message, Truncation
from realtime.events import (
    AssistantTextDelta,
    AudioCleared,
    AudioOut,
    AudioPaused,
    AudioResumed,
    ErrorEvent,
    IdleTimeout,
    InputCleared,
    InputCommitted,
    ItemAdded,
    ItemDeleted,
    ItemRetrieved,
    ReasoningDelta,
    ReasoningDone,
    ReplyDone,
    ReplyStarted,
    ReplyTruncated,
    SpeechStarted,
    SpeechStopped,
    ToolCallDelta,
    ToolCallDone,
    ToolCallStarted,
    UserTranscriptFinal,
    UserTranscriptPartial,
)
from realtime.policy import EAGERNESS
from realtime.protocol import RealtimeProtocol
from realtime.session.config import ResponseOptions
from realtime.tools import Tool, ToolUse


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
        ('{"type": "session.update", "session": {"temperature": NaN}}', "invalid_json"),  # Python's json reads NaN; JSON has none
        ('{"type": "session.update", "session": {"temperature": 1e999}}', "invalid_json"),  # not read as infinity
        ("[" * 100_000, "invalid_json"),  # nested deeper than the parser goes
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
        (json.dumps({"type": "session.update", "session": {"turn_detection": {"idle_timeout_ms": -5}}}), "invalid_value"),
        (json.dumps({"type": "session.update", "session": {"turn_detection": {"min_interruption_words": None}}}), "invalid_value"),
        (json.dumps({"type": "session.update", "session": {"turn_detection": {"min_interruption_speech_ms": -5}}}), "invalid_value"),
        (json.dumps({"type": "session.update", "session": {"turn_detection": {"backchannels": "yeah"}}}), "invalid_value"),
        (json.dumps({"type": "session.update", "session": {"turn_detection": {"backchannels": [1]}}}), "invalid_value"),
        (json.dumps({"type": "session.update", "session": {"max_output_tokens": 0}}), "invalid_value"),
        (json.dumps({"type": "session.update", "session": {"temperature": 3}}), "invalid_value"),
        (json.dumps({"type": "session.update", "session": {"reasoning": {"budget_tokens": -2}}}), "invalid_value"),
        (json.dumps({"type": "conversation.item.create", "item": {"type": "function_call"}}), "invalid_value"),
        (json.dumps({"type": "conversation.item.create", "item": {"type": "function_call_output", "call_id": 1}}),
         "invalid_value"),
        (json.dumps({"type": "conversation.item.create", "item": {"type": "mcp_call"}}), "invalid_value"),
        (json.dumps({"type": "conversation.item.create", "item": "hello"}), "invalid_value"),
        (json.dumps({"type": "conversation.item.create", "item": {"id": 5, "role": "user"}}), "invalid_value"),
        (json.dumps({"type": "conversation.item.create", "previous_item_id": 3,
                     "item": {"role": "user", "content": [{"type": "input_text", "text": "Hi"}]}}), "invalid_value"),
        (json.dumps({"type": "conversation.item.retrieve"}), "invalid_value"),
        (json.dumps({"type": "session.update", "session": {"vibes": "calm"}}), "unknown_parameter"),
        (json.dumps({"type": "session.update", "session": {"audio": {"output": {"pitch": 2}}}}), "unknown_parameter"),
        (json.dumps({"type": "session.update", "session": {"voice": "gandalf"}}), "invalid_value"),
        (json.dumps({"type": "session.update", "session": {"voice": ["alloy"]}}), "invalid_value"),
        (json.dumps({"type": "session.update", "session": {"audio": {"input": {"format": {"type": ["audio/pcm"]}}}}}), "invalid_value"),
        (json.dumps({"type": "session.update", "session": {"tools": {}}}), "invalid_value"),
        (json.dumps({"type": "session.update", "session": {"tools": [{"type": "mcp"}]}}), "invalid_value"),
        (json.dumps({"type": "session.update", "session": {"tools": [{"name": "bad name"}]}}), "invalid_value"),
        (json.dumps({"type": "session.update", "session": {"tools": [{"name": "f", "parameters": {"type": "array"}}]}}),
         "invalid_value"),
        (json.dumps({"type": "session.update", "session": {"tools": [{"name": "f"}, {"name": "f"}]}}), "invalid_value"),
        (json.dumps({"type": "session.update", "session": {"tool_choice": "sometimes"}}), "invalid_value"),
        (json.dumps({"type": "session.update", "session": {"tool_choice": {"type": "function", "name": "nope"}}}),
         "invalid_value"),
        (json.dumps({"type": "session.update", "session": {"output_modalities": ["video"]}}), "invalid_value"),
        (json.dumps({"type": "session.update", "session": {"extensions": ["telepathy"]}}), "invalid_value"),
        (json.dumps({"type": "response.create", "response": []}), "invalid_value"),
        (json.dumps({"type": "response.create", "response": {"colour": "red"}}), "unknown_parameter"),
        (json.dumps({"type": "response.create", "response": {"conversation": "other"}}), "invalid_value"),
        (json.dumps({"type": "response.create", "response": {"interruptible": "no"}}), "invalid_value"),
        (json.dumps({"type": "response.create", "response": {"metadata": {"k": 1}}}), "invalid_value"),
        (json.dumps({"type": "response.create", "response": {"input": "hi"}}), "invalid_value"),
        (json.dumps({"type": "response.create", "response": {"input": [{"type": "item_reference"}]}}), "invalid_value"),
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


def test_semantic_vad_sets_the_eagerness_pauses_and_back() -> None:
    proto = protocol()
    configure, updated = receive(proto, {"type": "session.update", "session": {"audio": {"input": {"turn_detection": {
        "type": "semantic_vad", "eagerness": "high", "silence_duration_ms": 5000}}}}})
    policy = configure.config.policy
    assert (policy.eagerness, policy.complete_silence_ms, policy.end_of_turn_silence_ms) == ("high", *EAGERNESS["high"])
    detection = updated.event["session"]["audio"]["input"]["turn_detection"]
    assert detection["type"] == "semantic_vad" and detection["eagerness"] == "high"
    configure, _ = receive(proto, {"type": "session.update", "session": {"turn_detection": {"type": "semantic_vad"}}})
    assert configure.config.policy.eagerness == "auto"
    configure, updated = receive(proto, {"type": "session.update", "session": {"turn_detection": {"type": "server_vad"}}})
    policy = configure.config.policy
    assert (policy.eagerness, policy.complete_silence_ms, policy.end_of_turn_silence_ms) == (None, None, 480)
    assert updated.event["session"]["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    bad = {"type": "session.update", "session": {"turn_detection": {"type": "semantic_vad", "eagerness": "eager"}}}
    assert error_code(receive(proto, bad)) == "invalid_value"


def test_truncation_is_the_references() -> None:
    proto = protocol()
    configure, updated = receive(proto, {"type": "session.update", "session": {"truncation": {
        "type": "retention_ratio", "retention_ratio": 0.5, "token_limits": {"post_instructions": 1000}}}})
    assert configure.config.truncation == Truncation(0.5, 1000, auto=False)
    assert updated.event["session"]["truncation"] == {"type": "retention_ratio", "retention_ratio": 0.5,
                                                      "token_limits": {"post_instructions": 1000}}
    configure, updated = receive(proto, {"type": "session.update", "session": {"truncation": "auto"}})
    assert configure.config.truncation == Truncation() and updated.event["session"]["truncation"] == "auto"
    for bad in ("disabled", "sometimes", {"type": "retention_ratio", "retention_ratio": 2},
                {"type": "retention_ratio", "retention_ratio": 0.5, "token_limits": {"post_instructions": 0}}, {"retention_ratio": 0.5}):
        [error] = proto.receive(json.dumps({"type": "session.update", "session": {"truncation": bad}}))
        assert error.event["error"]["code"] == "invalid_value" and error.event["error"]["param"].startswith("session.truncation"), bad


def test_turn_taking_settings_and_the_idle_timeout() -> None:
    proto = protocol()
    configure, updated = receive(proto, {"type": "session.update", "session": {"audio": {"input": {"turn_detection": {
        "type": "server_vad", "idle_timeout_ms": 6000, "idle_hangup_ms": 4000, "min_interruption_ms": None,
        "min_interruption_words": 2, "min_interruption_speech_ms": 300, "backchannels": ["Yeah", "sure thing"]}}}}})
    config = configure.config
    assert (config.idle_timeout_ms, config.idle_hangup_ms, config.policy.min_interruption_speech_ms) == (6000, 4000, 300)
    assert (config.policy.min_interruption_ms, config.policy.min_interruption_words, config.policy.backchannels) == (
        None, 2, ("yeah", "sure thing"))
    detection = updated.event["session"]["audio"]["input"]["turn_detection"]
    assert detection["idle_timeout_ms"] == 6000 and "min_interruption_ms" not in detection, "extensions only when asked"
    _, updated = receive(proto, {"type": "session.update", "session": {"extensions": ["pause"], "turn_detection": {
        "min_interruption_ms": 800, "idle_timeout_ms": None}}})
    detection = updated.event["session"]["audio"]["input"]["turn_detection"]
    assert (detection["min_interruption_ms"], detection["backchannels"], detection["idle_hangup_ms"]) == (800, ["yeah", "sure thing"], 4000)
    assert detection["min_interruption_speech_ms"] == 300
    assert detection["idle_timeout_ms"] is None
    [timeout] = proto.translate(IdleTimeout(16_000, 112_000, "item_u"))
    assert (timeout["type"], timeout["audio_start_ms"], timeout["audio_end_ms"], timeout["item_id"]) == (
        "input_audio_buffer.timeout_triggered", 1000, 7000, "item_u")
    beta = protocol(beta=True)
    assert beta.translate(IdleTimeout(0, 16_000, "item_u")) == [], "the beta protocol has no such event"
    _, updated = receive(beta, {"type": "session.update", "session": {"extensions": ["pause"]}})
    assert "idle_timeout_ms" not in updated.event["session"]["turn_detection"]


def test_short_end_of_turn_caps_speculation() -> None:
    configure, _ = receive(protocol(), {"type": "session.update", "session": {"turn_detection": {"silence_duration_ms": 100}}})
    assert configure.config.policy.speculate_silence_ms == 100


@pytest.mark.parametrize(
    "event,command",
    [
        ({"type": "input_audio_buffer.commit", "event_id": "e1"}, CommitInput("e1")),
        ({"type": "input_audio_buffer.clear"}, ClearInput(None)),
        ({"type": "response.create"}, CreateResponse(ResponseOptions(), None)),
        ({"type": "conversation.item.retrieve", "item_id": "item_9", "event_id": "e3"}, RetrieveItem("item_9", "e3")),
        ({"type": "response.cancel", "event_id": "e2"}, CancelResponse("e2")),
        ({"type": "output_audio_buffer.clear"}, CancelResponse(None)),
        ({"type": "conversation.item.delete", "item_id": "item_1"}, DeleteMessage("item_1", None)),
        ({"type": "conversation.item.truncate", "item_id": "item_2", "content_index": 0, "audio_end_ms": 1500},
         TruncateMessage("item_2", 1500, None)),
    ],
)
def test_commands(event: dict, command: object) -> None:
    assert receive(protocol(), event) == [command]


def added(event: dict) -> tuple[Message, str | None]:
    [command] = receive(protocol(), {"type": "conversation.item.create", **event})
    assert isinstance(command, AddItem)
    return command.item, command.previous_item_id


def test_a_spoken_user_item_carries_its_audio() -> None:
    proto = protocol()
    pcm = base64.b64encode((np.full(2_400, 0.25) * 32767).astype("<i2").tobytes()).decode()
    [command] = receive(proto, {"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": [
        {"type": "input_audio", "audio": pcm}, {"type": "input_text", "text": "and"}]}})
    assert isinstance(command, AddItem) and command.item.text == "and"
    assert command.audio is not None and len(command.audio) == 1_600 and abs(float(command.audio[800]) - 0.25) < 0.01
    spoken = {"role": "assistant", "content": [{"type": "input_audio", "audio": pcm}]}
    assert error_code(receive(proto, {"type": "conversation.item.create", "item": spoken})) == "invalid_value"
    broken = {"role": "user", "content": [{"type": "input_audio", "audio": "@@"}]}
    assert error_code(receive(proto, {"type": "conversation.item.create", "item": broken})) == "invalid_audio"
    heard = Message("user", "hello", "item_5", audio_ms=500)
    added, _ = proto.translate(ItemAdded(heard, None))
    assert added["item"]["content"] == [{"type": "input_audio", "transcript": "hello"}]


def test_items_of_every_kind_are_read() -> None:
    user, previous = added({"item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]}})
    assert (user.role, user.text, user.kind, previous) == ("user", "Hi", "message", None)
    two, previous = added({"previous_item_id": "root", "item": {"id": "mine", "role": "assistant", "content": [
        {"type": "output_text", "text": "A"}, {"type": "output_audio", "transcript": "B"}]}})
    assert (two.id, two.text, previous) == ("mine", "A B", "root")
    call, _ = added({"item": {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"}})
    assert (call.kind, call.call_id, call.name, call.text) == ("function_call", "c1", "get_weather", "{}")
    output, _ = added({"item": {"type": "function_call_output", "call_id": "c1", "output": "{\"t\": 20}"}})
    assert (output.kind, output.call_id, output.text) == ("function_call_output", "c1", '{"t": 20}')


WEATHER = {"type": "function", "name": "get_weather", "description": "The weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def test_tools_modalities_voice_and_extensions_in_the_session() -> None:
    proto = protocol()
    configure, updated = receive(proto, {"type": "session.update", "session": {
        "tools": [WEATHER], "tool_choice": {"type": "function", "name": "get_weather"}, "output_modalities": ["text"],
        "audio": {"output": {"voice": "joe"}}, "extensions": ["latency"], "tracing": None}})
    config = configure.config
    assert config.tools == ToolUse((Tool("get_weather", "The weather in a city", WEATHER["parameters"]),), "get_weather")
    assert config.audio_output is False and proto.extensions == {"latency"}
    session = updated.event["session"]
    assert session["tools"] == [WEATHER] and session["tool_choice"] == {"type": "function", "name": "get_weather"}
    assert session["output_modalities"] == ["text"] and session["extensions"] == ["latency"]
    configure, _ = receive(proto, {"type": "session.update", "session": {"tool_choice": "none", "modalities": ["audio", "text"]}})
    assert configure.config.tools.choice == "none" and configure.config.tools.tools == config.tools.tools
    assert configure.config.audio_output is True
    proto.config = configure.config
    beta = protocol(beta=True)
    _, updated = receive(beta, {"type": "session.update", "session": {"modalities": ["text"], "voice": "joe"}})
    assert updated.event["session"]["modalities"] == ["text"] and updated.event["session"]["tool_choice"] == "auto"
    proto.spoke = True
    assert error_code(receive(proto, {"type": "session.update", "session": {"voice": "gandalf"}})) == "cannot_update_voice"
    assert receive(proto, {"type": "session.update", "session": {"voice": "alloy"}})[1].event["type"] == "session.updated"


def test_response_options_are_read() -> None:
    proto = protocol()
    receive(proto, {"type": "session.update", "session": {"tools": [WEATHER]}})
    proto.config = receive(proto, {"type": "session.update", "session": {"tools": [WEATHER]}})[0].config
    [command] = receive(proto, {"type": "response.create", "event_id": "e9", "response": {
        "instructions": "Classify.", "tool_choice": "required", "max_output_tokens": 20, "output_modalities": ["text"],
        "metadata": {"topic": "mood"}, "conversation": "none", "voice": "joe", "interruptible": False,
        "input": [{"type": "item_reference", "id": "item_1"},
                  {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "I am happy"}]}]}})
    assert isinstance(command, CreateResponse) and command.event_id == "e9"
    options = command.options
    assert (options.instructions, options.max_answer_tokens, options.audio_output, options.metadata, options.out_of_band) == (
        "Classify.", 20, False, {"topic": "mood"}, True)
    assert not options.interruptible
    assert options.tools == ToolUse(proto.config.tools.tools, "required")
    assert options.input is not None and options.input[0] == "item_1" and options.input[1].text == "I am happy"
    [command] = receive(proto, {"type": "response.create", "response": {"tools": [], "metadata": None,
                                                                          "max_response_output_tokens": "inf"}})
    assert command.options.tools == ToolUse((), "auto") and command.options.metadata is None
    assert command.options.max_answer_tokens == 4096 and not command.options.out_of_band and command.options.interruptible


def kinds(events: list[dict]) -> list[str]:
    return [e["type"] for e in events]


def test_a_spoken_turn_translates_in_order() -> None:
    proto = protocol()
    proto.extensions = frozenset({"thinking", "latency"})
    out = []
    for item in [
        SpeechStarted(16_000, "item_u"),
        UserTranscriptPartial("item_u", "What is"),
        UserTranscriptPartial("item_u", "What is the capital"),
        UserTranscriptPartial("item_u", "Where is the capital"),
        SpeechStopped(48_000, "item_u"),
        InputCommitted("item_u", None),
        UserTranscriptFinal("turn_1", "item_u", "What is the capital of France?", 2.0),
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
        "conversation.item.added",
        "conversation.item.input_audio_transcription.completed",
        "conversation.item.done",
        "response.created",
        "response.thinking.delta",
        "response.thinking.done",
        "response.output_item.added",
        "conversation.item.added",
        "response.content_part.added",
        "response.output_audio_transcript.delta",
        "response.output_audio.delta",
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
        "response.latency",
    ]
    assert out[0]["audio_start_ms"] == 1000 and out[4]["audio_end_ms"] == 3000
    assert [(e["delta"], e["transcript"]) for e in out[1:4]] == [
        ("What is", "What is"), (" the capital", "What is the capital"), ("Where is the capital", "Where is the capital")]
    assert out[7]["usage"] == {"type": "duration", "seconds": 2.0}
    assert out[8]["item"]["content"] == [{"type": "input_audio", "transcript": "What is the capital of France?"}]
    assert out[13]["previous_item_id"] == "item_u" and out[13]["item"]["role"] == "assistant"
    audio = out[16]
    assert audio["response_id"] == "resp_turn_1" and audio["item_id"] == "item_a"
    assert base64.b64decode(audio["delta"]) == bytes(960)
    done = out[22]["response"]
    assert done["status"] == "completed"
    assert done["output"][0]["content"][0] == {"type": "output_audio", "transcript": "Paris."}
    assert out[23]["latency"] == {"first_packet_delay_ms": 700.0}
    assert len({e["event_id"] for e in out}) == len(out)


def test_extension_events_only_for_clients_that_ask() -> None:
    proto = protocol()
    out = proto.translate(ReplyStarted("t", 1, "item_a"))
    out += proto.translate(ReasoningDelta("t", 1, "Hmm"))
    out += proto.translate(ReasoningDone("t", 1, "Hmm."))
    out += proto.translate(ReplyDone("t", 1, "item_a", "completed", "", {}))
    assert kinds(out) == ["response.created", "response.done"]
    assert out[1]["response"]["output"] == []  # no words, no message
    assert proto.translate(AudioOut("gone", 1, np.zeros(4, np.float32))) == []  # a reply the client never saw begin


def test_a_paused_and_resumed_reply_is_told_to_clients_that_ask() -> None:
    proto = protocol()
    proto.translate(ReplyStarted("t", 1, "item_a"))
    assert proto.translate(AudioPaused("t", 1, 1200)) == [] and proto.translate(AudioResumed("t", 1)) == []
    receive(proto, {"type": "session.update", "session": {"extensions": ["pause"]}})
    paused, resumed = proto.translate(AudioPaused("t", 1, 1200)) + proto.translate(AudioResumed("t", 1))
    assert (paused["type"], paused["response_id"], paused["audio_end_ms"]) == ("output_audio_buffer.paused", "resp_t", 1200)
    assert (resumed["type"], resumed["response_id"]) == ("output_audio_buffer.resumed", "resp_t")


def test_beta_names_and_interrupted_replies() -> None:
    proto = protocol(beta=True)
    out = proto.translate(ReplyStarted("t", 1, "item_a"))
    out += proto.translate(AssistantTextDelta("t", 1, "Once"))
    out += proto.translate(AudioOut("t", 1, np.zeros(10, np.float32)))
    out += proto.translate(AudioCleared("t", 1))
    out += proto.translate(ReplyDone("t", 1, "item_a", "interrupted", "Once", {}))
    assert "response.audio.delta" in kinds(out) and "response.audio_transcript.delta" in kinds(out)
    assert "response.audio.done" in kinds(out) and "output_audio_buffer.cleared" in kinds(out)
    assert "conversation.item.created" in kinds(out) and "conversation.item.done" not in kinds(out)
    assert next(e for e in out if e["type"] == "response.content_part.added")["part"]["type"] == "audio"
    done = next(e for e in out if e["type"] == "response.done")["response"]
    assert done["status"] == "cancelled" and done["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
    assert done["output"][0]["status"] == "incomplete"
    assert done["output"][0]["content"] == [{"type": "audio", "transcript": "Once"}]
    proto.translate(ReplyStarted("t2", 2, "item_b"))
    failed = proto.translate(ReplyDone("t2", 2, "item_b", "failed", "", {}))
    details = next(e for e in failed if e["type"] == "response.done")["response"]["status_details"]
    assert details == {"type": "failed", "error": {"type": "server_error", "code": "reply_failed"}}
    proto.translate(ReplyStarted("t3", 3, "item_c"))
    cancelled = proto.translate(ReplyDone("t3", 3, "item_c", "cancelled", "", {}))
    assert cancelled[-1]["response"]["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}


def test_a_reply_that_calls_tools_then_speaks() -> None:
    proto = protocol()
    out = proto.translate(ReplyStarted("t", 1, "item_m", metadata={"k": "v"}))
    out += proto.translate(ToolCallStarted("t", 1, "item_c1", "call_1", "get_weather"))
    out += proto.translate(ToolCallDelta("t", 1, "item_c1", '{"city": '))
    out += proto.translate(ToolCallDelta("t", 1, "item_c1", '"Paris"}'))
    out += proto.translate(ToolCallDone("t", 1, "item_c1", "call_1", "get_weather", '{"city": "Paris"}'))
    out += proto.translate(ToolCallStarted("t", 1, "item_c2", "call_2", "get_time"))
    out += proto.translate(AssistantTextDelta("t", 1, "Let me check."))
    out += proto.translate(ReplyDone("t", 1, "item_m", "completed", "Let me check.", {}))
    assert kinds(out) == [
        "response.created",
        "response.output_item.added", "conversation.item.added",
        "response.function_call_arguments.delta", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done", "conversation.item.done",
        "response.output_item.added", "conversation.item.added",
        "response.output_item.added", "conversation.item.added", "response.content_part.added",
        "response.output_audio_transcript.delta",
        "response.output_audio.done", "response.output_audio_transcript.done", "response.content_part.done",
        "response.output_item.done", "conversation.item.done",
        "response.done",
    ]
    assert out[0]["response"]["metadata"] == {"k": "v"}
    assert out[3]["call_id"] == "call_1" and out[3]["output_index"] == 0
    assert (out[5]["name"], out[5]["arguments"]) == ("get_weather", '{"city": "Paris"}')
    assert out[13]["output_index"] == 2
    output = out[-1]["response"]["output"]
    assert [(i["type"], i["status"]) for i in output] == [
        ("function_call", "completed"), ("function_call", "incomplete"), ("message", "completed")]
    assert output[0]["arguments"] == '{"city": "Paris"}' and out[-1]["response"]["metadata"] == {"k": "v"}
    assert proto.translate(ToolCallDelta("gone", 1, "i", "x")) == []
    assert proto.translate(ToolCallDone("gone", 1, "i", "c", "f", "{}")) == []
    assert proto.translate(ToolCallStarted("gone", 1, "i", "c", "f")) == []
    assert proto.translate(ReplyDone("gone", 1, "i", "completed", "", {})) == []


def test_text_replies_out_of_the_conversation() -> None:
    for beta, delta, done in ((False, "response.output_text.delta", "response.output_text.done"),
                              (True, "response.text.delta", "response.text.done")):
        proto = protocol(beta=beta)
        out = proto.translate(ReplyStarted("t", 1, "item_m", audio=False, out_of_band=True))
        out += proto.translate(AssistantTextDelta("t", 1, "happy"))
        out += proto.translate(ReplyDone("t", 1, "item_m", "completed", "happy", {}))
        assert kinds(out) == [
            "response.created", "response.output_item.added", "response.content_part.added", delta, done,
            "response.content_part.done", "response.output_item.done", "response.done"]
        response = out[-1]["response"]
        assert response["conversation_id"] is None
        assert response["modalities" if beta else "output_modalities"] == ["text"]
        assert response["output"][0]["content"] == [{"type": "text" if beta else "output_text", "text": "happy"}]
    assert proto.translate(AssistantTextDelta("gone", 1, "x")) == []


def test_items_and_errors_translate() -> None:
    proto = protocol()
    assert kinds(proto.translate(InputCleared())) == ["input_audio_buffer.cleared"]
    user, done = proto.translate(ItemAdded(Message("user", "Hi", "item_1"), None))
    assert user["type"] == "conversation.item.added" and done["type"] == "conversation.item.done"
    assert user["item"]["content"] == [{"type": "input_text", "text": "Hi"}] and user["previous_item_id"] is None
    assistant, _ = proto.translate(ItemAdded(Message("assistant", "Hello", "item_2"), "item_1"))
    assert assistant["item"]["content"][0]["type"] == "output_text" and assistant["previous_item_id"] == "item_1"
    [beta] = protocol(beta=True).translate(ItemAdded(Message("assistant", "x", "i"), None))
    assert beta["type"] == "conversation.item.created" and beta["item"]["content"][0]["type"] == "text"
    call = Message("assistant", "{}", "item_3", kind="function_call", call_id="c1", name="f")
    [retrieved] = proto.translate(ItemRetrieved(call, "evt_2"))
    assert retrieved["type"] == "conversation.item.retrieved"
    assert retrieved["item"] == {"id": "item_3", "object": "realtime.item", "status": "completed", "type": "function_call",
                                 "call_id": "c1", "name": "f", "arguments": "{}"}
    output = Message("user", "20 C", "item_4", kind="function_call_output", call_id="c1")
    added_output, _ = proto.translate(ItemAdded(output, "item_3"))
    assert added_output["item"]["type"] == "function_call_output" and added_output["item"]["output"] == "20 C"
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
