"""Audio types and conversions: float32 mono samples in [-1, 1] everywhere inside the agent.

Resampling uses libsoxr (a real band-limited resampler), once, at the edge where audio enters or
leaves the pipeline.
"""

from __future__ import annotations

import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soxr

from audio.errors import AgentError

PIPELINE_RATE = 16_000
"""Sample rate of everything the agent hears (VAD and ASR run at 16 kHz)."""


class AudioFileError(AgentError, ValueError):
    """An audio file could not be read."""


def to_float32(pcm16: bytes | np.ndarray) -> np.ndarray:
    """Little-endian signed 16-bit PCM to float32 in [-1, 1]."""
    samples = np.frombuffer(pcm16, dtype="<i2") if isinstance(pcm16, (bytes, bytearray, memoryview)) else pcm16
    return samples.astype(np.float32) / 32768.0


def to_pcm16(samples: np.ndarray) -> bytes:
    """float32 in [-1, 1] to little-endian signed 16-bit PCM bytes (clipped)."""
    return (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample a whole signal (not a stream: see :class:`StreamResampler`)."""
    if from_rate == to_rate:
        return samples.astype(np.float32, copy=False)
    return soxr.resample(samples.astype(np.float32, copy=False), from_rate, to_rate, quality="HQ")


class StreamResampler:
    """Resample a stream chunk by chunk, keeping filter state between chunks."""

    def __init__(self, from_rate: int, to_rate: int) -> None:
        self.from_rate = from_rate
        self.to_rate = to_rate
        self._stream = (
            None if from_rate == to_rate else soxr.ResampleStream(from_rate, to_rate, 1, dtype="float32", quality="HQ")
        )

    def process(self, samples: np.ndarray, *, last: bool = False) -> np.ndarray:
        """Resample the next chunk; ``last=True`` flushes the filter's delay line."""
        samples = samples.astype(np.float32, copy=False)
        if self._stream is None:
            return samples
        return self._stream.resample_chunk(samples, last=last)


def read_audio(path: str | Path, rate: int = PIPELINE_RATE) -> np.ndarray:
    """Decode any audio file (any rate and channel count) to float32 mono at ``rate``."""
    import av  # decoding any container needs FFmpeg; imported lazily to keep start-up light

    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"{path}: no such file")
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioFileError(f"{path}: no audio stream")
            stream = container.streams.audio[0]
            source_rate = stream.codec_context.sample_rate
            blocks = [downmix(frame) for frame in container.decode(stream)]
    except AudioFileError:
        raise
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise AudioFileError(f"{path}: not a readable audio file ({exc})") from exc
    if not blocks or not source_rate:
        raise AudioFileError(f"{path}: contains no audio")
    mono = np.concatenate(blocks)
    return resample(mono, source_rate, rate)


def downmix(frame) -> np.ndarray:  # noqa: ANN001 - av.AudioFrame
    """One decoded PyAV frame (planar or packed, int or float, any channel count) to float32 mono."""
    block = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if not frame.format.is_planar and channels > 1:
        block = block.reshape(-1, channels).T
    if block.dtype.kind in "iu":
        scale = float(np.iinfo(block.dtype).max) + 1.0
        block = block.astype(np.float32) / scale
    block = block.astype(np.float32, copy=False)
    return block.mean(axis=0) if block.ndim == 2 and block.shape[0] > 1 else block.reshape(-1)


def write_wav(path: str | Path, samples: np.ndarray, rate: int) -> None:
    """Write float32 mono samples as a 16-bit PCM WAV file."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(to_pcm16(samples))


def frames(samples: np.ndarray, rate: int, frame_ms: int = 20) -> Iterator[np.ndarray]:
    """Cut a signal into consecutive frames of ``frame_ms`` (the last one may be shorter)."""
    size = rate * frame_ms // 1000
    for start in range(0, len(samples), size):
        yield samples[start : start + size]


def rms_dbfs(samples: np.ndarray) -> float:
    """Root-mean-square level in dB relative to full scale (-inf for digital silence)."""
    if samples.size == 0:
        return float("-inf")
    power = float(np.mean(np.square(samples, dtype=np.float64)))
    return 10.0 * np.log10(power) if power > 0 else float("-inf")
