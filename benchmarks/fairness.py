"""Fairness: does one session's long answer starve another session's first clause?

One ``realtime serve`` (its own process, loopback, no admission control). In a **contended** trial, session A asks for
a long story (typed, ``response.create``); ``--after-s`` after A's first reply audio, session B speaks a short corpus
question (a synthetic voice streamed in real time). In an **alone** trial B speaks the same question with no other
session. The two alternate, trial by trial, on the same questions. Reported: B's first-packet delay (client clock,
from sending the frame with the true last speech sample to the first reply audio) p50/p90 in each, and whether A's
story kept playing without a gap while B was served (A's audio simulated on a client that plays what arrives in
real time: underruns until A's reply is cancelled, 3 s after B's first audio).

    .venv/bin/python -m benchmarks.fairness --trials 8 --label cpu2
    .venv/bin/python -m benchmarks.fairness --baseline-tree ../before --label cpu2   # against another checkout
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path

import numpy as np

from benchmarks.client import AGENT, WIRE_RATE, Server, launch, ready
from benchmarks.playout import simulate
from benchmarks.report import EMBEDDED_MODELS, Record, distribution, machine, now_iso, write_results
from benchmarks.soak import Conversing, Questions, spoken_turn

STORY = "Tell me a long story about a brave knight, a clever dragon and the village they both protect."
LISTEN_AFTER_S = 3.0
"""How long A's story is followed after B's first audio, before A cancels it."""


async def story_playout(a: Conversing, response_id: str, until: float) -> Record:
    """A's reply audio up to ``until`` (client clock), as a client that plays it in real time hears it."""
    chunks = [(t, e["bytes"] / 2 / WIRE_RATE) for t, e in a.inbox.events
              if e["type"] == "response.output_audio.delta" and e.get("response_id") == response_id and t <= until]
    played = simulate(chunks)
    return {"story_audio_s": round(sum(d for _, d in chunks), 2), "story_underruns": played.underruns,
            "story_underrun_ms": round(played.underrun_s * 1000, 1)}


async def contended(server: Server, audio: np.ndarray, end_s: float, after_s: float) -> Record:
    """B's spoken question ``after_s`` into A's story."""
    a, b = await Conversing.open(server.url), await Conversing.open(server.url)
    try:
        mark = len(a.inbox.events)
        await a.send(a.ws, {"type": "conversation.item.create", "item": {
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": STORY}]}})
        await a.send(a.ws, {"type": "response.create"})
        first = await a.inbox.first(lambda e: e["type"] == "response.output_audio.delta", mark)
        if first is None:
            raise RuntimeError("the story never started")
        await asyncio.sleep(max(0.0, first[0] + after_s - time.monotonic()))
        record = await first_reply(b, audio, end_s)
        b_first = time.monotonic()
        await asyncio.sleep(LISTEN_AFTER_S)
        record.update(await story_playout(a, first[1]["response_id"], b_first + LISTEN_AFTER_S))
        await a.send(a.ws, {"type": "response.cancel"})
        return record
    finally:
        for c in (a, b):
            c.stop()
            await c.ws.close()


async def first_reply(c: Conversing, audio: np.ndarray, end_s: float) -> Record:
    """A spoken question, followed to its first reply audio (the reply is then cancelled)."""
    record, _, _ = await spoken_turn(c, audio, end_s, then="cancel")
    return record


async def alone(server: Server, audio: np.ndarray, end_s: float) -> Record:
    b = await Conversing.open(server.url)
    try:
        return await first_reply(b, audio, end_s)
    finally:
        b.stop()
        await b.ws.close()


async def run(servers: dict[str, Server], trials: int, after_s: float, folder: Path) -> list[Record]:
    """``trials`` questions, each asked of every server alone and contended (in alternating order)."""
    questions, rows = Questions(folder), []
    for trial in range(trials):
        text, audio, end_s = questions.next()
        for name, server in servers.items():
            order = ("contended", "alone") if trial % 2 == 0 else ("alone", "contended")
            for mode in order:
                record = await (contended(server, audio, end_s, after_s) if mode == "contended" else alone(server, audio, end_s))
                rows.append({"server": name, "trial": trial, "mode": mode, "question": text, **record})
                print(f"[{name} {mode:9}] {text!r:45} B first packet {record['first_packet_ms']} ms"
                      + (f", story underruns {record['story_underruns']}" if mode == "contended" else ""), flush=True)
                await asyncio.sleep(1.0)
    return rows


def table(rows: list[Record]) -> list[str]:
    lines = ["| server | B's question asked | trials | first-packet delay p50 ms | p90 ms | max ms | A's story with a gap |",
             "|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r["server"] for r in rows):
        for mode in ("alone", "contended"):
            mine = [r for r in rows if r["server"] == name and r["mode"] == mode]
            d = distribution([r["first_packet_ms"] for r in mine if r["first_packet_ms"] is not None])
            gaps = f"{sum(r['story_underruns'] > 0 for r in mine)}/{len(mine)}" if mode == "contended" else "-"
            label = "alone" if mode == "alone" else "during another session's long answer"
            lines.append(f"| {name} | {label} | {len(mine)} | {d['p50']} | {d['p90']} | {d['max']} | {gaps} |")
    return lines


def baseline_commit(tree: Path | None) -> str | None:
    """The commit checked out in ``tree`` (recorded instead of its path, which is this machine's)."""
    if tree is None:
        return None
    return subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip() or "unknown"


def side_by_side(baseline_tree: Path | None, measure: Callable[[dict[str, Server], Path], Coroutine[None, None, list[Record]]],
                 *serve_args: str) -> list[Record]:
    """Start this checkout's ``realtime serve`` ("this") and, when given, ``baseline_tree``'s ("baseline"), both without
    admission control (every session is served whatever the load); run ``measure`` on them with a scratch folder, then
    stop them."""
    trees = {"this": None, **({"baseline": baseline_tree.resolve()} if baseline_tree else {})}
    processes = {name: launch(AGENT, "--latency-budget-ms", "0", *serve_args, tree=tree) for name, tree in trees.items()}
    try:
        servers = {name: ready(process) for name, process in processes.items()}
        with tempfile.TemporaryDirectory() as tmp:
            return asyncio.run(measure(servers, Path(tmp)))
    finally:
        for process in processes.values():
            with contextlib.suppress(Exception):
                Server(process, "").stop()


def side_by_side_record(benchmark: str, args: argparse.Namespace, rows: list[Record]) -> tuple[Record, str]:
    """A side-by-side run's result record (the baseline named by its commit), and the sentence that says where it ran."""
    record = {"benchmark": benchmark, "date": now_iso(), "label": args.label, "machine": machine(),
              "models": EMBEDDED_MODELS, "options": {**vars(args), "baseline_tree": baseline_commit(args.baseline_tree)},
              "rows": rows}
    where = (f"{machine()['cpus']} CPUs; {EMBEDDED_MODELS}; `realtime serve` without admission control"
             f"{' (this checkout, and the baseline checkout side by side, trial by trial)' if args.baseline_tree else ''}. ")
    return record, where


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--after-s", type=float, default=1.0, help="B starts speaking this long after A's first audio")
    parser.add_argument("--baseline-tree", type=Path, help="another checkout (e.g. a git worktree of the previous "
                        "version) whose server is measured in the same run, trial by trial")
    parser.add_argument("--label", default="cpu")
    parser.add_argument("--serve-args", default="", help="more `realtime serve` options")
    args = parser.parse_args()
    rows = side_by_side(args.baseline_tree, lambda servers, folder: run(servers, args.trials, args.after_s, folder),
                        *args.serve_args.split())
    record, where = side_by_side_record("fairness", args, rows)
    text = "\n".join([
        f"# Fairness: a first clause during another session's long answer ({args.label}, {record['date']})", "",
        where + f"Contended: session A asks for a long story (typed), session B speaks a short question {args.after_s} s after "
        "A's first audio; alone: B's question with no other session; the same questions in alternating order. "
        "A's story with a gap: its audio, played in real time as it arrived, ran dry before A cancelled it "
        f"{LISTEN_AFTER_S} s after B's first audio.", "", *table(rows)])
    print(text)
    print(write_results("fairness", args.label, record, text + "\n"))


if __name__ == "__main__":
    main()
