"""Wire audio formats: PCM16 little-endian at any rate, and G.711 mu-law / A-law at 8 kHz.

G.711 is computed with 256-entry decode tables and a 65536-entry encode table built once from the
ITU-T segment rules (the same values as Sun's reference ``g711.c`` and Python's old ``audioop``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Literal

import numpy as np

from audio.errors import AgentError
from audio.samples import to_float32, to_pcm16

Codec = Literal["pcm16", "g711_ulaw", "g711_alaw"]

_GA_TYPES: dict[str, Codec] = {"audio/pcm": "pcm16", "audio/pcmu": "g711_ulaw", "audio/pcma": "g711_alaw"}
_G711_RATE = 8_000


class AudioFormatError(AgentError, ValueError):
    """An audio format the agent does not speak, or bytes that are not in the declared format."""


@dataclass(frozen=True)
class AudioFormat:
    codec: Codec = "pcm16"
    rate: int = 24_000

    def decode(self, data: bytes) -> np.ndarray:
        """Wire bytes to float32 mono samples at :attr:`rate`."""
        if self.codec == "pcm16":
            if len(data) % 2:
                raise AudioFormatError("pcm16 audio must be a whole number of 16-bit samples (odd byte count)")
            return to_float32(data)
        table = _ulaw_decode_table() if self.codec == "g711_ulaw" else _alaw_decode_table()
        return table[np.frombuffer(data, dtype=np.uint8)].astype(np.float32) / 32768.0

    def encode(self, samples: np.ndarray) -> bytes:
        """float32 mono samples at :attr:`rate` to wire bytes."""
        pcm = to_pcm16(samples)
        if self.codec == "pcm16":
            return pcm
        table = _ulaw_encode_table() if self.codec == "g711_ulaw" else _alaw_encode_table()
        return table[np.frombuffer(pcm, dtype="<i2").astype(np.int32) + 32768].tobytes()

    def beta_name(self) -> str:
        return self.codec

    def ga_object(self) -> dict[str, object]:
        ga_type = next(name for name, codec in _GA_TYPES.items() if codec == self.codec)
        return {"type": ga_type, "rate": self.rate}


def parse_format(value: object) -> AudioFormat:
    """A format as the beta protocol names it (``"pcm16"``, ``"g711_ulaw"``, ``"g711_alaw"``) or as the GA
    protocol describes it (``{"type": "audio/pcm", "rate": 24000}``, ``{"type": "audio/pcmu"}``, ...)."""
    if isinstance(value, str):
        if value == "pcm16":
            return AudioFormat("pcm16", 24_000)
        if value in ("g711_ulaw", "g711_alaw"):
            return AudioFormat(value, _G711_RATE)  # type: ignore[arg-type]
        raise AudioFormatError(f"unknown audio format {value!r}: use pcm16, g711_ulaw or g711_alaw")
    if isinstance(value, dict) and isinstance(value.get("type"), str) and value["type"] in _GA_TYPES:
        codec = _GA_TYPES[value["type"]]
        if codec != "pcm16":
            return AudioFormat(codec, _G711_RATE)
        rate = value.get("rate", 24_000)
        if not isinstance(rate, int) or isinstance(rate, bool) or not 8_000 <= rate <= 48_000:
            raise AudioFormatError(f"audio/pcm rate must be an integer from 8000 to 48000, not {rate!r}")
        return AudioFormat("pcm16", rate)
    raise AudioFormatError(f"unknown audio format {value!r}: use audio/pcm, audio/pcmu or audio/pcma")


@cache
def _ulaw_decode_table() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


@cache
def _alaw_decode_table() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    seg = (a & 0x70) >> 4
    t = (a & 0x0F) << 4
    t = np.where(seg == 0, t + 8, np.where(seg == 1, t + 0x108, (t + 0x108) << np.maximum(seg - 1, 0)))
    return np.where(a & 0x80, t, -t).astype(np.int16)


@cache
def _ulaw_encode_table() -> np.ndarray:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 2
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(pcm), 8159) + 33
    seg = np.searchsorted(np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF]), magnitude)
    value = np.where(seg >= 8, 0x7F, (seg << 4) | ((magnitude >> (seg + 1)) & 0x0F))
    return (value ^ mask).astype(np.uint8)


@cache
def _alaw_encode_table() -> np.ndarray:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 3
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    magnitude = np.where(pcm >= 0, pcm, -pcm - 1)
    seg = np.searchsorted(np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF]), magnitude)
    low = np.where(seg < 2, magnitude >> 1, magnitude >> np.maximum(seg, 1)) & 0x0F
    value = np.where(seg >= 8, 0x7F, (seg << 4) | low)
    return (value ^ mask).astype(np.uint8)
