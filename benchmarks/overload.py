"""Overload: more sessions than two cores can serve, with and without admission control, in one run.

For each level of offered sessions (1, 2, 4, 8, 16), the sessions arrive one every ``--arrival-s`` seconds at one
``realtime serve`` (its own process, loopback); each admitted session asks ``--turns`` spoken questions in a row (the
corpus's synthetic voices, streamed in real time, each reply listened to until it has played), as callers would. The
same levels run against a server with admission control (``--latency-budget-ms``, the default 3000) and, as the
baseline, one without it (``--latency-budget-ms 0``: every session is admitted and all slow down together). Reported per
level: the share of sessions refused (``server_busy``) and the first-packet delay (client clock, end of speech to the
first reply audio) of the admitted sessions' turns, p50 and p90.

    .venv/bin/python -m benchmarks.overload --label cpu2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from websockets.exceptions import ConnectionClosed

from benchmarks.client import AGENT, Server, ready
from benchmarks.report import EMBEDDED_MODELS, Record, distribution, machine, now_iso, write_results
from benchmarks.soak import Conversing, Questions, spoken_turn

LEVELS = (1, 2, 4, 8, 16)
SERVERS = {"admission": ("--latency-budget-ms", "3000"), "no admission": ("--latency-budget-ms", "0")}
"""The two servers compared, by name: their ``realtime serve`` options."""


async def caller(server: Server, questions: Questions, turns: int, delay_s: float) -> Record:
    """One offered session: after ``delay_s``, connect; if admitted, ask ``turns`` questions. Its refusal or its turns."""
    await asyncio.sleep(delay_s)
    c = await Conversing.open(server.url)
    try:
        if c.refused is not None:
            return {"refused": c.refused, "turns": []}
        records = []
        with contextlib.suppress(ConnectionClosed):
            for _ in range(turns):
                _, audio, end = questions.next()
                record, _, _ = await spoken_turn(c, audio, end)
                records.append(record)
        return {"refused": None, "turns": records}
    finally:
        c.stop()
        await c.ws.close()


async def level(server: Server, questions: Questions, sessions: int, turns: int, arrival_s: float) -> Record:
    """``sessions`` callers arriving ``arrival_s`` apart; the refusal rate and the admitted turns' delays."""
    callers = await asyncio.gather(*(caller(server, questions, turns, i * arrival_s) for i in range(sessions)))
    delays = [t["first_packet_ms"] for c in callers for t in c["turns"] if t["first_packet_ms"] is not None]
    refused = sum(c["refused"] is not None for c in callers)
    return {
        "offered": sessions, "refused": refused, "refusal_rate": round(refused / sessions, 3),
        "admitted_turns": len(delays), "unanswered_turns": sum(t["first_packet_ms"] is None for c in callers for t in c["turns"]),
        "first_packet_ms": distribution(delays),
    }


async def measure(levels: tuple[int, ...], turns: int, arrival_s: float) -> dict[str, list[Record]]:
    """Every level against each server of :data:`SERVERS`, one server at a time (each alone on the machine)."""
    results: dict[str, list[Record]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        questions = Questions(Path(tmp))
        for name, options in SERVERS.items():
            process = subprocess.Popen([*AGENT, "--port", "0", "--max-sessions", str(max(levels)), *options],
                                       stdout=subprocess.PIPE, text=True)
            server = ready(process)
            try:
                results[name] = []
                for sessions in levels:
                    results[name].append(await level(server, questions, sessions, turns, arrival_s))
                    r = results[name][-1]
                    print(f"[{name}] {sessions:2d} offered: {r['refused']} refused, admitted p50 {r['first_packet_ms']['p50']} ms",
                          flush=True)
                    await asyncio.sleep(35)  # the admission window (30 s) forgets this level before the next
            finally:
                server.stop()
    return results


def table(results: dict[str, list[Record]]) -> list[str]:
    lines = ["| offered sessions | server | refused | admitted turns | p50 ms | p90 ms |", "|---|---|---|---|---|---|"]
    for index in range(len(next(iter(results.values())))):
        for name, rows in results.items():
            r = rows[index]
            d = r["first_packet_ms"]
            lines.append(f"| {r['offered']} | {name} | {r['refused']} ({r['refusal_rate']:.0%}) | {r['admitted_turns']} "
                         f"| {d['p50']} | {d['p90']} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)), help="offered session counts, comma-separated")
    parser.add_argument("--turns", type=int, default=3, help="questions each admitted session asks")
    parser.add_argument("--arrival-s", type=float, default=2.0, help="seconds between two sessions' arrivals")
    parser.add_argument("--label", default="cpu")
    args = parser.parse_args()
    levels = tuple(int(x) for x in args.levels.split(","))
    load = Path("/proc/loadavg").read_text().split()[:3]
    results = asyncio.run(measure(levels, args.turns, args.arrival_s))
    record: dict[str, Any] = {"benchmark": "overload", "date": now_iso(), "label": args.label, "machine": machine(),
                              "models": EMBEDDED_MODELS, "load_average": " ".join(load),
                              "settings": {"turns": args.turns, "arrival_s": args.arrival_s, "servers": SERVERS}, "results": results}
    text = "\n".join([f"# Overload ({args.label}, {record['date']})", "",
                      f"{machine()['cpus']} CPUs, load average {record['load_average']} at the start; {EMBEDDED_MODELS}. "
                      f"Sessions arrive {args.arrival_s:g} s apart; each admitted one asks {args.turns} spoken questions in a "
                      "row. First-packet delay: client clock, end of speech to the first reply audio, admitted sessions "
                      "only.", "", *table(results), "", __doc__.split("\n\n")[1].replace("\n", " ")])
    print(text)
    print(write_results("overload", args.label, record, text + "\n"))


if __name__ == "__main__":
    main()
