"""Shared fixtures: spoken audio made at test time with voices other than the agent's (flite, espeak-ng)."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from realtime.audio import read_audio


def synthesize_question(text: str, voice: str = "flite", rate: int = 16000) -> np.ndarray:
    """Speak ``text`` with a Debian voice and return float32 mono samples at ``rate``."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        if voice.startswith("flite"):
            _, _, name = voice.partition(":")
            subprocess.run(["flite", "-voice", name or "kal", "-t", text, "-o", str(wav)], check=True)
        else:
            _, _, name = voice.partition(":")
            subprocess.run(["espeak-ng", "-v", name or "en-us", "-s", "165", "-w", str(wav), text], check=True)
        return read_audio(wav, rate)


def silence(seconds: float, rate: int = 16000) -> np.ndarray:
    return np.zeros(int(seconds * rate), dtype=np.float32)


@pytest.fixture(scope="session")
def say():
    """``say(text, voice='flite'|'flite:NAME'|'espeak'|'espeak:VOICE', rate=16000) -> float32 samples``."""
    return synthesize_question


@pytest.fixture(scope="session")
def models():
    """The embedded models, loaded and warmed up once for the whole test run."""
    import asyncio

    from realtime.models import Models

    loaded = Models.load_embedded()
    asyncio.run(loaded.warm_up())
    return loaded


def write_question(path: Path, *parts: np.ndarray, rate: int = 16000) -> Path:
    """Concatenate audio parts into a WAV file (a spoken question with pauses and padding)."""
    from realtime.audio import write_wav

    write_wav(path, np.concatenate(parts), rate)
    return path
