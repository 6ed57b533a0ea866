"""The command line's error contract: a user's mistake is one clean line and exit status 2, before any model loads;
an internal bug is not caught and keeps its traceback. Also the error tree itself, and how ``bench`` is found."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from audio.errors import AgentError
from realtime import cli

ROOT = Path(__file__).resolve().parents[1]
REALTIME = Path(sys.executable).with_name("realtime")  # the installed console script, beside the venv's python


def realtime(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REALTIME), *args], cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["respond", "missing.wav", "-o", "x.wav"], "error: missing.wav: no such file"),
        (["respond", "missing.wav", "-o", "x.wav", "--brain", "step-audio-r1"],
         "error: --brain step-audio-r1 needs --model-dir, a local checkpoint directory"),
        (["respond", "missing.wav", "-o", "x.wav", "--brain", "openai-compatible", "--model", "m"],
         "error: --brain openai-compatible needs --base-url (e.g. http://127.0.0.1:8000/v1) and --model"),
        (["respond", "missing.wav", "-o", "nowhere/x.wav"], "error: missing.wav: no such file"),
        (["respond", "missing.wav", "-o", "x.wav", "--reasoning-mode", "paced"],
         "error: --reasoning-mode paced needs --brain step-audio-r1 (the audio LLM in this process); "
         "--brain embedded takes --reasoning-mode budget"),
        (["respond", "missing.wav", "-o", "x.wav", "--asr-rescore", "--asr-beam", "1"],
         "error: --asr-rescore rescores the beam's hypotheses: it needs --asr-beam 2 or more"),
        (["llm-server", "--model-path", "missing.gguf"], "error: --model-path missing.gguf: no GGUF model file there"),
        (["bench", "--profiles", "accurate+loud"],
         "error: unknown profile 'accurate+loud': choose from fast, accurate, each optionally followed by +rescore"),
        (["bench", "--transports", "websocket,pigeon"], "error: unknown transports: pigeon (choose from websocket, webrtc)"),
        (["bench", "--budgets", "0,lots"],
         "error: --budgets takes comma-separated whole numbers from 0, e.g. 1,2,4 (got '0,lots')"),
        (["bench", "--concurrency", "0,2"],
         "error: --concurrency takes comma-separated whole numbers from 1, e.g. 1,2,4 (got '0,2')"),
    ],
)
def test_a_user_error_is_one_clean_line_and_status_2(tmp_path: Path, args: list[str], message: str) -> None:
    done = realtime(*args, cwd=tmp_path)
    assert (done.returncode, done.stderr, done.stdout) == (2, message + "\n", "")
    assert not list(tmp_path.iterdir()), "nothing is written"


def test_a_missing_output_directory_is_found_before_loading(tmp_path: Path) -> None:
    question = tmp_path / "q.wav"
    question.write_bytes(b"")  # only its existence matters: the output is checked before the input is read
    done = realtime("respond", "q.wav", "-o", "nowhere/x.wav", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (2, "error: nowhere/x.wav: no such directory 'nowhere' to write to\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["respond", "q.wav", "-o", "x.wav", "--brain", "nope"], "argument --brain: invalid choice: 'nope'"),
        (["serve", "--end-of-turn-ms", "-5"], "argument --end-of-turn-ms: expected a whole number, 0 or more, not '-5'"),
        (["serve", "--output-rate", "0"], "argument --output-rate: expected a whole number, 1 or more, not '0'"),
        (["serve", "--asr-beam", "0"], "argument --asr-beam: expected a whole number, 1 or more, not '0'"),
        (["serve", "--port", "70000"], "argument --port: expected a whole number, 0-65535, not '70000'"),
        (["serve", "--ice-server", "example.org"], "argument --ice-server: not a STUN or TURN server: 'example.org'"),
        (["serve", "--mqtt", "http://broker"], "argument --mqtt: MQTT URL 'http://broker': expected mqtt://host[:port]"),
        (["mic", "--mqtt", "mqtt://broker", "--mqtt-prefix", "a/#"],
         "argument --mqtt-prefix: invalid MQTT topic prefix 'a/#'"),
        (["bench", "--quick", "--full"], "argument --full: not allowed with argument --quick"),
        (["llm-server", "--prompt-cache-mib", "-1"], "argument --prompt-cache-mib: expected a whole number, 0 or more, not '-1'"),
    ],
)
def test_a_bad_argument_is_argparse_s_error(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as stopped:
        cli.main(args)
    assert stopped.value.code == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith(f"realtime {args[0]}: error: {message}"), last


def test_bad_arguments_through_the_console_script(tmp_path: Path) -> None:
    done = realtime("respond", "q.wav", "-o", "x.wav", "--brain", "nope", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1].startswith("realtime respond: error: argument --brain: invalid choice: 'nope'")


def test_an_agent_error_is_reported(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from realtime import assets

    def corrupt(*, reverify: bool) -> dict[str, Path]:
        raise assets.ModelIntegrityError("model.gguf: sha256 does not match the pinned one")

    monkeypatch.setattr(assets, "prepare_all", corrupt)
    assert cli.main(["models"]) == 2
    assert capsys.readouterr().err == "error: model.gguf: sha256 does not match the pinned one\n"


@pytest.mark.parametrize("bug", [RuntimeError("an internal bug"), ValueError("not the user's"), KeyError("state")])
def test_an_unexpected_exception_is_not_caught(monkeypatch: pytest.MonkeyPatch, bug: Exception) -> None:
    from realtime import assets

    def broken(*, reverify: bool) -> dict[str, Path]:
        raise bug

    monkeypatch.setattr(assets, "prepare_all", broken)
    with pytest.raises(type(bug)) as raised:
        cli.main(["models"])
    assert raised.value is bug


ERRORS = {
    # class: (module, the builtin base its callers may still catch)
    "AudioFileError": ("audio.samples", ValueError),
    "AudioFormatError": ("audio.codecs", ValueError),
    "ModelIntegrityError": ("realtime.assets", RuntimeError),
    "CheckpointError": ("realtime.step_audio.config", RuntimeError),
    "DecoderError": ("realtime.decoder", RuntimeError),
    "ServerUnavailable": ("realtime.chat_client", RuntimeError),
    "DeviceError": ("realtime.mic", ValueError),
    "ControlError": ("realtime.mqtt", ValueError),
    "SignallingError": ("realtime.webrtc", ValueError),
    "ProtocolError": ("realtime.protocol", ValueError),
    "CosyVoiceError": ("tts.cosyvoice", RuntimeError),
    "CosyVoiceNotInstalled": ("tts.cosyvoice", ImportError),
    "CosyVoiceFileError": ("tts.cosyvoice", FileNotFoundError),
    "UsageError": ("realtime.errors", AgentError),
    "TurnStateError": ("realtime.errors", AgentError),
    "BrainStateError": ("realtime.errors", AgentError),
    "SessionClosedError": ("realtime.errors", AgentError),
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_every_error_raised_on_purpose_is_an_agent_error(name: str) -> None:
    module, builtin = ERRORS[name]
    if module == "realtime.step_audio.config":
        pytest.importorskip("transformers")
    error = getattr(importlib.import_module(module), name)
    assert issubclass(error, AgentError) and issubclass(error, builtin)
    assert name in (ROOT / "realtime" / "errors.py").read_text(), "the tree in realtime.errors' docstring names it"


def test_the_product_never_imports_benchmarks() -> None:
    for path in (ROOT / "realtime").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            assert not any(name.split(".")[0] == "benchmarks" for name in names), f"{path} imports {names}"


def test_bench_arrives_through_its_entry_point() -> None:
    [bench] = [entry for entry in entry_points(group=cli.COMMANDS_GROUP) if entry.name == "bench"]
    assert bench.value == "benchmarks.cli:register"
    args = cli.build_parser().parse_args(["bench", "--label", "x"])
    assert args.handler.__module__ == "benchmarks.cli"
