"""Fairness with background work: do other sessions' prefills of long histories starve a spoken question?

One ``realtime serve`` per checkout (its own process, loopback, no admission control). In a **contended** trial,
``--loaders`` sessions each add a long typed item at once (``--words`` random words of notes, new every trial, so
nothing is cached), and each then prefills its history in the background; ``--after-s`` later the asking session
speaks a short corpus question (a synthetic voice streamed in real time) and its first-packet delay is measured (client
clock, from the frame with the true last speech sample to the first reply audio; the reply is then cancelled). Then
every loader asks a short typed question in turn, its delay to the first reply audio taking what is left of its own
prefill; the loaders close. In an **alone** trial the asking session speaks the same question with no loaders. The
two alternate, trial by trial, on the same questions; with ``--baseline-tree`` another checkout's server is measured
in the same run.

    .venv/bin/python -m benchmarks.background_prefill --trials 6 --label cpu2
    .venv/bin/python -m benchmarks.background_prefill --baseline-tree ../before --label cpu2
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from pathlib import Path

import numpy as np

from benchmarks.client import Server
from benchmarks.fairness import first_reply, side_by_side, side_by_side_record
from benchmarks.report import Record, distribution, write_results
from benchmarks.soak import Conversing, Questions

WORDS = ("river mountain lantern copper violet harbor meadow pencil thunder orchard saddle marble window garden silver "
         "basket candle falcon ribbon quarry").split()
TYPED = ("What is two plus two?", "What colour is the sky?", "How many legs does a dog have?", "Is ice cold?")


def notes(seed: int, words: int) -> str:
    """A long user message of ``words`` random words (~1.3 tokens each), different for every ``seed``."""
    pick = random.Random(seed).choice
    return "Please keep these notes of mine in mind: " + " ".join(pick(WORDS) for _ in range(words)) + "."


async def typed_first_audio(c: Conversing, text: str) -> float | None:
    """Ask ``text`` (typed, ``response.create``): ms to the first reply audio, the reply then cancelled."""
    mark, sent = len(c.inbox.events), time.monotonic()
    await c.send(c.ws, {"type": "conversation.item.create",
                        "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}})
    await c.send(c.ws, {"type": "response.create"})
    first = await c.inbox.first(lambda e: e["type"] == "response.output_audio.delta", mark)
    if first is None:
        return None
    await c.send(c.ws, {"type": "response.cancel"})
    await c.inbox.first(lambda e: e["type"] == "response.done", mark)
    return round((first[0] - sent) * 1000, 1)


STAGES = ("final_transcript", "first_token", "first_tts_audio")
"""Server stages reported for the spoken question (ms after the end of speech, ``response.latency``)."""


async def ask(c: Conversing, audio: np.ndarray, end_s: float) -> Record:
    """The asking session's spoken question, followed to its first reply audio (then cancelled), with the server's
    stages of it."""
    mark = len(c.inbox.events)
    record = await first_reply(c, audio, end_s)
    latency = await c.inbox.first(lambda e: e["type"] == "response.latency", mark, 10)
    stages = {} if latency is None else latency[1]["latency"]["stages_ms"]
    return {**record, **{f"{stage}_ms": stages.get(stage) for stage in STAGES}}


async def contended(server: Server, asker: Conversing, audio: np.ndarray, end_s: float, *, trial: int, loaders: int,
                    words: int, after_s: float) -> Record:
    """The asking session's spoken question ``after_s`` after ``loaders`` sessions added long items; then theirs."""
    others = [await Conversing.open(server.url) for _ in range(loaders)]
    try:
        marks = [len(c.inbox.events) for c in others]
        added = time.monotonic()
        for index, c in enumerate(others):
            await c.send(c.ws, {"type": "conversation.item.create", "item": {
                "type": "message", "role": "user", "content": [{"type": "input_text", "text": notes(trial * 100 + index, words)}]}})
        for c, mark in zip(others, marks, strict=True):
            await c.inbox.first(lambda e: e["type"] == "conversation.item.added", mark)
        await asyncio.sleep(max(0.0, added + after_s - time.monotonic()))
        record = await ask(asker, audio, end_s)
        record["loaders_ms"] = [await typed_first_audio(c, TYPED[i % len(TYPED)]) for i, c in enumerate(others)]
        record["all_answered_s"] = round(time.monotonic() - added, 1)
        return record
    finally:
        for c in others:
            c.stop()
            await c.ws.close()


async def run(servers: dict[str, Server], args: argparse.Namespace, folder: Path) -> list[Record]:
    """``args.trials`` questions, each asked of every server alone and contended (in alternating order)."""
    questions, rows = Questions(folder), []
    askers = {name: await Conversing.open(server.url) for name, server in servers.items()}
    for asker in askers.values():
        await asker.send(asker.ws, {"type": "session.update", "session": {"type": "realtime", "extensions": ["latency"]}})
    try:
        for trial in range(args.trials):
            text, audio, end_s = questions.next()
            for name, server in servers.items():
                order = ("contended", "alone") if trial % 2 == 0 else ("alone", "contended")
                for mode in order:
                    if mode == "alone":
                        record = await ask(askers[name], audio, end_s)
                    else:
                        record = await contended(server, askers[name], audio, end_s, trial=trial, loaders=args.loaders,
                                                 words=args.words, after_s=args.after_s)
                    rows.append({"server": name, "trial": trial, "mode": mode, "question": text, **record})
                    print(f"[{name} {mode:9}] {text!r:45} first packet {record['first_packet_ms']} ms, stages "
                          + "/".join(str(record[f"{stage}_ms"]) for stage in STAGES)
                          + (f", loaders {record['loaders_ms']} ms, all answered in {record['all_answered_s']} s"
                             if mode == "contended" else ""), flush=True)
                    await asyncio.sleep(1.0)
    finally:
        for c in askers.values():
            c.stop()
            await c.ws.close()
    return rows


def table(rows: list[Record]) -> list[str]:
    lines = ["| server | the spoken question asked | trials | first-packet delay p50 ms | p90 ms | max ms "
             "| transcript / first token / first audio synthesised, p50 ms | loaders' typed questions p50 ms | max ms "
             "| all answered p50 s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r["server"] for r in rows):
        for mode in ("alone", "contended"):
            mine = [r for r in rows if r["server"] == name and r["mode"] == mode]
            d = distribution([r["first_packet_ms"] for r in mine if r["first_packet_ms"] is not None])
            stages = " / ".join(str(distribution([r[f"{s}_ms"] for r in mine if r.get(f"{s}_ms") is not None])["p50"])
                                for s in STAGES)
            if mode == "alone":
                lines.append(f"| {name} | alone | {len(mine)} | {d['p50']} | {d['p90']} | {d['max']} | {stages} | - | - | - |")
                continue
            loaders = distribution([ms for r in mine for ms in r["loaders_ms"] if ms is not None])
            total = distribution([r["all_answered_s"] for r in mine])
            lines.append(f"| {name} | while other sessions prefill long items | {len(mine)} | {d['p50']} | {d['p90']} | "
                         f"{d['max']} | {stages} | {loaders['p50']} | {loaders['max']} | {total['p50']} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--loaders", type=int, default=3, help="sessions that add a long item (the decoder has 4 slots)")
    parser.add_argument("--words", type=int, default=450, help="words in each long item (~600 tokens)")
    parser.add_argument("--after-s", type=float, default=0.5, help="the question starts this long after the items")
    parser.add_argument("--baseline-tree", type=Path, help="another checkout (e.g. a git worktree of the previous "
                        "version) whose server is measured in the same run, trial by trial")
    parser.add_argument("--label", default="cpu")
    args = parser.parse_args()
    rows = side_by_side(args.baseline_tree, lambda servers, folder: run(servers, args, folder))
    record, where = side_by_side_record("background_prefill", args, rows)
    text = "\n".join([
        f"# Fairness: a spoken question while other sessions prefill long items ({args.label}, {record['date']})", "",
        where + f"Contended: {args.loaders} other sessions each add a typed item of {args.words} random words at once (each then "
        f"prefills its history in the background), and {args.after_s} s later the asking session speaks a short "
        "question; then each loader asks a short typed question in turn (what is left of its own prefill comes first). "
        "Alone: the same spoken question with no other session. First-packet delay: from the frame with the true last "
        "speech sample to the first reply audio (client clock); the server's stages after its end of speech "
        "(`response.latency`). All answered: from the items' sending to the last "
        "loader's first reply audio.", "", *table(rows)])
    print(text)
    print(write_results("background-prefill", args.label, record, text + "\n"))


if __name__ == "__main__":
    main()
