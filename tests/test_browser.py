"""The page in a real browser: headless Debian Chromium whose microphone is a spoken WAV, talking to the
server over WebRTC, both inside a loopback-only network namespace (:mod:`benchmarks.browser`,
:mod:`tests.page_errors`): an answer heard and shown, barge-in, the reasoning, the page's error messages
and reconnecting. Screenshots of the page land in ``out/artifacts/``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from audio.samples import PIPELINE_RATE, read_audio, rms_dbfs
from benchmarks.browser import CHROMIUM, in_loopback_namespace
from realtime.asr import WhisperTranscriber
from tests.conftest import silence, write_question

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "out" / "artifacts"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="a network namespace of its own needs root"),
    pytest.mark.skipif(not Path(CHROMIUM).exists() or not shutil.which("unshare"), reason="needs chromium and unshare"),
]


@pytest.fixture(scope="module")
def whisper() -> WhisperTranscriber:
    return WhisperTranscriber()


def browser_call(
    tmp_path: Path,
    *microphone: np.ndarray,
    until: list[str],
    options: tuple[str, ...] = (),
    then: tuple[np.ndarray, str] | None = None,
) -> tuple[dict, Path]:
    """One call from the page (server and browser in a fresh loopback-only namespace); what it recorded.
    ``then``: (a clip, ``EVENT[#COUNT][:PLAYED_S]``), said once that many of that event arrived and the page
    played that much sound since the first (``benchmarks.browser --then-say CLIP --after ...``)."""
    wav = write_question(tmp_path / "microphone.wav", *microphone)
    out = tmp_path / "call"
    command = [sys.executable, "-m", "benchmarks.browser", str(wav), str(out), "--until", *until, *options]
    if then is not None:
        clip, after = then
        command += ["--then-say", str(write_question(tmp_path / "then.wav", clip)), "--after", after]
    try:
        ran = subprocess.run(in_loopback_namespace(command), cwd=ROOT, capture_output=True, text=True, timeout=540)
    except subprocess.TimeoutExpired as late:
        said = late.stderr.decode(errors="replace") if isinstance(late.stderr, bytes) else late.stderr or ""
        pytest.fail(f"the call did not end within {late.timeout:.0f} s: ...{said[-3000:]}", pytrace=False)
    if ran.returncode:
        pytest.fail(f"the call failed ({ran.returncode}): ...{ran.stderr[-3000:]}", pytrace=False)
    return json.loads((out / "call.json").read_text()), out


def events_of(call: dict, kind: str) -> list[dict]:
    return [e for e in call["events"] if e["type"] == kind]


def test_a_question_spoken_into_the_page_gets_a_spoken_answer(tmp_path, say, whisper) -> None:
    # The lead-in covers the page's start (Chromium starts the file when the microphone opens); the long
    # tail keeps the looped file from asking again.
    # flite's "slt" voice: Whisper base hears "capital" in "kal" as "tap puts a lot" at some crops of the
    # audio after Chromium's noise suppression and gain control.
    question = say("What is the capital of Germany?", "flite:slt")
    call, out = browser_call(tmp_path, silence(3.0), question, silence(40.0), until=["response.latency"])
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(out / "page.png", ARTIFACTS / "webrtc-page.png")

    assert events_of(call, "session.created"), "the page connected and its data channel works"
    heard = events_of(call, "conversation.item.input_audio_transcription.completed")
    assert heard and "germany" in heard[0]["transcript"].lower(), "the server heard the question"
    assert not events_of(call, "response.output_audio.delta"), "reply audio travels as RTP"
    assert events_of(call, "response.done")[0]["response"]["status"] == "completed"

    played = read_audio(out / "reply.wav", PIPELINE_RATE)
    assert rms_dbfs(played) > -50, "the page played the reply"
    assert "berlin" in whisper.transcribe(played).text.lower(), "what the page played says the answer"
    agent = [turn for turn in call["turns"] if turn["role"] == "agent"]
    assert agent and "berlin" in agent[0]["text"].lower(), "the page shows the answer"
    assert "ms after you stopped" in agent[0]["latency"], "the page shows the first-packet delay"
    assert 0 < call["page_first_reply_delay_ms"] < 20_000
    assert call["freed_after_s"] is not None and call["freed_after_s"] < 5, "the page going away frees the session"


@pytest.mark.timing
def test_talking_over_the_reply_stops_it(tmp_path, say) -> None:
    # The user talks over the story once the page has played 1.5 s of it and holds words of it not yet
    # played (its second transcript delta), however late a loaded machine gets there: not at a fixed time
    # of the file, which the reply may start after. If it never does (120 s), the call fails saying so. The
    # interruption is mixed in after Chromium's audio processing; the long tail keeps the file from looping.
    call, out = browser_call(
        tmp_path,
        silence(3.0), say("Please tell me a long story about a brave little dragon."), silence(240.0),
        until=["output_audio_buffer.cleared", "response.latency", "response.latency"], options=("--phone",),
        then=(say("Wait, wait, hold on a moment please."), "response.output_audio_transcript.delta#2:1.5"),
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(out / "page.png", ARTIFACTS / "webrtc-page-phone.png")

    kinds = [e["type"] for e in call["events"]]
    assert "output_audio_buffer.cleared" in kinds, kinds
    cleared = events_of(call, "output_audio_buffer.cleared")[0]
    story = cleared["response_id"]
    done = [e for e in events_of(call, "response.done") if e["response"]["id"] == story]
    assert done and done[0]["response"]["status"] == "cancelled", kinds
    done = done[0]
    started = [e["at_s"] for e in events_of(call, "input_audio_buffer.speech_started")]
    assert len(started) >= 2 and started[1] <= cleared["at_s"], "the user's speech over the reply stopped it"

    played = read_audio(out / "speaker.wav", call["rate"])
    rate = call["rate"]

    def level(start_s: float, end_s: float) -> float:
        return rms_dbfs(played[int(start_s * rate) : int(end_s * rate)])

    spoken = [e["at_s"] for e in events_of(call, "response.output_audio_transcript.delta") if e["response_id"] == story]
    said = call["then_said_at_s"]
    assert spoken and said is not None and spoken[0] < said < cleared["at_s"], "the user talked over the story"
    assert level(spoken[0], said) > -40, "the story was playing when the user talked over it"
    # Silent until the next reply's first sound (its audio leaves with output_audio_buffer.started; under load the
    # next reply may be created within 0.5 s of the story being cleared, but not sound that soon)
    later = [e["at_s"] for e in events_of(call, "output_audio_buffer.started") if e["at_s"] > cleared["at_s"]]
    quiet_until = min(later, default=len(played) / rate)
    assert quiet_until - cleared["at_s"] > 0.5, "a moment after the story was cleared to hear whether it went on"
    assert level(cleared["at_s"] + 0.3, quiet_until) < -60, "no audio of the story after it was cleared"
    shown = next(turn for turn in call["turns"] if turn["role"] == "agent")
    heard = done["response"]["output"][0]["content"][0]["transcript"]
    assert shown["unheard"].strip(), "the page strikes out the words that were never played"
    assert shown["text"].removesuffix(shown["unheard"]).split() == heard.split()


def test_the_page_shows_the_reasoning_as_it_streams(tmp_path, say) -> None:
    call, _ = browser_call(tmp_path, silence(3.0), say("What is the capital of France?"), silence(40.0),
                           until=["response.latency"], options=("--reasoning", "16"))
    thought = "".join(e["delta"] for e in events_of(call, "response.thinking.delta"))
    assert thought.strip(), "a reasoning budget streams reasoning"
    agent = next(turn for turn in call["turns"] if turn["role"] == "agent")
    assert agent["reasoning"] == thought, "the page shows every reasoning delta"
    spoken = "".join(e["delta"] for e in events_of(call, "response.output_audio_transcript.delta"))
    assert agent["text"] == spoken, "the answer is shown apart from the reasoning"


def test_the_page_says_what_went_wrong_and_reconnects(tmp_path) -> None:
    wav = write_question(tmp_path / "microphone.wav", silence(60.0))
    out = tmp_path / "said.json"
    command = in_loopback_namespace([sys.executable, "-m", "tests.page_errors", str(wav), str(out)])
    subprocess.run(command, cwd=ROOT, check=True, timeout=300)
    said = json.loads(out.read_text())
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(out.with_suffix(".png"), ARTIFACTS / "webrtc-page-server-gone.png")
    assert "permission was refused" in said["refused"]
    assert "No microphone was found" in said["no_microphone"]
    assert "server ended the session" in said["server_stopped"]
    assert "not reachable" in said["server_gone"]
    assert (said["reconnected"], said["sessions"]) == ("Listening", 2), "Try again connects to the server that came back"
