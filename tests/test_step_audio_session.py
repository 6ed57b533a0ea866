"""The Step-Audio-R1 brain inside the voice session and the CLI, on the tiny random twin (same loader)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from realtime.models import Models  # noqa: E402
from realtime.session import SessionConfig  # noqa: E402
from realtime.step_audio import StepAudioBrain  # noqa: E402
from realtime.step_audio.tiny import write_tiny_checkpoint  # noqa: E402
from tests.conftest import silence, write_question  # noqa: E402
from tests.fakes import Listened  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny-step-audio"))


async def test_blocks_are_prefilled_while_the_user_speaks(models, say, tiny) -> None:
    audio_llm = StepAudioBrain.load(tiny, device="cpu")
    brained = Models(asr=models.asr, brain=audio_llm, tts=models.tts)
    listened = Listened(brained, SessionConfig(audio_block_seconds=1.0))
    session = listened.session
    patch = audio_llm.tokenizer.convert_tokens_to_ids("<audio_patch>")
    question = np.concatenate([silence(0.3), say("Please tell me what the capital of Germany is, if you know it.")])
    heard_during_speech = 0
    async with listened:
        for start in range(0, len(question), 320):  # 20 ms frames, in real time
            await asyncio.sleep(0.02)
            await session.push_audio(question[start : start + 320])
            if start + 320 >= len(question) - 320:
                heard_during_speech = session.brain.token_ids.count(patch)  # type: ignore[attr-defined]
        for _ in range(100):
            await asyncio.sleep(0.02)
            await session.push_audio(silence(0.02))
        await session.wait_idle(60)
    assert heard_during_speech >= 2 * 13, "at least two 1 s blocks were prefilled before the user stopped"
    assert session.stats["completed"] == 1 and len(session.records) == 1
    stamps = session.records[0].stamps
    assert "first_token" in stamps and "first_answer_token" in stamps


def test_the_cli_selects_the_brain_in_respond(say, tiny, tmp_path) -> None:
    question = write_question(tmp_path / "q.wav", silence(0.3), say("What is the capital of Germany?"), silence(0.3))
    done = subprocess.run(
        [sys.executable, "-m", "realtime.cli", "respond", str(question), "-o", str(tmp_path / "r.wav"), "--fast",
         "--brain", "step-audio-r1", "--model-dir", str(tiny), "--reasoning-budget", "8", "--reasoning-mode", "paced"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    turns = json.loads((tmp_path / "r.json").read_text())["turns"]
    assert len(turns) == 1 and turns[0]["status"] == "completed"
    missing = subprocess.run(
        [sys.executable, "-m", "realtime.cli", "respond", str(question), "-o", str(tmp_path / "r.wav"),
         "--brain", "step-audio-r1", "--model-dir", str(tmp_path / "nowhere")],
        capture_output=True, text=True, timeout=300,
    )
    assert missing.returncode == 2 and "nowhere" in missing.stderr
