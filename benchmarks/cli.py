"""``realtime bench``: the benchmark harness as a sub-command of the ``realtime`` command line.

The product never imports this package: ``realtime.cli`` finds the command through the entry point group
``realtime.commands`` (``bench = "benchmarks.cli:register"`` in pyproject.toml) and lets :func:`register` add it.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from realtime.errors import UsageError

if TYPE_CHECKING:
    from benchmarks.harness import BenchOptions

TRANSPORTS = ("websocket", "webrtc")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``bench`` sub-command (its options and its handler) to the ``realtime`` parser's sub-commands."""
    bench = commands.add_parser("bench",
                                help="measure latency, accuracy, concurrency and barge-in against a `realtime serve` process")
    preset = bench.add_mutually_exclusive_group()
    preset.add_argument("--quick", action="store_true",
                        help="a few minutes: 8 questions, 1 and 2 sessions, one barge-in, one budget, "
                             "2 paused questions per turn detection (default)")
    preset.add_argument("--full", action="store_true",
                        help="every question and every measurement: 1-8 sessions, budgets 0/32/96, 24 paused "
                             "questions per turn detection, end of turn on real recordings")
    bench.add_argument("--label", default="cpu", help="names the result files: <date>-<label>.json/.md/-*.png")
    bench.add_argument("--transports", default="websocket",
                       help="comma-separated: websocket, webrtc (headless Chromium; root)")
    bench.add_argument("--output-dir", default="benchmarks/results", help="where the results go (default benchmarks/results)")
    bench.add_argument("--questions", type=int, help="override the preset: this many questions (0: all)")
    bench.add_argument("--concurrency", metavar="N,N", help="override the preset: simultaneous session counts, e.g. 1,2,4")
    bench.add_argument("--concurrent-turns", type=int,
                       help="override the preset: at least this many turns per concurrency level")
    bench.add_argument("--budgets", metavar="N,N",
                       help="override the preset: reasoning budgets, e.g. 0,32,96 (the first is the headline)")
    bench.add_argument("--barge-ins", type=int, help="override the preset: barge-in trials")
    bench.add_argument("--cutoffs", type=int, metavar="N",
                       help="override the preset: questions spoken with a mid-sentence pause per turn-detection setting "
                            "(quick 2, full 24; 0: none)")
    bench.add_argument("--backchannels", type=int, metavar="N",
                       help="override the preset: backchannels and noises spoken over a reply (quick 0, full 24)")
    bench.add_argument("--interruptions", type=int, metavar="N",
                       help="override the preset: real interruptions spoken over a reply (quick 0, full 20)")
    bench.add_argument("--real-speech", action=argparse.BooleanOptionalAction, default=None,
                       help="end of turn on real recorded conversations (on with --full; fetched on demand)")
    bench.add_argument("--profiles", metavar="NAME,NAME",
                       help="override the preset: other embedded language model profiles (realtime serve --llm) asked "
                            "the same questions beside the agent (quick: none; full: accurate); NAME+rescore adds "
                            "--asr-rescore")
    bench.add_argument("--serve-args", default="", metavar="ARGS",
                       help="options for both measured servers, "
                            'e.g. --serve-args="--brain openai-compatible --base-url URL --model NAME"')
    bench.set_defaults(handler=run_bench)


def _numbers(text: str, option: str, *, least: int) -> tuple[int, ...]:
    """``"0,32,96"`` -> ``(0, 32, 96)``; raises :class:`UsageError` naming ``option`` for anything else, or for a
    number below ``least``."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts or not all(part.isdecimal() and int(part) >= least for part in parts):
        raise UsageError(f"{option} takes comma-separated whole numbers from {least}, e.g. 1,2,4 (got {text!r})")
    return tuple(int(part) for part in parts)


def bench_options(args: argparse.Namespace) -> BenchOptions:
    """The harness options for parsed ``bench`` arguments (the harness loads only here: it is slow to import); raises
    :class:`UsageError` for an unknown transport, a list that is not numbers or unbalanced ``--serve-args`` quotes."""
    from benchmarks.harness import BenchOptions, profile_args

    transports = tuple(t.strip() for t in args.transports.split(",") if t.strip())
    if unknown := set(transports) - set(TRANSPORTS):
        raise UsageError(f"unknown transports: {', '.join(sorted(unknown))} (choose from {', '.join(TRANSPORTS)})")
    try:
        serve_args = tuple(shlex.split(args.serve_args))
    except ValueError as exc:  # shlex's only error: unbalanced quotes or a trailing escape
        raise UsageError(f"--serve-args: {exc}") from None
    overrides: dict[str, object] = {
        "label": args.label, "transports": transports, "output_dir": Path(args.output_dir), "serve_args": serve_args,
    }
    if args.profiles is not None:
        profiles = tuple(p.strip() for p in args.profiles.split(",") if p.strip())
        for profile in profiles:
            try:
                profile_args(profile)
            except ValueError as exc:
                raise UsageError(str(exc)) from exc
        overrides["profiles"] = profiles
    if args.questions is not None:
        overrides["questions"] = args.questions or None  # 0: all
    for name in ("cutoffs", "backchannels", "interruptions"):
        if getattr(args, name) is not None and getattr(args, name) < 0:
            raise UsageError(f"--{name} takes a whole number from 0 (got {getattr(args, name)})")
    for name in ("barge_ins", "concurrent_turns", "cutoffs", "real_speech", "backchannels", "interruptions"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    for name, least in (("concurrency", 1), ("budgets", 0)):
        if getattr(args, name):
            overrides[name] = _numbers(getattr(args, name), "--" + name, least=least)
    return BenchOptions.full(**overrides) if args.full else BenchOptions.quick(**overrides)


def run_bench(args: argparse.Namespace) -> int:
    """The ``bench`` handler: run the harness and print where the results are."""
    from benchmarks.harness import run

    print(f"results: {run(bench_options(args))}")
    return 0
