"""The Piper joe voice with a chunked decoder (``streaming-vits``): the first audio of a clause before all of it is made.

Piper runs the voice's ONNX graph in one call per sentence, so a clause's first sample exists only when its last
does. ``streaming-vits`` (MIT) cuts the same graph at the seam of VITS' ``infer()``: a *frontend* (text encoder,
duration predictor, alignment, prior sampling: ``z_p``), run once on the whole sentence, and a *decoder* (flow and
HiFi-GAN), a convolution network over frames with a finite receptive field that can be run on a few frames at a
time, each call given ``left`` frames of context behind and ``right`` frames ahead that are decoded and thrown away.
The pieces concatenate to the whole-sentence decode (measured on this voice with the noise off: max difference
1.1e-5 against Piper's own output before its normalisation; with the noise on, it is sampled once per sentence in
the frontend, so the two differ only as two Piper runs do).

Entry points (``streaming_vits/engine.py``): ``StreamingTTS.stream(text)`` phonemises with its own phonemiser (the
``espeak-ng`` program, per sentence), so this module uses the two halves beneath it: ``StreamingTTS.frontend(ids)``
on Piper's own phoneme ids (``PiperVoice.phonemize`` / ``phonemes_to_ids``, exactly what Piper feeds its graph) and
``StreamingTTS.decode_chunk(z_p, mask, g, a, b)`` for output frames ``[a, b)``; its ``stream`` loop is the one
below. The library's cached-state decoder (``use_cached``) is not used: it needs a torch export and keeps state per
stream (not thread-safe, ``streaming_vits/cached.py``). A frame is 256 samples (11.6 ms at 22.05 kHz).

The numbers:

* margins ``left=48``, ``right=40`` frames: the library's defaults (``streaming_vits.profile.Profile``). Margins are a
  property of the weights, not of the machine (README, "Calibrate for your device"); the library's own calibration
  (``streaming_vits.calibrate.measure_margins``) puts this voice's receptive field at left 34, right 28 (relative RMS
  error 0.2% at a lookahead of 16 frames, 0.002% at 24), but at 34/28 a quiet 4-word clause ("The answer is four.",
  peak 0.3) was off by 3.3e-4 at the end of the first chunk, against 1.1e-5 at 48/40 (noise off, the chunked output
  against Piper's own).
* chunk schedule ``(16, 32, 64, 128, 256)`` frames: the library's default ``Profile.schedule``. The first chunk
  (16 frames, 186 ms of audio) costs the frontend plus 16 + 40 frames of decoding; each later chunk is twice the
  last, so it is decoded while the previous one plays as long as decoding keeps ahead of real time (the library's
  calibration would fit a schedule to one idle device: ``solve_schedule`` in ``profile.py``). A tail shorter than
  the first chunk joins the chunk before it (not in the library: each call decodes up to 88 margin frames, so four
  frames on their own cost as much as a 52-frame chunk).

Loudness: Piper scales each sentence so that its peak is 1 (``SynthesisConfig.normalize_audio``); that needs the
whole sentence, which is what streaming avoids. The raw output is scaled by a fixed ``gain`` instead, clipped to
[-1, 1] as Piper clips: 1.5 by default, the median of Piper's own factor (1 / the raw peak) over 45 of the benchmark's
clauses (``benchmarks/tts_first_audio.py``), which ranged from 1.2 to 3.4 (p10 1.3, p90 2.7). The benchmark's RMS level
difference to Piper: median 0.0 dB over 60 clauses, but about -5 dB on 4-8-word clauses ("The answer is Paris."),
whose raw peak is low, so Piper raises them most.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import AsyncGenerator, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tts.normalize import spoken_form
from tts.piper_voice import stream_chunks

if TYPE_CHECKING:
    from piper import PiperVoice

LEFT_FRAMES = 48
RIGHT_FRAMES = 40
SCHEDULE = (16, 32, 64, 128, 256)
GAIN = 1.5


class StreamingPiperSynthesizer:
    """Piper's joe voice, decoded a few frames at a time in a worker thread; one instance can be shared by every
    session (the steps of concurrent clauses interleave, one at a time, as :class:`~tts.PiperSynthesizer`'s do).

    ``length_scale``, ``noise_scale`` and ``noise_w_scale`` default to the voice's own; ``threads`` (ONNX Runtime's
    intra-op threads) to the machine's cores. The first use of a voice file splits it into the two graphs, once
    (a few seconds), cached beside it in ``.streaming-vits/``.
    """

    def __init__(
        self,
        model_dir: Path | None = None,
        *,
        length_scale: float | None = None,
        noise_scale: float | None = None,
        noise_w_scale: float | None = None,
        gain: float = GAIN,
        schedule: Sequence[int] = SCHEDULE,
        threads: int | None = None,
    ) -> None:
        from piper import PiperVoice
        from streaming_vits import Profile, StreamingTTS
        from streaming_vits.graph import cache_dir_for

        from realtime.assets import PIPER_JOE

        if not schedule or min(schedule) < 1:
            raise ValueError(f"a chunk schedule is a list of positive frame counts, not {list(schedule)}")
        directory = Path(model_dir) if model_dir else PIPER_JOE.path()
        model = directory / "voice.onnx"
        self._voice: PiperVoice = PiperVoice.load(model, directory / "voice.onnx.json")
        # An explicit profile: a profile.json that `streaming-vits calibrate` left beside the model is not read.
        profile = Profile(left=LEFT_FRAMES, right=RIGHT_FRAMES, schedule=list(schedule))
        # The split graphs are written once; other processes starting at the same time wait rather than read half.
        cache = cache_dir_for(model)
        with (cache / ".split.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._tts: Any = StreamingTTS(
                model, profile=profile, threads=threads or os.cpu_count() or 1, verbose=False, use_cached=False, cache=cache
            )
        self._scales = self._tts.scales(noise=noise_scale, length=length_scale, noise_w=noise_w_scale)
        self._schedule = tuple(schedule)
        self._gain = gain
        self.sample_rate: int = self._voice.config.sample_rate
        # As in PiperSynthesizer: one synthesis step (up to the next chunk) at a time.
        self._lock = threading.Lock()

    def stream(self, text: str, *, trim_lead: bool = True) -> AsyncGenerator[np.ndarray, None]:
        chunks = self._chunks(spoken_form(text))
        return stream_chunks(lambda: self._next(chunks), self.sample_rate, trim_lead=trim_lead)

    def _next(self, chunks: Iterator[np.ndarray]) -> np.ndarray | None:
        with self._lock:
            return next(chunks, None)

    def _chunks(self, text: str) -> Iterator[np.ndarray]:
        """Each sentence as Piper splits and phonemises it: the frontend once, then the decoder chunk by chunk."""
        for phonemes in self._voice.phonemize(text):
            if not phonemes:
                continue
            ids = np.array([self._voice.phonemes_to_ids(phonemes)], dtype=np.int64)
            z_p, mask, g = self._tts.frontend(ids, 0, self._scales)
            frames = z_p.shape[2]
            start = step = 0
            while start < frames:
                end = min(start + self._schedule[min(step, len(self._schedule) - 1)], frames)
                if frames - end < self._schedule[0]:  # a tail shorter than the first chunk: not worth its margins
                    end = frames
                audio = self._tts.decode_chunk(z_p, mask, g, start, end)
                yield np.clip(np.asarray(audio, dtype=np.float32) * self._gain, -1.0, 1.0)
                start, step = end, step + 1
