"""Backchannels and real interruptions over a reply: does the agent stop for "mm-hmm", and does it stop for "wait"?

The agent speaks a scripted paragraph (``VoiceSession.say``: the embedded synthesiser, no language model, so the
measure is turn-taking alone) on a real-time timeline (:class:`~realtime.respond.VirtualSpeaker`, as ``realtime
respond`` plays it); once a second of it has played, a sound is streamed over it in real time, as a microphone would:
a **backchannel** (a synthetic "mm-hmm", "yeah", "okay", ... in several flite and espeak-ng voices, or a noise burst or
a cough) or a **real interruption** ("Wait, stop.", "What about Spain?", ...). The real voice activity detector
(Silero) and recogniser (Whisper base) judge it with the session's default settings. A backchannel **wrongly stopped**
the reply when the interruption was confirmed (``output_audio_buffer.cleared``), and was **answered after** the reply
when its words were taken for a question too short to interrupt (a misheard "uh-huh" the agent then replies to); a real
interruption was **missed** when it was not confirmed within :data:`SETTLE_S` of its end. **Onset to stop**: from the first audible sample of the
sound to the moment the reply's audio stopped at the sink (the pause). **Resumed after**: from the end of a backchannel
to the reply playing on.

    .venv/bin/python -m benchmarks.backchannels --label cpu2
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
from typing import Any

import numpy as np

from audio import PIPELINE_RATE
from benchmarks.corpus import speak
from benchmarks.noise import background
from benchmarks.report import distribution, machine, now_iso, write_results
from realtime.asr import Transcript
from realtime.events import AudioCleared, AudioPaused, AudioResumed, OutputItem
from realtime.latency import now
from realtime.models import Models
from realtime.policy import PolicyConfig
from realtime.respond import VirtualSpeaker
from realtime.session import SessionConfig
from realtime.session.orchestrator import VoiceSession

REPLY = ("Dragons were once thought to live in the far mountains of the north, where the winters were long and the "
         "rivers froze solid for months. The bravest of them was a small green dragon called Ember, who was afraid of "
         "nothing except the dark, and every night she lit a little fire at the mouth of her cave.")
"""What the agent says (long enough to be playing during any sound over it)."""
VOICES = ("flite:kal", "flite:slt", "flite:rms", "flite:awb", "espeak:en-us", "espeak:en-us+f3")
BACKCHANNELS = ("Mm-hmm.", "Uh-huh.", "Yeah.", "Okay.", "Right.", "Yeah, okay.", "I see.", "Sure.")
INTERRUPTIONS = (
    "Wait, stop.", "Wait, stop, what about Spain?", "Hold on, I have a question.", "No, that is wrong.",
    "Sorry, can you repeat that?", "What about Germany?", "Stop please.", "Actually, tell me about cats.",
    "Excuse me, one question.", "Let me ask something else.",
)
NOTE = ("A backchannel (a synthetic \"mm-hmm\", \"yeah\", ... or a noise burst) wrongly stopped the reply when the "
        "interruption was confirmed; a real interruption (\"Wait, stop.\", ...) was missed when it was not. Onset to stop: "
        "from the sound's first audible sample to the reply's audio pausing at the sink (benchmarks/backchannels.py).")
SETTLE_S = 8.0
"""How long after the sound ends its judgment is awaited (the transcript takes seconds on a loaded machine)."""
LEAD_S = 1.0
"""Reply audio played before the sound starts."""
FRAME = PIPELINE_RATE // 50


def noises() -> list[tuple[str, np.ndarray]]:
    """Noise bursts and coughs (pink and brown noise with a fast attack and a decay)."""
    out = []
    for seed, (ms, decay) in enumerate(((300, 0.08), (500, 0.15), (250, 0.05), (700, 0.2))):
        n = ms * PIPELINE_RATE // 1000
        envelope = np.minimum(np.arange(n) / (0.01 * PIPELINE_RATE), 1.0) * np.exp(-np.arange(n) / (decay * PIPELINE_RATE))
        out.append((f"noise burst {ms} ms", (0.3 * background(n, seed) * envelope).astype(np.float32)))
    return out


def sounds(backchannels: int, interruptions: int) -> list[tuple[str, str, np.ndarray]]:
    """``(kind, label, audio)``: ``backchannels`` sounds (the noise bursts first, then backchannels in voices in turn)
    and ``interruptions`` real interruptions."""
    voiced = itertools.cycle(itertools.product(VOICES, BACKCHANNELS))
    chosen: list[tuple[str, str, np.ndarray]] = [("backchannel", name, audio) for name, audio in noises()[:backchannels]]
    while len(chosen) < backchannels:
        voice, text = next(voiced)
        chosen.append(("backchannel", f"{text} ({voice})", speak(text, voice)))
    spoken = itertools.cycle((voice, text) for shift in range(len(VOICES)) for text, voice in
                             zip(INTERRUPTIONS, itertools.islice(itertools.cycle(VOICES), shift, None), strict=False))
    for _ in range(interruptions):
        voice, text = next(spoken)
        chosen.append(("interruption", f"{text} ({voice})", speak(text, voice)))
    return chosen


async def trial(models: Models, audio: np.ndarray, config: SessionConfig) -> dict[str, Any]:
    """One sound over one reply: what happened, and when (s, on the session's clock)."""
    speaker = VirtualSpeaker(config.output_rate, realtime=True)
    session = VoiceSession(models, config, speaker)
    seen: dict[str, float] = {}
    """The first time of each kind of mark."""
    marks: list[tuple[str, float]] = []
    """Every pause, resume and clear, in order (a sound may pause and resume the reply more than once)."""

    async def on_event(item: OutputItem) -> None:
        if isinstance(item, AudioPaused | AudioResumed | AudioCleared):
            seen.setdefault(type(item).__name__, now())
            marks.append((type(item).__name__, now()))

    heard: list[str] = []
    transcribe = models.asr.transcribe_async

    async def recorded(samples: np.ndarray) -> Transcript:  # what the session's recogniser heard, for the report
        transcript = await transcribe(samples)
        heard.append(transcript.text)
        return transcript

    models.asr.transcribe_async = recorded  # type: ignore[method-assign]
    router = asyncio.create_task(session.route(on_event))
    clock = {"start": now(), "frames": 0}

    async def push(samples: np.ndarray) -> None:
        for offset in range(0, len(samples), FRAME):
            clock["frames"] += 1
            await asyncio.sleep(max(0.0, clock["start"] + clock["frames"] * FRAME / PIPELINE_RATE - now()))
            await session.push_audio(samples[offset : offset + FRAME])

    silence = np.zeros(FRAME * 5, np.float32)
    try:
        await session.say(REPLY)
        while not speaker._chunks or now() - speaker._started - speaker._chunks[0][0] / speaker.rate < LEAD_S:  # noqa: SLF001
            await push(silence)
        onset = now() + np.flatnonzero(np.abs(audio) > 0.01)[0] / PIPELINE_RATE
        await push(audio)
        end = now()
        while now() - end < SETTLE_S and not judged(marks, end):
            await push(silence)
    finally:
        await session.close()
        router.cancel()
        models.asr.transcribe_async = transcribe  # type: ignore[method-assign]
    paused = seen.get("AudioPaused", seen.get("AudioCleared"))
    return {
        "paused": "AudioPaused" in seen, "stopped": "AudioCleared" in seen, "resumed": "AudioResumed" in seen,
        "onset_to_stop_ms": round(float(paused - onset) * 1000, 1) if paused is not None else None,
        "resumed_after_ms": round((resumes[-1] - end) * 1000, 1) if (resumes := [t for k, t in marks if k == "AudioResumed"]) else None,
        "sound_ms": round(len(audio) * 1000 / PIPELINE_RATE), "heard": heard,
        "answered_after": session.stats["answered_after_reply"] > 0,
    }


def judged(marks: list[tuple[str, float]], end: float) -> bool:
    """Whether the sound that ended at ``end`` has had its outcome: the reply was stopped, or it resumed after the sound
    ended (a resume during the sound, from a first syllable too short to be speech, is not yet the outcome)."""
    return any(kind == "AudioCleared" for kind, _ in marks) or (bool(marks) and marks[-1][0] == "AudioResumed" and marks[-1][1] >= end)


def summary(rows: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    group = [r for r in rows if r["kind"] == kind]
    wrong = [r for r in group if r["stopped"] is (kind == "backchannel")]
    return {
        "n": len(group), "paused": sum(r["paused"] for r in group),
        "wrong": len(wrong), "wrong_share": round(len(wrong) / len(group), 3) if group else None,
        "answered_after": sum(r.get("answered_after", False) for r in group),
        "onset_to_stop_ms": distribution([r["onset_to_stop_ms"] for r in group if r["onset_to_stop_ms"] is not None]),
        "resumed_after_ms": distribution([r["resumed_after_ms"] for r in group if r["resumed_after_ms"] is not None]),
        "wrong_cases": [f"{r['label']} heard as {' / '.join(map(repr, r['heard'])) or 'nothing'}" for r in wrong],
    }


def table(result: dict[str, Any]) -> list[str]:
    lines = ["| sounds over a reply | n | paused | wrong | answered after the reply | onset to stop p50 / p90 ms "
             "| resumed after p50 / p90 ms |", "|---|---|---|---|---|---|---|"]
    for kind, what in (("backchannel", "backchannels wrongly stopping the reply"), ("interruption", "interruptions missed")):
        s = result[kind]
        stop, resumed = s["onset_to_stop_ms"], s["resumed_after_ms"]
        lines.append(f"| {kind}s | {s['n']} | {s['paused']} | {what}: {s['wrong']} ({s['wrong_share']:.0%}) "
                     f"| {s['answered_after']} | {stop['p50']} / {stop['p90']} | {resumed['p50']} / {resumed['p90']} |")
    return lines


async def measure(backchannels: int, interruptions: int, config: SessionConfig) -> dict[str, Any]:
    models = Models.load_embedded()
    await models.warm_up()
    rows = []
    for kind, label, audio in sounds(backchannels, interruptions):
        row = {"kind": kind, "label": label, **await trial(models, audio, config)}
        print(row, flush=True)
        rows.append(row)
    return {"backchannel": summary(rows, "backchannel"), "interruption": summary(rows, "interruption"), "trials": rows}


async def _main(backchannels: int, interruptions: int, label: str, load: str, min_interruption_ms: int, min_speech_ms: int) -> None:
    policy = dataclasses.replace(PolicyConfig(), min_interruption_ms=min_interruption_ms, min_interruption_speech_ms=min_speech_ms)
    result = await measure(backchannels, interruptions, SessionConfig(policy=policy))
    record = {"benchmark": "backchannels", "date": now_iso(), "label": label, "machine": machine(), "load": load,
              "settings": {"min_interruption_ms": min_interruption_ms, "min_interruption_words": policy.min_interruption_words,
                           "min_interruption_speech_ms": min_speech_ms},
              **result}
    wrong = [f"- {kind}: {', '.join(result[kind]['wrong_cases']) or 'none'}" for kind in ("backchannel", "interruption")]
    text = "\n".join([f"# Backchannels and interruptions over a reply ({label}, {record['date']})", "",
                      f"{machine()['cpus']} CPUs, load: {load}; Silero VAD + Whisper base; the reply scripted (Piper); "
                      f"min_interruption_ms {min_interruption_ms}, min_interruption_words {policy.min_interruption_words}, "
                      f"min_interruption_speech_ms {min_speech_ms}.", "",
                      *table(result), "", "Wrong cases:", *wrong, "", __doc__.split("\n\n")[1].replace("\n", " ")])
    print(text)
    print(write_results("backchannels", label, record, text + "\n"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backchannels", type=int, default=24, help="sounds that should not stop the reply (4 are noise)")
    parser.add_argument("--interruptions", type=int, default=20)
    parser.add_argument("--label", default="cpu")
    parser.add_argument("--load", default="", help="the machine's load while it ran (from uptime), for the record")
    parser.add_argument("--min-interruption-ms", type=int, default=PolicyConfig.min_interruption_ms)
    parser.add_argument("--min-interruption-speech-ms", type=int, default=PolicyConfig.min_interruption_speech_ms)
    args = parser.parse_args()
    asyncio.run(_main(args.backchannels, args.interruptions, args.label, args.load, args.min_interruption_ms,
                      args.min_interruption_speech_ms))


if __name__ == "__main__":
    main()
