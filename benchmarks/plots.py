"""The harness's PNG plots (matplotlib, Agg): latency CDFs, stage breakdown, accuracy against delay, concurrency."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend

if TYPE_CHECKING:
    from matplotlib.axes import Axes

SEGMENTS = (
    ("final_transcript", "transcribe"),
    ("first_answer_token", "think"),
    ("first_clause", "write first clause"),
    ("first_tts_audio", "synthesise"),
    ("first_audio_out", "send"),
)
"""Stages that end each segment of the stacked breakdown (ms after the server's end of speech)."""


def stage_segments(summary: dict[str, Any]) -> list[tuple[str, float]]:
    """Median time in each segment, then the client's share (network, VAD lag, client), never negative."""
    segments, reached = [], 0.0
    for stage, name in SEGMENTS:
        at = summary["stages_ms"].get(stage, {}).get("p50")  # older results lack the newer stages
        if at is None:
            continue
        segments.append((name, max(0.0, at - reached)))
        reached = max(reached, at)
    client = summary["first_packet_delay_ms"]["p50"]
    segments.append(("network + client", max(0.0, (client or reached) - reached)))
    return segments


def draw(result: dict[str, Any], stem: Path) -> list[Path]:
    """Write every plot next to ``stem``; returns their paths."""
    return [
        figure(stem.with_name(f"{stem.name}-cdf.png"), lambda ax: latency_cdf(ax, result)),
        figure(stem.with_name(f"{stem.name}-stages.png"), lambda ax: stages(ax, result)),
        figure(stem.with_name(f"{stem.name}-accuracy.png"), lambda ax: accuracy(ax, result)),
        figure(stem.with_name(f"{stem.name}-concurrency.png"), lambda ax: concurrency(ax, result)),
    ]


def figure(path: Path, plot: Callable[[Axes], None]) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
    plot(ax)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def latency_cdf(ax: Axes, result: dict[str, Any]) -> None:
    for transport, modes in result["latency"].items():
        for mode, summary in modes.items():
            points = summary.get("cdf") or []
            if points:
                ax.step([p[0] for p in points], [p[1] for p in points], where="post", label=f"{transport}: {mode}")
    ax.set(xlabel="first-packet delay after the true end of speech (ms)", ylabel="fraction of turns", title="Latency CDF",
           ylim=(0, 1.02))
    ax.legend(fontsize=8)


def stages(ax: Axes, result: dict[str, Any]) -> None:
    modes = result["latency"]["websocket"]
    for row, (mode, summary) in enumerate(modes.items()):
        left = 0.0
        for index, (name, width) in enumerate(stage_segments(summary)):
            ax.barh(row, width, left=left, color=f"C{index}", label=name if row == 0 else None)  # tab10, in order
            left += width
    ax.set_yticks(range(len(modes)), list(modes))
    ax.set(xlabel="median ms after the end of speech", title="Where the first-packet delay goes (websocket)")
    ax.legend(fontsize=8, loc="lower right")


def accuracy(ax: Axes, result: dict[str, Any]) -> None:
    agent = [p for p in result["accuracy"] if None not in (p["budget"], p["accuracy"], p["p50_ms"]) and "llm" not in p["mode"]]
    agent.sort(key=lambda p: p["budget"])
    ax.plot([p["p50_ms"] for p in agent], [p["accuracy"] for p in agent], "o-", label="agent (reasoning budget)")
    for p in agent:
        ax.annotate(f"{p['budget']} tokens", (p["p50_ms"], p["accuracy"]), textcoords="offset points", xytext=(4, 4),
                    fontsize=8)
    for p in result["accuracy"]:
        if (p["budget"] is None or "llm" in p["mode"]) and p["accuracy"] is not None and p["p50_ms"] is not None:
            ax.plot([p["p50_ms"]], [p["accuracy"]], "s", label=p["mode"])
    ax.set(xlabel="median first-packet delay (ms)", ylabel="answer accuracy", title="Accuracy against delay", ylim=(0, 1.05))
    ax.legend(fontsize=8)


def concurrency(ax: Axes, result: dict[str, Any]) -> None:
    levels = result["concurrency"]
    sessions = [level["sessions"] for level in levels]
    for key in ("p50", "p90"):
        ax.plot(sessions, [level["first_packet_delay_ms"][key] for level in levels], "o-", label=f"{key} delay")
    ax.set(xlabel="simultaneous sessions", ylabel="first-packet delay (ms)", title="Concurrency")
    ax.set_xticks(sessions)
    twin = ax.twinx()
    twin.bar(sessions, [level["underrun_ms"] / max(1, level["turns"]) for level in levels], alpha=0.25, color="red", width=0.4,
             label="underrun ms per turn")
    twin.set_ylabel("playout underrun per turn (ms)")
    twin.set_ylim(bottom=0)
    (handles, labels), (twin_handles, twin_labels) = ax.get_legend_handles_labels(), twin.get_legend_handles_labels()
    ax.legend(handles + twin_handles, labels + twin_labels, fontsize=8, loc="upper left")
