"""The audio end-of-turn model (Smart Turn v3.2) on real synthetic speech, from the wheel file set-up fetched."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.corpus import speak
from realtime.assets import SMART_TURN
from vad.smart_turn import SmartTurn


@pytest.fixture(scope="module")
def model() -> SmartTurn:
    return SmartTurn(SMART_TURN.path("smart-turn-v3.2-cpu.onnx"))


@pytest.mark.parametrize("voice", ["flite:kal", "espeak:en-us"])
async def test_a_finished_question_sounds_finished(model: SmartTurn, voice: str) -> None:
    question = np.concatenate([speak("What is the capital of France?", voice), np.zeros(3_200, np.float32)])
    assert await model.probability_async(question) >= 0.5


def test_any_length_gives_a_probability(model: SmartTurn) -> None:
    long = np.tile(speak("I would like to tell you about my day.", "flite:kal"), 5)  # over the 8 s window
    for audio in (np.zeros(0, np.float32), np.zeros(800, np.float32), long):
        assert 0.0 <= model.probability(audio) <= 1.0


def test_a_missing_model_file_is_a_clear_error(tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(FileNotFoundError, match="Smart Turn"):
        SmartTurn(tmp_path / "none.onnx")
