"""Rescoring Whisper's hypotheses with a language model: the rule on plain numbers, then the real SmolLM2-135M and a
real Whisper."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from realtime import rescoring
from realtime.asr import WhisperTranscriber
from realtime.rescoring import Hypothesis, NBestRescorer, rescore
from tests.conftest import speak


def test_the_best_sum_of_acoustic_and_weighted_language_scores_wins() -> None:
    hypotheses = [Hypothesis("What is the opposite on heart?", -3.0), Hypothesis("What is the opposite of hot?", -4.0)]
    prior = {"What is the opposite on heart?": -20.0, "What is the opposite of hot?": -12.0}.get
    assert rescore(hypotheses, lambda texts: [prior(t) for t in texts], 0.5) == 1, "-4 - 6 beats -3 - 10"
    assert rescore(hypotheses, lambda texts: [prior(t) for t in texts], 0.1) == 0, "-3 - 2 beats -4 - 1.2"


def test_hypotheses_with_the_same_words_are_scored_once_and_one_group_is_not_scored() -> None:
    asked: list[list[str]] = []

    def prior(texts: list[str]) -> list[float]:
        asked.append(texts)
        return [-1.0 * len(t) for t in texts]

    same = [Hypothesis("Can a dog fly?", -1.0), Hypothesis("can a dog fly", -1.5)]
    assert rescore(same, prior, 0.5) == 0 and asked == [], "one group of words: Whisper's first, no scoring"
    mixed = [Hypothesis("Can the dog fly?", -1.0), Hypothesis("can the dog fly", -1.2), Hypothesis("Can a dog fly?", -1.1)]
    assert rescore(mixed, prior, 0.5) in (0, 2)
    assert asked == [["Can the dog fly?", "Can a dog fly?"]], "each group once, as its first (Whisper's better) text"
    with pytest.raises(ValueError, match="no hypotheses"):
        rescore([], prior, 0.5)


def test_a_hypothesis_with_fewer_words_than_whisper_s_first_never_wins() -> None:
    hypotheses = [Hypothesis("If you would like to learn more, dial two now.", -9.0), Hypothesis("If", -8.0),
                  Hypothesis("If you would like to learn more dial to now", -9.5)]
    asked: list[list[str]] = []

    def prior(texts: list[str]) -> list[float]:
        asked.append(texts)
        return [-2.0 * len(t.split()) for t in texts]

    assert rescore(hypotheses, prior, 1.0) == 0
    assert asked == [[hypotheses[0].text, hypotheses[2].text]], "the early stop is not even scored"


@pytest.fixture(scope="module")
def rescorer() -> Iterator[NBestRescorer]:
    rescorer = NBestRescorer()
    yield rescorer
    rescorer.close()


@pytest.mark.slow
def test_the_language_model_finds_a_question_likelier_than_its_mishearings(rescorer: NBestRescorer) -> None:
    right, *misheard = rescorer.log_probabilities(
        ["What is the freezing point of water?", "What is the freezing bone of water?", "What is the free zing point of water?"]
    )
    assert all(right > other + 1.0 for other in misheard), (right, misheard)
    again = rescorer.log_probabilities(["What is the freezing point of water?"])[0]
    assert again == pytest.approx(right, abs=0.2), "a text's score does not depend on what it is batched with"


@pytest.mark.slow
def test_whisper_hands_its_beam_to_the_rescorer_and_answers_with_one_of_its_hypotheses(rescorer: NBestRescorer) -> None:
    seen: list[list[Hypothesis]] = []

    class Watching(NBestRescorer):
        def __init__(self) -> None:  # the loaded model of the fixture, watched
            self.__dict__.update(rescorer.__dict__)

        def best(self, hypotheses: list[Hypothesis]) -> int:  # type: ignore[override]
            seen.append(list(hypotheses))
            return super().best(hypotheses)

    whisper = WhisperTranscriber(model="tiny.en", beam_size=4, rescorer=Watching())
    heard = whisper.transcribe(speak("What is the capital of France?", "espeak:en-us", speed=1.2)).text
    assert len(seen) == 1 and len(seen[0]) == 4, "the final transcript's four hypotheses, with their scores"
    assert all(h.log_probability < 0 for h in seen[0])
    assert heard in [h.text for h in seen[0]]
    with pytest.raises(ValueError, match="beam"):
        WhisperTranscriber(model="tiny.en", beam_size=1, rescorer=rescorer)


HYPOTHESES = [Hypothesis("What is the freezing bone of water?", -4.0), Hypothesis("What is the freezing point of water?", -4.5)]


@pytest.mark.slow
def test_a_dead_worker_costs_transcripts_their_rescoring_until_it_is_started_again(
    rescorer: NBestRescorer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rescoring, "RESTART_INTERVAL_S", 0.0)
    assert rescorer.best(HYPOTHESES) == 1
    pid = rescorer.worker_pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # as the OOM killer would
    with caplog.at_level(logging.WARNING, logger="realtime.rescoring"):
        assert rescorer.best(HYPOTHESES) == 0, "Whisper's first, not an error"
        assert rescorer.best(HYPOTHESES) == 0, "while the new worker loads: Whisper's first, no second start"
    assert "no rescoring" in caplog.text and caplog.text.count("starting the rescoring worker again") == 1
    rescorer.wait_ready(timeout=120)
    assert rescorer.worker_pid() not in (None, pid)
    assert rescorer.best(HYPOTHESES) == 1, "rescoring again once the new worker is up"


@pytest.mark.slow
def test_a_stuck_worker_is_killed_and_started_again(
    rescorer: NBestRescorer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rescoring, "RESTART_INTERVAL_S", 0.0)
    monkeypatch.setattr(rescoring, "TIMEOUT_S", 0.5)
    pid = rescorer.worker_pid()
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # alive, answering nothing
    with caplog.at_level(logging.WARNING, logger="realtime.rescoring"):
        assert [rescorer.best(HYPOTHESES) for _ in range(rescoring.STUCK_AFTER)] == [0] * rescoring.STUCK_AFTER
    assert "scorings in a row took over" in caplog.text
    deadline = time.monotonic() + 10
    while any(child.pid == pid for child in multiprocessing.active_children()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(child.pid == pid for child in multiprocessing.active_children()), "the stuck worker was killed"
    rescorer.wait_ready(timeout=120)
    assert rescorer.best(HYPOTHESES) == 1


@pytest.mark.slow
def test_a_model_the_worker_cannot_load_is_an_error_at_start(tmp_path: Path) -> None:
    broken = tmp_path / "model.gguf"
    broken.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(RuntimeError, match="could not load"):
        NBestRescorer(broken)


@pytest.mark.slow
def test_the_worker_draws_no_progress_bar_even_when_the_server_imported_tqdm_first(tmp_path: Path) -> None:
    # As under `realtime serve`: the spawned worker imports the server's main module (and with it tqdm) before its
    # initializer runs, so an environment switch set there comes too late.
    script = tmp_path / "server.py"
    script.write_text(
        "import tqdm\n"
        "from realtime.rescoring import NBestRescorer\n"
        "if __name__ == '__main__':\n"
        "    rescorer = NBestRescorer()\n"
        "    print(rescorer.log_probabilities(['Hello.']))\n"
        "    rescorer.close()\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("[-"), done.stdout
    assert "GGUF tensors" not in done.stderr and "Loading weights" not in done.stderr, done.stderr
