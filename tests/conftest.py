"""Shared fixtures: spoken audio made at test time with voices other than the agent's (flite, espeak-ng)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from benchmarks.corpus import speak
from realtime.audio import write_wav


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
