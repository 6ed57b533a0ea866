"""Shared summary statistics and result files of the latency benchmarks."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from realtime.latency import STAGES

RESULTS = Path(__file__).with_name("results")
EMBEDDED_MODELS = "whisper-base int8 (CTranslate2) + Qwen2.5-Coder-0.5B Q4_K_M (llama.cpp) + Piper joe medium"

Record = dict[str, Any]
"""A JSON object of the results: one run, a summary, a whole result file."""


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def distribution(values: list[float]) -> dict[str, float | int | None]:
    """Percentiles, mean and spread of ``values``."""
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "mean": round(statistics.fmean(values), 1) if values else None,
        "min": min(values, default=None),
        "max": max(values, default=None),
        "stdev": round(statistics.stdev(values), 1) if len(values) > 1 else None,
    }


def cdf(values: list[float], points: int = 21) -> list[list[float]]:
    """The empirical CDF at ``points`` evenly spaced quantiles: ``[[delay, fraction], ...]`` (compact for a file)."""
    if not values:
        return []
    fractions = np.linspace(0.0, 1.0, points)
    return [[round(float(np.quantile(values, f)), 1), round(float(f), 3)] for f in fractions]


def summarise(runs: list[Record]) -> Record:
    """Delay percentiles and spread, the median of each stage and the answer accuracy of a list of runs."""
    delays = [r["first_packet_delay_ms"] for r in runs if r["first_packet_delay_ms"] is not None]
    graded = [r["correct"] for r in runs if r.get("correct") is not None]
    stages = {
        stage: percentile([r["stages_ms"][stage] for r in runs if r["stages_ms"].get(stage) is not None], 50)
        for stage in STAGES
    }
    return {
        "turns": len(runs),
        "replied": len(delays),
        "first_packet_delay_ms": distribution(delays),
        "stage_median_ms": stages,
        "accuracy": round(sum(graded) / len(graded), 3) if graded else None,
    }


def machine() -> Record:
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def write_results(name: str, label: str, result: Mapping[str, object], markdown: str) -> Path:
    """``benchmarks/results/<date>-<name>-<label>.json`` and ``.md``; returns the markdown path."""
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"{dt.date.today().isoformat()}-{name}-{label}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown)
    return stem.with_suffix(".md")


def delay_table(summary: Mapping[str, Record]) -> list[str]:
    """Markdown rows: one per mode, with delay percentiles and accuracy."""
    lines = ["| mode | turns | p50 ms | p90 ms | p99 ms | mean ms | accuracy |", "|---|---|---|---|---|---|---|"]
    for mode, s in summary.items():
        d = s["first_packet_delay_ms"]
        lines.append(f"| {mode} | {s['replied']}/{s['turns']} | {d['p50']} | {d['p90']} | {d['p99']} | {d['mean']} "
                     f"| {s['accuracy']} |")
    return lines


def stage_table(summary: Mapping[str, Record]) -> list[str]:
    """Markdown rows: the median of each stage, one column per mode."""
    lines = ["| stage | " + " | ".join(summary) + " |", "|---|" + "---|" * len(summary)]
    for stage in STAGES:
        lines.append(f"| {stage} | " + " | ".join(str(s["stage_median_ms"][stage]) for s in summary.values()) + " |")
    return lines
