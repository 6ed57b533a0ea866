"""Shared fixtures: spoken audio made at test time with voices other than the agent's (flite, espeak-ng)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from audio.samples import write_wav
from benchmarks.corpus import speak
from tests import strict_events

FUZZ_SCALE = int(os.environ.get("FUZZ_SCALE", "1"))
"""The fuzz tests (``tests/test_fuzz_*.py``) run a fixed, derandomized set of examples (the ``ci`` profile), the same
on every run. ``FUZZ_SCALE=N`` (N > 1) explores: N times as many examples, from a fresh random seed each run (a
failure prints the example and the ``@reproduce_failure`` blob to replay it)."""
settings.register_profile(
    "ci", derandomize=True, database=None, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
settings.register_profile("explore", parent=settings.get_profile("ci"), derandomize=False)
settings.load_profile("ci" if FUZZ_SCALE <= 1 else "explore")


def fuzz_examples(count: int) -> int:
    """A fuzz test's number of examples: ``count`` in CI, scaled by ``FUZZ_SCALE`` when exploring."""
    return count * max(FUZZ_SCALE, 1)


@pytest.fixture(autouse=True)
def strict_server_events():
    """Every server event a test makes validates against the ``openai`` package's models (GA or beta)."""
    with strict_events.watch() as failures:
        yield
    assert not failures, "server events a strict client rejects:\n" + "\n".join(failures[:5])


def silence(seconds: float, rate: int = 16000) -> np.ndarray:
    return np.zeros(int(seconds * rate), dtype=np.float32)


@pytest.fixture(scope="session")
def say():
    """``say(text, voice='flite:kal'|'espeak:VOICE', rate=16000)``: float32 speech, no silence around it."""
    return speak


@pytest.fixture(scope="session")
def models():
    """The embedded models, loaded and warmed up once for the whole test run."""
    from realtime.models import Models

    loaded = Models.load_embedded()
    asyncio.run(loaded.warm_up())
    return loaded


def write_question(path: Path, *parts: np.ndarray, rate: int = 16000) -> Path:
    """Concatenate audio parts into a WAV file (a spoken question with pauses and padding)."""
    write_wav(path, np.concatenate(parts), rate)
    return path


class Broker:
    """A private mosquitto on a free loopback port, a direct child of the test; it can be killed and restarted."""

    def __init__(self, directory: Path, *, persistent: bool = False) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.config = directory / "mosquitto.conf"
        config = f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
        # Persistent: subscriptions of persistent clients and their queued messages are saved at every change,
        # so they survive a kill. (As root, mosquitto would switch to a user who cannot write there.)
        persistence = (
            f"persistence true\npersistence_location {directory}/\nautosave_interval 1\nautosave_on_changes true\nuser root\n"
        )
        self.config.write_text(config + (persistence if persistent else "persistence false\n"))
        self.log = directory / "mosquitto.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(["mosquitto", "-c", str(self.config)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return
            time.sleep(0.02)
        raise RuntimeError(f"mosquitto did not start: {self.log.read_text()}")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
def broker(tmp_path):
    """A mosquitto broker for the test on a free loopback port."""
    running = Broker(tmp_path)
    running.start()
    yield running
    running.kill()
