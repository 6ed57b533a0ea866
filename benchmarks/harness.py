"""``realtime bench``: the latency and quality harness, in one run.

1. Corpus: the questions (``questions.jsonl``: facts, arithmetic, yes/no logic, conversational turns)
   voiced at run time by flite and espeak-ng voices at several speeds, some under pink/brown noise.
2. Latency: each question streamed in real time over the websocket to ``realtime serve`` (its own
   process, loopback) and, alternating with it, to the naive cascade behind the same server
   (``realtime serve --pipeline naive``), then to the agent again for every other reasoning budget; the
   client measures the first-packet delay from the true end of speech, the server reports its stages.
   With ``webrtc`` among the transports, headless Chromium asks the same questions over WebRTC.
3. Concurrency: 2, 4, 8 simultaneous sessions (starts staggered up to 0.5 s): delays and playout underruns.
4. Barge-in: new speech while a reply plays; onset to ``output_audio_buffer.cleared``, truncation,
   the last reply audio and the silence of a client that flushes on ``cleared``.
   False cut-offs: questions with a 300-700 ms pause inside, per turn-detection setting (``server_vad``,
   ``semantic_vad`` at each eagerness), beside the delay of the same questions unpaused (:mod:`benchmarks.cutoffs`);
   with ``--full``, end of turn on real recorded conversations (:mod:`benchmarks.end_of_turn_real`), and
   backchannels and real interruptions over a reply, in process once the servers are gone (:mod:`benchmarks.backchannels`).
5. CPU time and peak memory of each server process, per session (``/proc``).
6. Accuracy: every reply transcribed by Whisper once the servers are gone, checked against the answers.

Results: ``<output-dir>/<date>-<label>.json`` and ``.md`` plus PNG plots (no audio, no per-sample arrays).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import math
import random
import shlex
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import backchannels, bench_markdown, end_of_turn_real, plots
from benchmarks.client import AGENT, NAIVE, BargeIn, Exchange, Server, exchange, running
from benchmarks.corpus import Question, Rendition, SpokenSample, load_questions, pick, render, rendition
from benchmarks.cutoffs import measure as cutoff_measure
from benchmarks.grading import TurnGrades, grade_turn, measures
from benchmarks.procstat import reset_peak, usage
from benchmarks.report import EMBEDDED_MODELS, RESULTS, cdf, distribution, machine, now_iso, summarise
from realtime.latency import STAGES
from realtime.session import SessionConfig

BARGE_PROMPTS = ("Can you tell me a fun fact?", "Tell me about the city of Rome.", "Describe a sunny day at the beach.")
INTERRUPTIONS = ("Wait, stop. What time is it?", "Hold on, never mind.", "Sorry, let me ask something else.")


@dataclass
class BenchOptions:
    label: str = "cpu"
    questions: int | None = 8
    """How many questions (spread over the corpus); None: all."""
    transports: tuple[str, ...] = ("websocket",)
    concurrency: tuple[int, ...] = (1, 2)
    concurrent_turns: int = 4
    """At least this many turns per concurrency level above 1."""
    barge_ins: int = 1
    budgets: tuple[int, ...] = (0,)
    """Reasoning budgets for the accuracy curve; the first is the headline agent's."""
    output_dir: Path = RESULTS
    serve_args: tuple[str, ...] = ()
    """Options for both measured servers (``realtime serve``), e.g. another brain."""
    seed: int = 0
    preset: str = "quick"
    cutoffs: int = 2
    """Questions spoken with a mid-sentence pause (and plainly) per turn-detection setting; 0: no cut-off phase."""
    real_speech: bool = False
    """End of turn on real recorded conversations (:mod:`benchmarks.end_of_turn_real`; fetches them on demand)."""
    backchannels: int = 0
    """Backchannels (and noises) spoken over a reply, in process after the servers are gone
    (:mod:`benchmarks.backchannels`); 0: no backchannel phase."""
    interruptions: int = 0
    """Real interruptions spoken over a reply in the same phase."""
    profiles: tuple[str, ...] = ()
    """Other embedded language model profiles (``realtime serve --llm``) asked the same questions beside the headline
    agent, each on its own server (mode "agent, llm NAME"); ``NAME+OPTION`` adds an option of
    :data:`PROFILE_OPTIONS` (``accurate+rescore``)."""

    @classmethod
    def quick(cls, **overrides: Any) -> BenchOptions:  # noqa: ANN401 - any of the fields
        return cls(**overrides)

    @classmethod
    def full(cls, **overrides: Any) -> BenchOptions:  # noqa: ANN401 - any of the fields
        preset = {
            "questions": None, "concurrency": (1, 2, 4, 8), "concurrent_turns": 16, "barge_ins": 6, "budgets": (0, 32, 96),
            "cutoffs": 24, "real_speech": True, "profiles": ("accurate",), "backchannels": 24, "interruptions": 20,
        }
        return cls(**{**preset, "preset": "full", **overrides})


PROFILE_OPTIONS: dict[str, tuple[str, ...]] = {"rescore": ("--asr-rescore",)}
"""What a profile may add to its language model after a ``+``, as ``realtime serve`` options."""


def profile_args(profile: str) -> tuple[str, ...]:
    """The ``realtime serve`` options of a profile (``NAME`` or ``NAME+OPTION...``); raises ``ValueError`` for an
    unknown language model or option."""
    from realtime.models import LLM_PROFILES

    llm, *extras = profile.split("+")
    if llm not in LLM_PROFILES or not set(extras) <= PROFILE_OPTIONS.keys():
        raise ValueError(f"unknown profile {profile!r}: choose from {', '.join(LLM_PROFILES)}, each optionally followed by "
                         f"{', '.join('+' + name for name in PROFILE_OPTIONS)}")
    return ("--llm", llm, *(arg for extra in extras for arg in PROFILE_OPTIONS[extra]))


@dataclass
class Turn:
    """One measured turn: which question, how voiced, in which mode, and what the client saw."""

    sample: SpokenSample
    mode: str
    seen: Exchange
    cpu_s: float | None = None
    heard: str | None = None
    """The round trip: Whisper's transcript of the reply audio."""
    correct: bool | None = None
    """The round trip holds a known answer (conversational turns: judged)."""
    grades: TurnGrades | None = None
    """The three measures, each against its own reference (:func:`benchmarks.grading.grade_turn`)."""
    record: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.record = self.seen.record()

    def row(self) -> dict[str, Any]:
        return {"mode": self.mode, "question": self.sample.question.text, "kind": self.sample.question.kind,
                **self.sample.rendition.describe(), "condition": self.sample.rendition.condition,
                "first_packet_delay_ms": self.record["first_packet_delay_ms"], "underruns": self.record["underruns"],
                "heard": self.heard, "correct": self.correct, **(self.grades.row() if self.grades else {})}


def agent_mode(budget: int, options: BenchOptions) -> str:
    """The agent at the headline budget is "agent"; at the others, "agent, reasoning N"."""
    return "agent" if budget == options.budgets[0] else f"agent, reasoning {budget}"


async def measured(server: Server, turn: Callable[[], Awaitable[Exchange]]) -> tuple[Exchange, float]:
    """Run one exchange and return it with the server's CPU time spent meanwhile."""
    before = usage(server.pid).cpu_s
    seen = await turn()
    return seen, usage(server.pid).cpu_s - before


async def latency_phase(
    samples: list[SpokenSample], agent: Server, naive: Server, options: BenchOptions, profiles: dict[str, Server]
) -> tuple[list[Turn], dict[str, Any]]:
    """Every question through the agent and the naive cascade, alternating, then once per other budget and once per
    other language model profile (``profiles``: their servers by mode name)."""
    baselines = {}
    for name, server in (("agent", agent), ("naive", naive)):
        reset_peak(server.pid)
        baselines[name] = usage(server.pid)
    turns: list[Turn] = []
    for sample in samples:
        plan = [("agent", agent, options.budgets[0]), ("naive", naive, None)]
        plan += [(agent_mode(b, options), agent, b) for b in options.budgets[1:]]
        plan += [(mode, server, options.budgets[0]) for mode, server in profiles.items()]
        for mode, server, budget in plan:
            seen, cpu_s = await measured(
                server, lambda: exchange(server.url, sample.audio, sample.speech_end_s, reasoning_budget=budget)
            )
            turns.append(Turn(sample, mode, seen, cpu_s))
            print(f"[{mode:20}] {sample.question.text!r:58} {seen.first_packet_delay_ms!s:>7} ms", flush=True)
    resources = {}
    for name, server in (("agent", agent), ("naive", naive)):
        before = baselines[name]
        after = usage(server.pid)
        cpu = [t.cpu_s for t in turns
               if t.cpu_s is not None and (t.mode == "naive") == (name == "naive") and t.mode not in profiles]
        resources[name] = {"idle_rss_mb": before.rss_mb, "peak_rss_mb": after.peak_rss_mb,
                           "peak_mb_per_session": round(after.peak_rss_mb - before.rss_mb, 1),
                           "cpu_s_per_turn": round(sum(cpu) / len(cpu), 2) if cpu else None}
    return turns, resources


async def concurrency_level(
    samples: list[SpokenSample], agent: Server, sessions: int, options: BenchOptions, rng: random.Random
) -> list[Turn]:
    """Rounds of ``sessions`` simultaneous sessions, each asking a different question."""
    turns: list[Turn] = []
    for round_index in range(math.ceil(options.concurrent_turns / sessions)):
        chosen = [samples[(round_index * sessions + i) % len(samples)] for i in range(sessions)]

        async def one(sample: SpokenSample, delay: float) -> Exchange:
            await asyncio.sleep(delay)
            return await exchange(agent.url, sample.audio, sample.speech_end_s, reasoning_budget=options.budgets[0])

        seen = await asyncio.gather(*(one(s, rng.uniform(0, 0.5) if i else 0.0) for i, s in enumerate(chosen)))
        turns += [Turn(s, f"{sessions} sessions", e) for s, e in zip(chosen, seen, strict=True)]
        print(f"[{sessions} sessions] " + "  ".join(f"{e.first_packet_delay_ms!s:>7} ms" for e in seen), flush=True)
    return turns


def concurrency_summary(turns: list[Turn], cpu_s: float, peak_mb: float, sessions: int) -> dict[str, Any]:
    records = [t.record for t in turns]
    return {
        "sessions": sessions,
        "turns": len(turns),
        "first_packet_delay_ms": distribution(
            [r["first_packet_delay_ms"] for r in records if r["first_packet_delay_ms"] is not None]
        ),
        "underruns": sum(r["underruns"] for r in records),
        "turns_with_underrun": sum(r["underruns"] > 0 for r in records),
        "underrun_ms": round(sum(r["underrun_ms"] for r in records), 1),
        "cpu_s_per_session": round(cpu_s / len(turns), 2) if turns else None,
        "peak_mb_per_session": round(peak_mb / sessions, 1),
    }


async def concurrency_phase(
    samples: list[SpokenSample], agent: Server, options: BenchOptions, single: list[Turn], single_peak_mb: float
) -> list[dict[str, Any]]:
    """Level 1 is the latency phase's agent (one session at a time on the same server); others run here."""
    rng = random.Random(options.seed)
    levels = []
    for sessions in options.concurrency:
        if sessions == 1:
            levels.append(concurrency_summary(single, sum(t.cpu_s or 0.0 for t in single), single_peak_mb, 1))
            continue
        reset_peak(agent.pid)
        before = usage(agent.pid)
        turns = await concurrency_level(samples, agent, sessions, options, rng)
        after = usage(agent.pid)
        levels.append(concurrency_summary(turns, after.cpu_s - before.cpu_s, after.peak_rss_mb - before.rss_mb, sessions))
    return levels


def barge_samples(count: int) -> list[tuple[SpokenSample, BargeIn]]:
    """Prompts with long replies, each interrupted by another voice half a second into the reply."""
    pairs = []
    for index in range(count):
        prompt = render(Question(BARGE_PROMPTS[index % len(BARGE_PROMPTS)], (), "conversation"), rendition(index))
        interruption = Question(INTERRUPTIONS[index % len(INTERRUPTIONS)], (), "conversation")
        cut = render(interruption, Rendition("espeak:en-us+m3"), lead_s=0.0, tail_s=2.0)
        pairs.append((prompt, BargeIn(cut.audio, cut.speech_start_s, after_s=0.5)))
    return pairs


async def barge_in_phase(agent: Server, options: BenchOptions) -> dict[str, Any]:
    trials = []
    for prompt, cut in barge_samples(options.barge_ins):
        seen = await exchange(agent.url, prompt.audio, prompt.speech_end_s, reasoning_budget=options.budgets[0], barge_in=cut)
        trials.append(seen.barge_in())
        print(f"[barge-in] {prompt.question.text!r:58} cleared after {trials[-1]['onset_to_cleared_ms']} ms", flush=True)
    keys = (
        "onset_to_cleared_ms", "onset_to_truncated_ms", "onset_to_done_ms", "onset_to_last_audio_ms", "onset_to_silence_ms"
    )
    return {
        "trials": len(trials),
        "interrupted": sum(t["interrupted"] for t in trials),
        "statuses": dict(Counter(str(t["status"]) for t in trials)),
        **{key: distribution([t[key] for t in trials if t[key] is not None]) for key in keys},
    }


def grade(turns: list[Turn]) -> None:
    """Transcribe every reply (after the servers are gone, so Whisper does not load the CPU during them) and grade
    the three measures: heard, answered right, can be heard."""
    from realtime.asr import WhisperTranscriber

    asr = WhisperTranscriber()
    for turn in turns:
        audio = turn.seen.reply_audio()
        turn.heard = asr.transcribe(audio).text if len(audio) else ""
        turn.correct = turn.sample.question.correct(turn.heard)
        question_heard, written = turn.seen.transcripts()
        turn.grades = grade_turn(turn.sample.question, question_heard, written, turn.heard)
        turn.seen.reply.clear()


def mode_summary(turns: list[Turn]) -> dict[str, Any]:
    """Delays, every stage's distribution, the CDF, playout underruns, accuracy (overall and by kind)."""
    # accuracy over the questions with an answer key (comparable with earlier runs); conversation is judged by kind
    records = [{**t.record, "correct": t.correct if t.sample.question.answers else None} for t in turns]
    summary = summarise(records)
    delays = [r["first_packet_delay_ms"] for r in records if r["first_packet_delay_ms"] is not None]
    by_kind: dict[str, list[bool]] = {}
    for turn in turns:
        if turn.correct is not None:
            by_kind.setdefault(turn.sample.question.kind, []).append(turn.correct)
    cpu = [t.cpu_s for t in turns if t.cpu_s is not None]
    return {
        **summary,
        "stages_ms": {
            s: distribution([r["stages_ms"][s] for r in records if r["stages_ms"].get(s) is not None]) for s in STAGES
        },
        "server_first_packet_delay_ms": distribution(
            [r["server_first_packet_delay_ms"] for r in records if r["server_first_packet_delay_ms"] is not None]
        ),
        "cdf": cdf(delays),
        "underruns": sum(r["underruns"] for r in records),
        "underrun_ms": round(sum(r["underrun_ms"] for r in records), 1),
        "accuracy_by_kind": {k: round(sum(v) / len(v), 3) for k, v in sorted(by_kind.items())},
        "cpu_s_per_turn": round(sum(cpu) / len(cpu), 2) if cpu else None,
        "measures": measures(
            [(t.sample.question, t.sample.rendition.condition, t.grades) for t in turns if t.grades is not None]
        ),
    }


def webrtc_phase(questions: list[Question], every: list[Question]) -> dict[str, Any]:
    """The same questions from headless Chromium over WebRTC, in a loopback-only namespace (root)."""
    from benchmarks.webrtc_latency import measure_in_namespace

    return measure_in_namespace([every.index(q) for q in questions])


async def measure(options: BenchOptions) -> dict[str, Any]:
    """Run every phase; the result, ready to write."""
    every = load_questions()
    questions = pick(every, options.questions)
    samples = [render(q, rendition(i), seed=options.seed + i) for i, q in enumerate(questions)]  # voices cycle over the run
    started = time.monotonic()
    # No admission control: the concurrency phase measures what every offered session gets (benchmarks.overload
    # measures admission).
    extra = ("--max-sessions", str(max(8, *options.concurrency)), "--latency-budget-ms", "0", *options.serve_args)
    others = [(*AGENT, *profile_args(profile)) for profile in options.profiles]
    with running(AGENT, NAIVE, *others, extra=extra) as (agent, naive, *profile_servers):
        profiles = {f"agent, llm {p}": server for p, server in zip(options.profiles, profile_servers, strict=True)}
        turns, resources = await latency_phase(samples, agent, naive, options, profiles)
        single = [t for t in turns if t.mode == "agent"]
        concurrency = await concurrency_phase(samples, agent, options, single, resources["agent"]["peak_mb_per_session"])
        barge = await barge_in_phase(agent, options) if options.barge_ins else None
        cutoffs = await cutoff_measure(agent.url, options.cutoffs, seed=options.seed) if options.cutoffs else None
        real = await end_of_turn_real.measure(agent.url) if options.real_speech else None
    webrtc = webrtc_phase(questions, every) if "webrtc" in options.transports else None
    overlaps = await backchannels.measure(options.backchannels, options.interruptions, SessionConfig()) \
        if options.backchannels or options.interruptions else None
    grade(turns)
    return {
        "benchmark": "realtime bench",
        "date": now_iso(),
        "label": options.label,
        "preset": options.preset,
        "machine": machine(),
        "models": f"realtime serve {shlex.join(options.serve_args)}" if options.serve_args else EMBEDDED_MODELS,
        # where the files go is not a setting of the measurement (and would put a machine's path in a committed file)
        "options": {k: v for k, v in dataclasses.asdict(options).items() if k != "output_dir"},
        "duration_s": round(time.monotonic() - started, 1),
        "corpus": {
            "questions": len(questions),
            "kinds": dict(Counter(q.kind for q in questions)),
            "voices": sorted({s.rendition.voice for s in samples}),
            "speeds": sorted({s.rendition.speed for s in samples}),
            "noisy": sum(s.rendition.snr_db is not None for s in samples),
            "snr_db": sorted({s.rendition.snr_db for s in samples if s.rendition.snr_db is not None}),
        },
        **latency_results(turns, options, webrtc),
        "concurrency": concurrency,
        "barge_in": barge,
        "cutoffs": cutoffs,
        "backchannels": overlaps,
        "end_of_turn_real": real,
        "resources": resources,
        "turns": [t.row() for t in turns],
    }


def latency_results(turns: list[Turn], options: BenchOptions, webrtc: dict[str, Any] | None) -> dict[str, Any]:
    """Per mode and transport: the latency summaries, the naive/agent ratio and the accuracy curve."""
    modes: dict[str, list[Turn]] = {}
    for turn in turns:
        modes.setdefault(turn.mode, []).append(turn)
    websocket = {mode: mode_summary(group) for mode, group in modes.items()}
    budgets: dict[str, int | None] = {agent_mode(b, options): b for b in options.budgets} | {"naive": None}
    budgets |= {f"agent, llm {p}": options.budgets[0] for p in options.profiles}
    agent_p50, naive_p50 = (websocket[m]["first_packet_delay_ms"]["p50"] for m in ("agent", "naive"))
    return {
        "latency": {"websocket": websocket, **({"webrtc": webrtc} if webrtc else {})},
        "baseline": {"agent_p50_ms": agent_p50, "naive_p50_ms": naive_p50,
                     "p50_ratio_naive_over_agent": round(naive_p50 / agent_p50, 2) if agent_p50 and naive_p50 else None},
        "accuracy": [
            {"mode": mode, "budget": budgets[mode], "accuracy": s["accuracy"], "p50_ms": s["first_packet_delay_ms"]["p50"],
             "p90_ms": s["first_packet_delay_ms"]["p90"], "cpu_s_per_turn": s["cpu_s_per_turn"]}
            for mode, s in websocket.items()
        ],
    }


def write(result: dict[str, Any], output_dir: Path) -> Path:
    """The JSON, the plots and the markdown; returns the JSON's path."""
    output_dir.mkdir(parents=True, exist_ok=True)
    stem = output_dir / f"{dt.date.today().isoformat()}-{result['label']}"
    result["plots"] = [p.name for p in plots.draw(result, stem)]
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    stem.with_suffix(".md").write_text(bench_markdown.render(result))
    return stem.with_suffix(".json")


def run(options: BenchOptions) -> Path:
    result = asyncio.run(measure(options))
    path = write(result, options.output_dir)
    print(path.with_suffix(".md").read_text())
    return path
