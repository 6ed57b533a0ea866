"""The overload benchmark's table on made-up levels, and one real level: a session offered to an idle server with
admission control is admitted (the real server and models; one question)."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest

from benchmarks.client import AGENT, ready
from benchmarks.overload import level, table
from benchmarks.soak import Questions


def test_the_table_puts_both_servers_side_by_side_per_level() -> None:
    def row(offered: int, refused: int, p50: float) -> dict:
        return {"offered": offered, "refused": refused, "refusal_rate": refused / offered, "admitted_turns": offered - refused,
                "first_packet_ms": {"p50": p50, "p90": p50 * 2}}

    lines = table({"admission": [row(1, 0, 900.0), row(8, 5, 2100.0)], "no admission": [row(1, 0, 950.0), row(8, 0, 6000.0)]})
    assert lines[2] == "| 1 | admission | 0 (0%) | 1 | 900.0 | 1800.0 |"
    assert lines[4].startswith("| 8 | admission | 5 (62%) | 3 |") and lines[5].startswith("| 8 | no admission | 0 (0%) | 8 |")


@pytest.mark.slow
async def test_an_idle_server_admits_a_caller_and_answers_it() -> None:
    process = subprocess.Popen([*AGENT, "--port", "0", "--latency-budget-ms", "3000"], stdout=subprocess.PIPE, text=True)
    server = ready(process)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            result = await level(server, Questions(Path(tmp)), sessions=1, turns=1, arrival_s=0.0)
    finally:
        server.stop()
    assert (result["offered"], result["refused"], result["admitted_turns"]) == (1, 0, 1)
    assert result["first_packet_ms"]["p50"] > 0
