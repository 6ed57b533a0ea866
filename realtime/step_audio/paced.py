"""Mind-Paced Speaking (arXiv 2510.09592): think while speaking, with two streams on shared weights.

A *formulation* stream writes the reasoning in segments (80 tokens by default). An *articulation* stream,
prompted with the input, ``<think>``, all the reasoning so far, ``</think>`` and all the answer so far, writes the
next answer segment. Modes differ in how many reasoning segments come before the first answer segment, then
the streams alternate one segment each until the reasoning ends (the model closes it, stops inside it, or the
budget is spent), after which the articulation stream runs to the end of the answer:

- ``think-first``: all the reasoning (within the budget), then the answer;
- ``paced``: one reasoning segment, then alternate (the paper's default);
- ``speak-first``: an answer segment before any reasoning (zero extra tokens before speech).

It is written against one callable, ``next_token(tail)``: the next token after the reply's prompt followed by
``tail`` (``None`` if the reply was abandoned). The caller owns the KV cache; reusing the longest common prefix
makes each stream's next token one decoder step, and a switch of stream costs only the tokens that differ (the
answer so far, re-read after the newer reasoning). Any decoder can serve it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Collection, Sequence
from typing import Literal

from realtime.reasoning import Channel

PacedMode = Literal["think-first", "paced", "speak-first"]
NextToken = Callable[[Sequence[int]], Awaitable[int | None]]
SEGMENT_TOKENS = 80
ANSWER_SEGMENT_TOKENS = 40

_LEAD: dict[str, int | None] = {"think-first": None, "paced": 1, "speak-first": 0}
"""Reasoning segments before the first answer segment (None: all of them)."""


async def mind_paced_speaking(
    next_token: NextToken,
    *,
    think_close: Sequence[int],
    ends: Collection[int],
    mode: PacedMode,
    reasoning_budget: int | None,
    max_answer_tokens: int,
    segment_tokens: int = SEGMENT_TOKENS,
    answer_segment_tokens: int = ANSWER_SEGMENT_TOKENS,
) -> AsyncGenerator[tuple[Channel, int], None]:
    """Stream ``(channel, token)`` for the reasoning and the answer; ``ends`` are the ids that end a stream."""
    run = _Run(next_token, list(think_close), ends, reasoning_budget, max_answer_tokens)
    lead = _LEAD[mode]
    segments = 0
    answer_turn = lead == 0
    while not run.done:
        if run.thinking and not answer_turn:
            async for token in run.formulate(segment_tokens):
                yield "reasoning", token
            segments += 1
            answer_turn = lead is not None and segments >= lead
        else:
            async for token in run.articulate(answer_segment_tokens):
                yield "answer", token
            answer_turn = not run.thinking


class _Run:
    def __init__(
        self,
        next_token: NextToken,
        think_close: list[int],
        ends: Collection[int],
        reasoning_budget: int | None,
        max_answer_tokens: int,
    ) -> None:
        self.next_token = next_token
        self.think_close = think_close
        self.ends = ends
        self.budget = reasoning_budget
        self.max_answer_tokens = max_answer_tokens
        self.reasoning: list[int] = []
        self.held: list[int] = []
        self.answer: list[int] = []
        self.thinking = True
        self.done = False

    async def formulate(self, size: int) -> AsyncIterator[int]:
        """One reasoning segment. Tokens that may begin ``</think>`` are held back until they cannot."""
        for _ in range(size):
            if self.budget is not None and len(self.reasoning) + len(self.held) >= self.budget:
                self.thinking = False
                break
            token = await self.next_token(self.reasoning + self.held)
            if token is None:
                self.done = True
                return
            if token in self.ends:
                self.thinking = False
                break
            self.held.append(token)
            if self.held == self.think_close:
                self.held.clear()
                self.thinking = False
                return
            while self.held and self.held != self.think_close[: len(self.held)]:
                self.reasoning.append(self.held.pop(0))
                yield self.reasoning[-1]
        while not self.thinking and self.held:
            self.reasoning.append(self.held.pop(0))
            yield self.reasoning[-1]

    async def articulate(self, size: int) -> AsyncIterator[int]:
        """One answer segment, after ``<think>`` + the reasoning so far + ``</think>`` + the answer so far."""
        context = self.reasoning + self.think_close
        for _ in range(size):
            if len(self.answer) >= self.max_answer_tokens:
                self.done = True
                return
            token = await self.next_token(context + self.answer)
            if token is None or token in self.ends:
                self.done = True
                return
            self.answer.append(token)
            yield token
