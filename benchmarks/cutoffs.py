"""False cut-offs: does the agent start answering while the user pauses mid-question?

Each question is spoken as one sentence with a natural pause of 300-700 ms before its last word or two ("What is
the capital of ... France?", :func:`benchmarks.corpus.render_paused`; ``--rendering separate`` voices the two parts
apart, the first then falling like a finished sentence) and streamed in real time to ``realtime
serve`` (:func:`benchmarks.client.exchange`), once per turn-detection setting (:data:`SETTINGS`, sent with
``session.update``). A turn is a **false cut-off** when the agent began answering before the user finished
(:func:`judge`): the server ended the turn before the true end of the second part (``speech_stopped`` or
``input_audio_buffer.committed`` arrived before it, or ``speech_stopped`` placed the end of speech inside the
pause) and a ``response.created`` followed, or reply audio arrived before the true end. The same questions
spoken without a pause give each setting's ordinary first-packet delay, so the latency / cut-off trade-off of
the eagerness shows in one table. Whether the reply answered the whole question is read from the server's own
transcript of its last reply (``response.output_audio_transcript.done``) against the known answers: no Whisper.

A setting the server refuses (an ``error`` to the ``session.update``), or accepts but reports back as another
type, is recorded as unsupported, not measured.

    .venv/bin/python -m benchmarks.cutoffs --questions 8 --label cpu2 [--baseline REV] [--rendering separate]

With ``--baseline REV`` the server of that git revision (a temporary worktree, this environment's packages) is
measured on the same questions in the same run, first.

``realtime bench`` runs it as a phase (``--cutoffs N``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from benchmarks.client import AGENT, Exchange, Stamped, exchange, running
from benchmarks.corpus import RENDERINGS, PausedSample, Question, SpokenSample, load_questions, pausable, pick, render, render_paused, rendition
from benchmarks.report import EMBEDDED_MODELS, distribution, machine, now_iso, write_results

SETTINGS: dict[str, dict[str, Any]] = {
    "server_vad": {"type": "server_vad"},
    **{f"semantic_vad {e}": {"type": "semantic_vad", "eagerness": e} for e in ("low", "medium", "high", "auto")},
}
"""The turn-detection settings compared, by name: the server's default VAD, and OpenAI's semantic VAD at each
eagerness."""

ENDED = ("input_audio_buffer.speech_stopped", "input_audio_buffer.committed")


def judge(timeline: Sequence[Stamped], speech_end: float, *, start: float,
          second_start_s: float | None = None) -> dict[str, Any]:
    """Whether the agent began answering before the true end of speech (``speech_end``, client clock; ``start``:
    when the first audio frame was sent, so that a ``speech_stopped``'s ``audio_end_ms`` lands on the same clock).

    The turn ended early when a ``speech_stopped`` or ``committed`` arrived before ``speech_end``, or a
    ``speech_stopped`` put the end of speech before ``second_start_s`` (the server decided in the pause, even if
    it told the client late); it is a cut-off once a ``response.created`` follows such an end, or as soon as reply
    audio arrives before ``speech_end``. ``early_ms``: how long before the true end the turn was ended (or the
    audio came)."""
    ended: float | None = None
    verdict: dict[str, Any] = {"cut_off": False, "why": None, "early_ms": None,
                               "commits": sum(kind == "input_audio_buffer.committed" for _, kind, _ in timeline)}
    for arrived, kind, info in timeline:
        if kind in ENDED and ended is None:
            placed = info.get("audio_end_ms")
            in_pause = second_start_s is not None and placed is not None and placed / 1000 < second_start_s
            if arrived < speech_end or in_pause:
                ended = min(arrived, start + placed / 1000) if placed is not None else arrived
        elif kind == "response.created" and ended is not None:
            return {**verdict, "cut_off": True, "why": "committed", "early_ms": round((speech_end - ended) * 1000, 1)}
        elif kind == "response.output_audio.delta" and arrived < speech_end:
            return {**verdict, "cut_off": True, "why": "audio", "early_ms": round((speech_end - arrived) * 1000, 1)}
    return verdict


def echoed(session: dict[str, Any]) -> dict[str, Any] | None:
    """The turn detection a ``session.updated`` reports (GA shape or beta shape)."""
    audio_in = session.get("audio", {}).get("input", {}) if isinstance(session.get("audio"), dict) else {}
    detection = audio_in.get("turn_detection", session.get("turn_detection"))
    return detection if isinstance(detection, dict) else None


def unsupported(seen: Exchange, asked: dict[str, Any]) -> str | None:
    """Why the server did not take the setting (None: it did): its error, or the different type or eagerness it
    reported back."""
    if seen.refused is not None:
        return f"error: {seen.refused}"
    told = echoed(seen.session)
    if told is None:
        return "accepted, but session.updated reports no turn detection"
    for key in ("type", "eagerness"):
        if key in asked and told.get(key, asked[key]) != asked[key] or key == "type" and key not in told:
            return f"accepted, but session.updated reports {key} {told.get(key)!r}"
    return None


def transcripts(timeline: Sequence[Stamped], kind: str) -> list[str]:
    return [str(info.get("transcript", "")) for _, k, info in timeline if k == kind]


def row(sample: SpokenSample, seen: Exchange) -> dict[str, Any]:
    """One turn: the verdict, the delay from the true end, what the server heard and whether the last reply
    answered the question."""
    second_start = sample.second_start_s if isinstance(sample, PausedSample) else None
    verdict = judge(seen.timeline, seen.speech_end, start=seen.speech_end - sample.speech_end_s, second_start_s=second_start)
    replies = transcripts(seen.timeline, "response.output_audio_transcript.done")
    record: dict[str, Any] = {
        "question": sample.question.text, "kind": sample.question.kind, **sample.rendition.describe(),
        **verdict, "first_packet_delay_ms": seen.first_packet_delay_ms,
        "heard": transcripts(seen.timeline, "conversation.item.input_audio_transcription.completed"),
        "reply": replies[-1] if replies else None,
        "answered": sample.question.correct(replies[-1]) if replies else (False if sample.question.answers else None),
    }
    if isinstance(sample, PausedSample):
        record.update(first=sample.first, second=sample.second, pause_ms=round(sample.pause_s * 1000))
    return record


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The share of false cut-offs (with n), the delay of the turns that were not cut and the share answered."""
    graded = [r["answered"] for r in rows if r["answered"] is not None]
    cut = [r for r in rows if r["cut_off"]]
    return {
        "n": len(rows),
        "cut_offs": len(cut),
        "cut_off_share": round(len(cut) / len(rows), 3) if rows else None,
        "answered": round(sum(graded) / len(graded), 3) if graded else None,
        "answered_n": len(graded),
        "first_packet_delay_ms": distribution(
            [r["first_packet_delay_ms"] for r in rows if not r["cut_off"] and r["first_packet_delay_ms"] is not None]
        ),
        "early_ms": distribution([r["early_ms"] for r in cut if r["early_ms"] is not None]),
    }


def samples(count: int, seed: int = 0, rendering: str = "continuous") -> list[tuple[SpokenSample, SpokenSample]]:
    """``count`` questions spread over the corpus (those long enough to pause in), each as (paused, plain), voices,
    speeds and noise cycling as in the latency phase; the paused ones voiced as ``rendering`` (one of
    :data:`~benchmarks.corpus.RENDERINGS`)."""
    rng = random.Random(seed)
    chosen: list[Question] = pick([q for q in load_questions() if pausable(q)], count)
    return [(render_paused(q, rendition(i), rng, seed=seed + i, rendering=rendering), render(q, rendition(i), seed=seed + i))
            for i, q in enumerate(chosen)]


async def measure(url: str, count: int, settings: dict[str, dict[str, Any]] | None = None, *, seed: int = 0,
                  plain: bool = True, rendering: str = "continuous", server: str = "") -> dict[str, Any]:
    """Every setting on the same spoken questions (paused as ``rendering``, and unless ``plain`` is off, plain), one
    session per turn; ``server`` names the server in the progress lines."""
    pairs = samples(count, seed, rendering)
    results: dict[str, Any] = {}
    for name, asked in (settings or SETTINGS).items():
        rows: dict[str, list[dict[str, Any]]] = {"paused": [], "plain": []}
        reason = None
        for paused, whole in pairs:
            for kind, sample in (("paused", paused), ("plain", whole))[: 2 if plain else 1]:
                seen = await exchange(url, sample.audio, sample.speech_end_s, turn_detection=asked,
                                      finish="reply_after_end", timeout_s=60.0)
                if (reason := unsupported(seen, asked)) is not None:
                    break
                rows[kind].append(row(sample, seen))
                r = rows[kind][-1]
                print(f"[cut-offs {server}{name:19}] {kind:6} {sample.question.text!r:58} "
                      f"{'CUT ' + str(r['early_ms']) + ' ms early' if r['cut_off'] else 'waited'}, "
                      f"{r['first_packet_delay_ms']} ms, answered {r['answered']}", flush=True)
            if reason is not None:
                print(f"[cut-offs {server}{name:19}] unsupported: {reason}", flush=True)
                break
        results[name] = {"turn_detection": asked, "status": "unsupported" if reason else "measured", "reason": reason,
                         **({} if reason else {k: summary(v) for k, v in rows.items() if v}),
                         "turns": [] if reason else [{"mode": k, **r} for k, v in rows.items() for r in v]}
    return {"questions": len(pairs), "pause_ms": [300, 700], "rendering": rendering, "settings": results}


def table(cutoffs: dict[str, Any]) -> list[str]:
    """Markdown: one row per setting, false cut-offs of paused questions beside the delays of plain ones."""
    lines = ["| turn detection | false cut-offs (paused) | answered right (paused) | p50 / p90 ms (paused, not cut) "
             "| p50 / p90 ms (plain) | cut-offs (plain) | answered (plain) |", "|---|---|---|---|---|---|---|"]
    for name, s in cutoffs["settings"].items():
        if s["status"] != "measured":
            lines.append(f"| {name} | unsupported: {s['reason']} | | | | | |")
            continue
        p, w = s.get("paused", {}), s.get("plain")
        cells = [f"{p['cut_offs']}/{p['n']} ({p['cut_off_share']:.0%})", f"{p['answered']} (n={p['answered_n']})",
                 f"{p['first_packet_delay_ms']['p50']} / {p['first_packet_delay_ms']['p90']}"]
        cells += [f"{w['first_packet_delay_ms']['p50']} / {w['first_packet_delay_ms']['p90']}",
                  f"{w['cut_offs']}/{w['n']}", f"{w['answered']} (n={w['answered_n']})"] if w else ["", "", ""]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


NOTE = ("Paused: each question spoken with a 300-700 ms pause before its last content word or two (continuous: voiced "
        "as one sentence with the pause inside; separate: each part voiced alone); a false cut-off is a turn the "
        "server ended before the true end of the second part (followed by `response.created`) or reply audio before "
        "it. Delays run from the true end of speech to the first reply audio (turns not cut off). Answered: the "
        "server's transcript of its last reply holds a known answer.")


ROOT = Path(__file__).resolve().parent.parent


def commit_of(rev: str) -> str:
    """``rev`` (``HEAD~6``, a branch, a hash) as the short hash it names now. Raises ``subprocess.CalledProcessError``
    for a revision git does not know."""
    return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "--verify", f"{rev}^{{commit}}"],
                          check=True, capture_output=True, text=True).stdout.strip()


@contextlib.contextmanager
def worktree(rev: str) -> Iterator[str]:
    """A temporary git worktree of this repository at ``rev`` (removed on exit). Raises
    ``subprocess.CalledProcessError`` for a revision git does not know."""
    with tempfile.TemporaryDirectory() as parent:
        tree = str(Path(parent) / "baseline")
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--quiet", "--detach", tree, rev], check=True)
        try:
            yield tree
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", tree], check=False)


def report(result: dict[str, Any], title: str) -> list[str]:
    """Markdown for one server's :func:`measure`."""
    return [f"## {title}", "", f"Paused questions voiced {result['rendering']}.", "", *table(result), ""]


async def _main(count: int, names: list[str], label: str, seed: int, rendering: str, baseline: str | None, plain: bool) -> None:
    settings = {n: SETTINGS[n] for n in names}
    baseline = commit_of(baseline) if baseline else None  # recorded as the commit, not a ref that moves
    with contextlib.ExitStack() as stack:
        trees = [None, stack.enter_context(worktree(baseline))] if baseline else [None]
        servers = stack.enter_context(running(*[AGENT] * len(trees), trees=trees))
        # the baseline first: whatever the machine does meanwhile, both see the same questions in the same run
        options: dict[str, Any] = {"seed": seed, "rendering": rendering, "plain": plain}
        result = {"before": await measure(servers[1].url, count, settings, server=f"baseline {baseline} ", **options)} if baseline else {}
        result["after"] = await measure(servers[0].url, count, settings, server="this version " if baseline else "", **options)
    record = {"benchmark": "cutoffs", "date": now_iso(), "label": label, "machine": machine(), "models": EMBEDDED_MODELS,
              "baseline": baseline, "cutoffs": result["after"], **({"before": result["before"]} if baseline else {})}
    heading = [f"# False cut-offs and end-of-turn delay per turn detection ({label}, {record['date']})", "",
               f"{machine()['cpus']} CPUs; {EMBEDDED_MODELS}; {count} questions.", ""]
    sections = report(result["after"], "This version") + (report(result["before"], f"Baseline {baseline}") if baseline else [])
    text = "\n".join([*heading, *sections, NOTE])
    print(text)
    print(write_results("cutoffs", label, record, text + "\n"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--settings", default=",".join(SETTINGS), help=f"comma-separated, from: {', '.join(SETTINGS)}")
    parser.add_argument("--rendering", choices=RENDERINGS, default="continuous",
                        help="how a paused question is voiced (benchmarks.corpus.RENDERINGS)")
    parser.add_argument("--baseline", metavar="REV", help="also measure the server of this git revision, first, in the same run "
                        "(recorded as its commit hash)")
    parser.add_argument("--paused-only", action="store_true", help="skip the same questions spoken without a pause")
    parser.add_argument("--label", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    names = [n.strip() for n in args.settings.split(",") if n.strip()]
    if unknown := [n for n in names if n not in SETTINGS]:
        parser.error(f"unknown settings: {unknown}")
    asyncio.run(_main(args.questions, names, args.label, args.seed, args.rendering, args.baseline, not args.paused_only))


if __name__ == "__main__":
    main()
