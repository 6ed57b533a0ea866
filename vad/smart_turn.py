"""Smart Turn v3.2: does the user's speech so far *sound* like a finished turn? (An audio end-of-turn model.)

The model (pipecat-ai's Smart Turn v3.2 CPU build, BSD-2; an 8.7 MB ONNX file taken from the ``pipecat-ai`` wheel at
set-up, sha256-pinned in :mod:`realtime.assets`) reads the last 8 s of 16 kHz speech as Whisper-style log-mel features
(80 mel bins x 800 frames of 10 ms; the audio zero-mean/unit-variance normalised first, zero-padded in front when
shorter) and returns the probability that the speaker has finished. The features come from faster-whisper's
:class:`~faster_whisper.feature_extractor.FeatureExtractor` with an 8 s chunk, which matches the reference extraction
(``transformers.WhisperFeatureExtractor(chunk_length=8)``) to within 4e-6 here. Measured on two cores (see
``shared/FACTS.md`` of the project): ~30 ms per call plus ~15 ms of features; on synthetic speech it judged 17/20
complete turns complete but only 7/20 cut-off turns incomplete, so the session combines it with the transcript's
wording (:mod:`realtime.session.endpointing`).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np

RATE = 16_000
WINDOW_S = 8
"""The model hears the last 8 s of the utterance."""


class SmartTurn:
    """Smart Turn v3.2 on ONNX Runtime, safe to share between sessions (one inference at a time).

    Raises ``FileNotFoundError`` when ``model_path`` does not exist."""

    def __init__(self, model_path: str | Path, *, threads: int = 2) -> None:
        import onnxruntime
        from faster_whisper.feature_extractor import FeatureExtractor

        if not Path(model_path).is_file():
            raise FileNotFoundError(f"no Smart Turn model at {model_path}")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        self._session = onnxruntime.InferenceSession(str(model_path), sess_options=options)
        self._features = FeatureExtractor(feature_size=80, chunk_length=WINDOW_S)
        self._lock = threading.Lock()

    def probability(self, audio: np.ndarray) -> float:
        """The probability (0-1) that ``audio`` (float32 mono at 16 kHz, the utterance up to now, silence after the
        speech included) ends a finished turn. Blocking: ~45 ms on two cores."""
        window = WINDOW_S * RATE
        clip = np.asarray(audio, dtype=np.float32).reshape(-1)[-window:]
        clip = np.pad(clip, (window - len(clip), 0))
        normalised = (clip - clip.mean()) / np.sqrt(clip.var() + 1e-7)
        features = self._features(normalised.astype(np.float32), padding=0)[:, : window // self._features.hop_length]
        with self._lock:
            (output,) = self._session.run(None, {"input_features": features[None].astype(np.float32)})
        return float(np.asarray(output).reshape(-1)[0])

    async def probability_async(self, audio: np.ndarray) -> float:
        """:meth:`probability` in a worker thread."""
        return await asyncio.to_thread(self.probability, audio)
