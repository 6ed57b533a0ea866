"""What listen-while-think saves over the network: time to the first token of a served model, with and
without warming its prefix cache while the user speaks.

``realtime llm-server`` (llama.cpp's OpenAI-compatible server, the embedded model) runs in its own process on
loopback. For each question a conversation the server has never seen (instructions and a few earlier turns,
``--history`` turns long) is asked the question twice, side by side, in alternating order:

- cold: the request at the end of the turn is the first the server sees of it;
- warmed: first the prefix as far as the partial transcripts go (two one-token warm-ups, with the words
  heard so far, as the session sends them), then the same final request.

The time runs from sending the final request to its first streamed piece of text.

    .venv/bin/python -m benchmarks.remote_prefill --questions 24 --label cpu2
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from benchmarks.client import LLM_SERVER, running
from benchmarks.corpus import load_questions
from benchmarks.report import Record, distribution, machine, now_iso, write_results
from realtime.chat_client import ChatClient, ChatEndpoint
from realtime.conversation import Conversation
from realtime.remote_brain import RemoteTextDecoder

MODEL = "qwen2.5-0.5b-instruct"


def conversation(index: int, history: int) -> Conversation:
    """A conversation of ``history`` earlier turns, unique to ``index`` (so no cache holds it yet)."""
    talk = Conversation(instructions=f"Session {index}. " + Conversation().instructions)
    for turn in range(history):
        talk.add("user", f"Question {turn} of session {index}: can you remind me what we said about topic {turn}?")
        talk.add("assistant", f"We said that topic {turn} matters for session {index}, and that we would come back to it.")
    return talk


async def first_token_ms(decoder: RemoteTextDecoder, prompt: str) -> float:
    started = time.perf_counter()
    async for _ in decoder.generate(prompt, max_tokens=1):
        break
    return (time.perf_counter() - started) * 1000


async def run(count: int, history: int, label: str) -> Path:
    times: dict[str, list[float]] = {"cold": [], "warmed": []}
    with running(LLM_SERVER) as (server,):
        client = ChatClient(ChatEndpoint(server.url, MODEL))
        decoder = RemoteTextDecoder(client)
        try:
            await first_token_ms(decoder, Conversation().reply_prompt("Hello"))
            for index, question in enumerate(load_questions(count)):
                words = question.text.split()
                for mode in ("cold", "warmed") if index % 2 == 0 else ("warmed", "cold"):
                    talk = conversation(2 * index + (mode == "warmed"), history)
                    if mode == "warmed":
                        for heard in (words[: len(words) // 2], words[:-1]):
                            await decoder.prefill(talk.user_prefix(" ".join(heard)))
                    times[mode].append(await first_token_ms(decoder, talk.reply_prompt(question.text)))
                cold, warmed = times["cold"][-1], times["warmed"][-1]
                print(f"{question.text!r:60} cold {cold:7.1f} ms  warmed {warmed:7.1f} ms", flush=True)
        finally:
            await client.close()
    summary = {mode: distribution(v) for mode, v in times.items()}
    cold_p50, warmed_p50 = summary["cold"]["p50"], summary["warmed"]["p50"]
    ratio = round(cold_p50 / warmed_p50, 2) if cold_p50 and warmed_p50 else None
    result: Record = {
        "benchmark": "remote_prefill", "date": now_iso(), "label": label, "machine": machine(),
        "server": "realtime llm-server (llama.cpp HTTP, Qwen2.5-Coder-0.5B Q4_K_M)", "history_turns": history,
        "summary": summary, "p50_ratio_cold_over_warmed": ratio, "first_token_ms": times,
    }
    text = "\n".join([
        f"# served model: time to first token with and without prefix warming ({label}, {result['date']})",
        "",
        f"{result['machine']['cpus']} CPUs; {result['server']} on loopback; conversations with the default instructions and "
        f"{history} earlier turns, never seen by the server; cold and warmed side by side, alternating.",
        "",
        "| request at end of turn | n | p50 ms | p90 ms | mean ms |",
        "|---|---|---|---|---|",
        *(f"| {mode} | {s['n']} | {s['p50']} | {s['p90']} | {s['mean']} |" for mode, s in summary.items()),
        "",
        f"Cold p50 / warmed p50: **{ratio}x**",
    ]) + "\n"
    print(text)
    return write_results("remote-prefill", label, result, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=24)
    parser.add_argument("--history", type=int, default=4, help="earlier turns in each conversation")
    parser.add_argument("--label", default="cpu")
    args = parser.parse_args()
    asyncio.run(run(args.questions, args.history, args.label))


if __name__ == "__main__":
    main()
