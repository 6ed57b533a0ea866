"""Answered right, in text: every corpus question asked of each embedded language model profile with each system
prompt, the written reply graded against the known answers (conversational turns: judged, see
:meth:`benchmarks.corpus.Question.judged`). No audio: this isolates the language model, the second of the three
measures of :mod:`benchmarks.grading`, and is how the spoken-answer prompt was chosen (greedy decoding, as the
agent decodes; the prompt is built by :meth:`realtime.conversation.Conversation.reply_prompt`, as the agent's is).

    .venv/bin/python -m benchmarks.answer_quality --llm fast,accurate --label cpu2

``--heard RESULT.json`` asks the questions as a ``realtime bench`` run heard them instead (each turn's recognised
words, misheard ones included; graded against the question actually asked): how well a prompt copes with mishearing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from benchmarks.corpus import KINDS, Question, load_questions
from benchmarks.report import distribution, machine, now_iso, write_results
from realtime.conversation import DEFAULT_INSTRUCTIONS, STOP_SEQUENCES, Conversation
from realtime.decoder import LlamaCppDecoder
from realtime.models import LLM_PROFILES, llm_asset

PROMPTS = {
    "default": DEFAULT_INSTRUCTIONS,
    "previous": (
        "You are a friendly voice assistant. Your replies are spoken aloud, so answer in one or two short "
        "sentences of plain words, with no lists, markdown or emoji. Put the answer first."
    ),
    "qwen": (
        "You are Qwen, created by Alibaba Cloud. You are a helpful assistant. Your replies are spoken aloud: answer "
        "in one short sentence of plain words, the answer first, with no lists, markdown or emoji."
    ),
    "misheard": DEFAULT_INSTRUCTIONS + (
        " The user's words come from speech recognition and may be misheard: answer what they most likely asked."
    ),
    "direct": (
        "You are a voice assistant. Answer correctly in one short sentence, the answer first. Begin a yes-or-no answer "
        "with Yes or No. Write numbers as words. Never use lists, markdown or emoji."
    ),
}
"""The system prompts compared: the agent's (``default``; ``previous`` is the same text, kept to compare a future change
against), ``misheard`` (the agent's, told that the words were recognised from speech and may be misheard; measured on
2026-12-01 with ``--heard`` on the 48 questions as the profiles bench run heard them, and rejected: the fast model got
16 of the first 37 right against 31 with ``default``, narrating "The user asked ..." instead of answering, and the
accurate model recovered none of the misheard questions in the first 19, "capital on Vgipt" among them) and two
candidates measured on the fast model on 2026-12-01 and rejected: Qwen2.5's own default system prompt
followed by the spoken-answer rules (42 of the first 59 questions right against 48 with ``default``: one-word answers,
often wrong) and terse rules (the 0.5B answered "Yes" to each of the first 26 questions, arithmetic included)."""


async def ask(decoder: LlamaCppDecoder, instructions: str, words: str, max_tokens: int) -> tuple[str, float]:
    """The written reply to the user's ``words`` and its time to the first piece (s)."""
    prompt = Conversation(instructions=instructions).reply_prompt(words)
    started, first, pieces = time.monotonic(), None, []
    async for piece in decoder.generate(prompt, max_tokens=max_tokens, stop=STOP_SEQUENCES):
        first = first if first is not None else time.monotonic() - started
        pieces.append(piece)
    return "".join(pieces).strip(), first or 0.0


def heard_questions(result: Path) -> list[tuple[Question, str]]:
    """Each turn of the headline agent (mode ``agent``) in a ``realtime bench`` result whose question was heard at all:
    the question and the words heard."""
    by_text = {q.text: q for q in load_questions()}
    turns = [t for t in json.loads(result.read_text())["turns"] if t["mode"] == "agent"]
    return [(by_text[t["question"]], t["question_heard"]) for t in turns if t.get("question_heard") and t["question"] in by_text]


async def measure(profiles: list[str], prompts: list[str], asked: list[tuple[Question, str]], max_tokens: int = 80) -> dict[str, Any]:
    """Every question (as ``asked``: the question and the words the model gets) for each profile and prompt: the share
    answered right, by kind, and each reply."""
    results: dict[str, Any] = {}
    for profile in profiles:
        decoder = LlamaCppDecoder(llm_asset(profile).path("model.gguf"), slots=1)
        for name in prompts:
            rows = []
            for question, words in asked:
                reply, first_s = await ask(decoder, PROMPTS[name], words, max_tokens)
                rows.append({"question": question.text, "asked": words, "kind": question.kind, "reply": reply,
                             "right": question.correct(reply), "first_piece_ms": round(first_s * 1000)})
                print(f"[{profile} {name}] {'RIGHT' if rows[-1]['right'] else 'wrong'} {question.text!r} -> {reply!r}",
                      flush=True)
            results[f"{profile} / {name}"] = summary(rows)
    return results


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    graded = [r for r in rows if r["right"] is not None]
    by_kind = {k: [r["right"] for r in graded if r["kind"] == k] for k in KINDS}
    return {
        "answered_right": round(sum(r["right"] for r in graded) / len(graded), 3),
        "by_kind": {k: f"{sum(v)}/{len(v)}" for k, v in by_kind.items() if v},
        "first_piece_ms": distribution([r["first_piece_ms"] for r in rows]),
        "replies": rows,
    }


def table(results: dict[str, Any]) -> list[str]:
    lines = ["| profile / prompt | answered right | " + " | ".join(KINDS) + " | first piece p50 ms |",
             "|---|---|" + "---|" * len(KINDS) + "---|"]
    for name, s in results.items():
        kinds = " | ".join(s["by_kind"].get(k, "") for k in KINDS)
        lines.append(f"| {name} | {s['answered_right']:.3f} | {kinds} | {s['first_piece_ms']['p50']} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llm", default=",".join(LLM_PROFILES), help="comma-separated profiles")
    parser.add_argument("--prompts", default=",".join(PROMPTS), help=f"comma-separated, from: {', '.join(PROMPTS)}")
    parser.add_argument("--heard", type=Path, metavar="RESULT.json", help="ask the questions as this bench run heard them")
    parser.add_argument("--label", default="cpu")
    args = parser.parse_args()
    profiles = [p.strip() for p in args.llm.split(",") if p.strip()]
    prompts = [p.strip() for p in args.prompts.split(",") if p.strip()]
    if bad := [p for p in profiles if p not in LLM_PROFILES] + [p for p in prompts if p not in PROMPTS]:
        parser.error(f"unknown profiles or prompts: {bad}")
    asked = heard_questions(args.heard) if args.heard else [(q, q.text) for q in load_questions()]
    results = asyncio.run(measure(profiles, prompts, asked))
    record = {"benchmark": "answer_quality", "date": now_iso(), "label": args.label, "machine": machine(), "results": results}
    text = "\n".join([f"# Answered right in text, per model profile and system prompt ({args.label}, {record['date']})", "",
                      f"{len(asked)} corpus questions"
                      f"{f' as the bench run {args.heard.name} heard them' if args.heard else ''}; greedy decoding; "
                      "conversational turns judged (on topic and polite).", "", *table(results)])
    print(text)
    print(write_results("answers", args.label, record, text + "\n"))


if __name__ == "__main__":
    main()
