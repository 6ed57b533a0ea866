"""The soak benchmark, small: one conversation of every kind of turn and two sessions dropped without a close frame,
against a real ``realtime serve`` on loopback."""

from __future__ import annotations

import os

import pytest

from benchmarks.procstat import usage
from benchmarks.soak import kind_of, sampled_growth, soak


def test_proc_usage_counts_open_files_and_threads() -> None:
    now = usage(os.getpid())
    assert now.fds >= 3 and now.threads >= 1


def test_the_schedule_mixes_every_kind_of_turn() -> None:
    assert [kind_of(turn) for turn in range(1, 7)] == ["spoken", "typed", "barge-in", "spoken", "cancel", "tool"]


def test_memory_growth_compares_the_medians_of_the_second_and_the_last_quarter() -> None:
    samples = [[0, 1000.0], [20, 1300.0], [40, 1400.0], [60, 1390.0], [80, 1500.0], [100, 1420.0]]
    # second quarter (25, 50]: 1400; last quarter (75, 100]: median of 1500 and 1420 = 1460
    assert sampled_growth(samples, 100) == 4.3
    assert sampled_growth(samples[:3], 100) is None  # none in the last quarter (75, 100]
    assert sampled_growth(samples[:1] + samples[4:], 100) is None  # none in the second (25, 50]
    assert sampled_growth(samples, 90) == 7.1  # quarters (22.5, 45] and (67.5, 90]: 1400 -> 1500 (turn 100 is past the end)


@pytest.mark.slow
async def test_a_small_soak_reports_every_figure() -> None:
    result = await soak(6, 2)
    assert result["kinds"] == {"spoken": 2, "barge-in": 1, "cancel": 1, "typed": 1, "tool": 1}
    records = result["records"]
    assert [r["turn"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert all(r["first_packet_ms"] is not None and r["first_packet_ms"] > 0 for r in records)
    assert result["first_packet_ms"]["all"]["n"] == 4 and result["typed_first_packet_ms"]["n"] == 1
    assert result["tool_call_ms"]["n"] == result["tool_answer_first_packet_ms"]["n"] == 1
    assert [r["at"] for r in result["resources"]] == ["start", "middle", "end", "after sessions"]
    assert all(r["rss_mb"] > 100 and r["fds"] > 3 and r["threads"] > 1 and r["asyncio_tasks"] > 0 for r in result["resources"])
    history = result["history"]
    assert history["items_held"] == history["items_added"] >= 10  # nothing dropped this early (a call and its output too)
    assert history["prompt_tokens_estimated"] > 50
    assert result["abrupt_sessions"]["opened"] == 2
    assert [n for n, _ in result["abrupt_sessions"]["rss_mb"]] == [0]  # sampled before the first and every 10th
    assert [n for n, _ in result["conversation_rss_mb"]] == [0]  # sampled at the start and every 20th turn
