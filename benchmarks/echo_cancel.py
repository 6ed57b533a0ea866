"""Echo cancellers on one echo path: how much echo each removes, whether the user's words survive, what it costs.

The far end (what the agent says, espeak-ng) reaches the microphone through a room: 100 ms of device latency, then
a room impulse response (a direct path and an exponentially decaying tail, RT60 300 ms: Polack's statistical model),
as loud as the user's voice (flite kal; ``--echo-db`` louder), over -55 dBFS of noise. The speaker runs at 24 kHz and the
microphone at 16 kHz, as ``realtime mic`` opens them. Three phases: the agent alone (echo return loss enhancement,
ERLE: the microphone's power over the output's, after 1.5 s to converge), the user alone (how much of the user's
level is kept), and double talk (the user interrupts the agent; Whisper base transcribes the user's sentence from
the output).

Cancellers: libwebrtc's audio processing module from the ``livekit`` package (AEC3 with noise suppression and
high-pass, as :class:`audio.echo.EchoCanceller` runs it; and AEC3 alone), and speexdsp's MDF canceller with its
residual echo suppressor (through ``ctypes`` on the system's ``libspeexdsp``, when present; its render path must be
at the capture rate, so it gets the far end resampled to 16 kHz). Run: ``python -m benchmarks.echo_cancel``.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import time
from collections.abc import Callable

import numpy as np

from audio.echo import FRAME_MS, EchoCanceller
from audio.samples import resample
from benchmarks.corpus import speak

CAPTURE_RATE, RENDER_RATE = 16_000, 24_000
FAR = ("The capital of France is Paris, a city on the river Seine. It has been the capital for more than a thousand "
       "years, and today it is home to over two million people.")
NEAR = "Wait, stop, what about the capital of Germany?"

Process = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(far end at 24 kHz, microphone at 16 kHz) -> the microphone without the echo, 16 kHz; both as they stream."""


def room(rate: int, *, delay_s: float = 0.1, rt60_s: float = 0.3, seed: int = 0) -> np.ndarray:
    """An impulse response: ``delay_s`` of silence, a direct path, and a decaying noise tail (-60 dB after ``rt60_s``)."""
    rng = np.random.default_rng(seed)
    tail = np.arange(int(rt60_s * rate)) / rate
    response = rng.standard_normal(len(tail)) * 10 ** (-3 * tail / rt60_s) * 0.3
    response[0] = 1.0
    return np.concatenate([np.zeros(int(delay_s * rate)), response]).astype(np.float32)


def scene(echo_db: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, slice]]:
    """The echo ``echo_db`` dB louder than the user: (far end at 24 kHz, microphone at 16 kHz, the user alone at 16 kHz,
    the phases as slices of the microphone)."""
    far16 = speak(FAR, "espeak:en-us", CAPTURE_RATE)
    near = speak(NEAR, "flite:kal", CAPTURE_RATE)
    gap = np.zeros(CAPTURE_RATE, np.float32)
    # The agent talks; a pause; the user alone; a pause; the agent again and the user interrupts 2 s into it.
    far_track = np.concatenate([far16, gap, np.zeros(len(near), np.float32), gap, far16])
    near_track = np.concatenate([np.zeros(len(far16) + len(gap), np.float32), near, gap,
                                 np.zeros(2 * CAPTURE_RATE, np.float32), near,
                                 np.zeros(len(far16) - 2 * CAPTURE_RATE - len(near), np.float32)])
    echo = np.convolve(far_track, room(CAPTURE_RATE))[: len(far_track)]
    echo *= np.sqrt(np.mean(near**2) / np.mean(echo[: len(far16)] ** 2)) * 10 ** (echo_db / 20)
    noise = np.random.default_rng(1).standard_normal(len(far_track)).astype(np.float32) * 10 ** (-55 / 20)
    mic = (echo + near_track + noise).astype(np.float32)
    far24 = resample(far_track, CAPTURE_RATE, RENDER_RATE)
    talk = len(far16) + len(gap) + len(near) + len(gap)
    phases = {
        "far": slice(int(1.5 * CAPTURE_RATE), len(far16)),
        "near": slice(len(far16) + len(gap), len(far16) + len(gap) + len(near)),
        "double": slice(talk + 2 * CAPTURE_RATE, talk + 2 * CAPTURE_RATE + len(near)),
    }
    return far24, mic, near_track, phases


def webrtc(noise_suppression: bool) -> Process:
    def run(far: np.ndarray, mic: np.ndarray) -> np.ndarray:
        canceller = EchoCanceller(CAPTURE_RATE, RENDER_RATE, noise_suppression=noise_suppression)
        canceller.set_delay(0.05, 0.05)  # what the devices would report; the room's own delay is for AEC3 to find
        out, render, capture = [], RENDER_RATE * FRAME_MS // 1000, CAPTURE_RATE * FRAME_MS // 1000
        for i in range(len(mic) // capture):
            canceller.played(far[i * render : (i + 1) * render])
            out.append(canceller.captured(mic[i * capture : (i + 1) * capture]))
        return np.concatenate(out)

    return run


def speex(library: ctypes.CDLL) -> Process:
    frame, tail = CAPTURE_RATE * FRAME_MS // 1000, CAPTURE_RATE // 2  # 500 ms filter: the delay and the tail
    library.speex_echo_state_init.restype = library.speex_preprocess_state_init.restype = ctypes.c_void_p
    library.speex_echo_cancellation.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    library.speex_echo_ctl.argtypes = library.speex_preprocess_ctl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    library.speex_preprocess_run.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    library.speex_echo_state_destroy.argtypes = library.speex_preprocess_state_destroy.argtypes = [ctypes.c_void_p]

    def run(far: np.ndarray, mic: np.ndarray) -> np.ndarray:
        echo = library.speex_echo_state_init(frame, tail)
        preprocess = library.speex_preprocess_state_init(frame, CAPTURE_RATE)
        rate = ctypes.c_int(CAPTURE_RATE)
        library.speex_echo_ctl(echo, 24, ctypes.byref(rate))  # SPEEX_ECHO_SET_SAMPLING_RATE
        library.speex_preprocess_ctl(preprocess, 24, ctypes.c_void_p(echo))  # SPEEX_PREPROCESS_SET_ECHO_STATE
        far16, pcm = _pcm(resample(far, RENDER_RATE, CAPTURE_RATE)), _pcm(mic)
        out = np.zeros(len(pcm) // frame * frame, np.int16)
        for i in range(0, len(out), frame):
            rec, play = np.ascontiguousarray(pcm[i : i + frame]), np.ascontiguousarray(far16[i : i + frame])
            cleaned = np.zeros(frame, np.int16)
            library.speex_echo_cancellation(echo, rec.ctypes.data, play.ctypes.data, cleaned.ctypes.data)
            library.speex_preprocess_run(preprocess, cleaned.ctypes.data)
            out[i : i + frame] = cleaned
        library.speex_preprocess_state_destroy(preprocess)
        library.speex_echo_state_destroy(echo)
        return out.astype(np.float32) / 32768.0

    return run


def _pcm(samples: np.ndarray) -> np.ndarray:
    return (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16)


def _db(a: np.ndarray, b: np.ndarray) -> float:
    power_a, power_b = float(np.mean(a.astype(np.float64) ** 2)), float(np.mean(b.astype(np.float64) ** 2))
    return 10 * float(np.log10(power_a / max(power_b, 1e-20)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--echo-db", type=float, default=0.0, help="the echo's level over the user's voice (dB)")
    args = parser.parse_args(argv)
    from realtime.asr import WhisperTranscriber

    far, mic, near, phases = scene(args.echo_db)
    whisper = WhisperTranscriber()
    cancellers: dict[str, Process] = {
        "webrtc AEC3 + NS + HPF (livekit)": webrtc(True),
        "webrtc AEC3 + HPF (livekit)": webrtc(False),
    }
    if name := ctypes.util.find_library("speexdsp"):
        cancellers["speexdsp MDF + residual suppression"] = speex(ctypes.CDLL(name))
    double = phases["double"]
    print(f"echo over the user: {args.echo_db:+.0f} dB; without a canceller the user's words in double talk: "
          f"{whisper.transcribe(mic[double]).text!r}")
    print("| canceller | ERLE, agent alone | user's level kept | user's words in double talk | CPU per 10 ms |")
    print("| --- | --- | --- | --- | --- |")
    for name, process in cancellers.items():
        started = time.process_time()
        out = process(far, mic)
        cost = (time.process_time() - started) / (len(out) / CAPTURE_RATE * 1000 / FRAME_MS)
        far_only, near_only = phases["far"], phases["near"]
        print(f"| {name} | {_db(mic[far_only], out[far_only]):.1f} dB | {-_db(near[near_only], out[near_only]):+.1f} dB | "
              f"{whisper.transcribe(out[double]).text!r} | {cost * 1e6:.0f} us |")


if __name__ == "__main__":
    main()
