"""The decoder interface every brain serves, and its llama.cpp implementation for the embedded model.

A decoder streams text for a prompt, can prefill its cache with a prompt prefix ahead of time (so
that a later prompt extending it only computes the tail), and stops at once when its consumer goes
away. The embedded engine is llama.cpp in-process (``xllamacpp``): on the two cores of the reference machine
(measured 2026-12-01, quiet) it decodes the 0.5B Q4_K_M model at 21-22 tok/s (46 ms a token with two threads, 84
with one: memory-bound, the 491 MB model read per token) and prefills at ~78 tok/s in a batch of 50 tokens but only
~60 in a batch of 8 (the last words and the chat template after a final transcript: ~135 ms), against ~10 tok/s
decode for transformers in bf16 (see README, "Choosing the engine"). Its server keeps one KV cache per slot and
reuses the longest common prefix of a new prompt, which is what incremental prefill needs.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncGenerator, Callable, Sequence
from pathlib import Path
from typing import Protocol

from audio.errors import AgentError
from realtime.context_window import CONTEXT, SLOTS
from realtime.tools import NO_TOOLS, ToolUse, call_grammar


class DecoderError(AgentError, RuntimeError):
    """The decoder failed to produce text for a request."""


Hold = Callable[[], bool]
"""Asked as a reply is written or a prompt prefilled (from any thread): True while the work should wait."""


def never() -> bool:
    """The :data:`Hold` of a reply written straight through."""
    return False


class TextDecoder(Protocol):
    """A causal language model that streams text and keeps a reusable prefix cache."""

    tools_in_prompt: bool
    """True when the prompt must list the tools (the model is run here); False when the request carries them and the
    server renders them with the model's own template."""

    async def prefill(self, prompt: str, *, hold: Hold = never) -> None:
        """Compute and cache the state for ``prompt`` without generating. A decoder that shares this machine's CPU
        with the rest of the agent stops computing while ``hold`` says so (at its next batch of prompt tokens) and then
        goes on from where it stopped; one on another machine may ignore it."""

    def generate(
        self, prompt: str, *, max_tokens: int, stop: Sequence[str] = (), temperature: float = 0.0, tools: ToolUse = NO_TOOLS,
        hold: Hold = never,
    ) -> AsyncGenerator[str, None]:
        """Stream the continuation of ``prompt``; closing the iterator cancels generation. Calls of ``tools`` come back
        as text in Qwen2.5's form (``<tool_call>...</tool_call>``, read by :class:`~realtime.tools.ToolCallSplitter`).
        A decoder that shares this machine's CPU with the rest of the agent stops computing while ``hold`` says so
        (the words it streams are the same); one on another machine may ignore it."""


HOLD_POLL_S = 0.02
"""How often a held reply or prefill asks whether it may go on (s)."""

PROMPT_BATCH = 64
"""Prompt tokens llama.cpp computes in one step (``n_batch``; its default is 2048). A held prefill stops, and a closed
request ends, only between steps, and llama.cpp may begin one more step before it sees the request end: on two cores a
step of 64 tokens of the embedded 0.5B takes ~0.8 s (prompts at ~75-85 tok/s); a whole 1000-token prompt in one step
~13 s. Smaller steps cost throughput: a 1213-token prompt took 14.9-17.8 s in steps of 2048 tokens, 14.2-16.8 in 128,
16.9-18.8 in 96, 19.1-19.3 in 64, 19.7-21.0 in 32 (three runs each). A spoken question asked while three other
sessions prefilled ~600-token items (``benchmarks.background_prefill``, 4 trials each) waited p50 5.5-5.7 s for
its first audio with steps of 128, 2.0-2.4 s with 64 and 1.7 s with 32 (1.2-1.3 s alone); the committed 6-trial run
with 64, 2.9 s (``2026-12-02-background-prefill-cpu2.md``)."""

PROMPT_CACHE_MIB = 48
"""Host memory for llama.cpp's cache of idle slots' prompts (restored when a session whose slot another took speaks
again): ~4 prompts of 1000 tokens of the embedded 0.5B (~12 KB of KV cache a token; ~1700 tokens of the 1.5B at ~28
KB), the sessions beyond the 4 slots under the default limit of 8. llama.cpp fills the cache to its limit: it saves a
slot's state whenever a request that shares little of it takes the slot, which one conversation does at every cut of
its history, new instructions or tool list, and those states are never asked for again. Its default, 8192 MiB, grew
the server ~10 MB a distinct prompt (``benchmarks.soak``: 1313 MB at the start of a 200-turn conversation, 1792 MB at
its end); 256 MiB still grew it steadily through a 245-turn one (1380 MB at turn 20, 1596 MB at turn 240) while a
100-turn soak with the cache off stayed level after turn 20 (1376 -> 1371 MB at turn 100)."""


async def _while_held(hold: Hold) -> None:
    """Return once ``hold`` lets the work go on (asked every :data:`HOLD_POLL_S`)."""
    while hold():
        await asyncio.sleep(HOLD_POLL_S)


def llama_server(  # noqa: ANN201 - returns xllamacpp.Server, imported only here
    model_path: str | Path | None = None,
    *,
    context: int = CONTEXT,
    slots: int = SLOTS,
    threads: int = 2,
    host: str = "127.0.0.1",
    port: int = 0,
    alias: str | None = None,
    api_key: str | None = None,
    prompt_cache_mib: int = PROMPT_CACHE_MIB,
    prompt_batch: int | None = None,
):
    """llama.cpp's server in this process (embedded model by default): in-process calls, and its
    OpenAI-compatible HTTP API on ``host:port`` (0: a free port; see ``listening_address``); ``prompt_cache_mib``:
    host memory for idle slots' prompts (:data:`PROMPT_CACHE_MIB`; 0: none); ``prompt_batch``: prompt tokens a step
    (None: llama.cpp's own, 2048, for a server whose clients never hold a prefill; the embedded decoder's is
    :data:`PROMPT_BATCH`)."""
    import xllamacpp

    from realtime.assets import QWEN_05B_GGUF

    params = xllamacpp.CommonParams()
    params.model.path = str(model_path or QWEN_05B_GGUF.path("model.gguf"))
    params.n_ctx = context
    params.n_parallel = slots
    params.cache_ram_mib = prompt_cache_mib
    if prompt_batch is not None:
        params.n_batch = prompt_batch
        params.n_ubatch = min(params.n_ubatch, prompt_batch)
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.verbosity = -1
    params.warmup = True
    params.hostnames = [host]
    params.port = port
    if alias:
        params.model_alias = {alias}
    if api_key:
        params.api_keys = [api_key]
    return xllamacpp.Server(params)


class LlamaCppDecoder:
    """llama.cpp running in this process, shared by every session (one cache slot per concurrent request). Tool
    calls are constrained to the tools' schemas by a grammar (:func:`~realtime.tools.call_grammar`)."""

    tools_in_prompt = True

    def __init__(
        self, model_path: str | Path | None = None, *, context: int = CONTEXT, slots: int = SLOTS, threads: int = 2
    ) -> None:
        self._server = llama_server(model_path, context=context, slots=slots, threads=threads, prompt_batch=PROMPT_BATCH)

    async def prefill(self, prompt: str, *, hold: Hold = never) -> None:
        """Cache ``prompt``'s state. While ``hold`` says so, the decoder computes nothing: the request ends after its
        step of prompt tokens in progress (:data:`PROMPT_BATCH`) and, once ``hold`` lets it, a new one goes on from
        what the slot cached. That is the best case: llama.cpp gives the new request the idle slot whose cache shares
        the most with it, and with more sessions than slots another prompt may have taken that slot meanwhile (its
        state may then come back from the prompt cache, :data:`PROMPT_CACHE_MIB`, or be computed again)."""
        body = {"prompt": prompt, "max_tokens": 0, "cache_prompt": True, "stream": True}
        while True:
            await _while_held(hold)
            async for piece in self._stream(body, hold):
                if piece is None:
                    break
            else:
                return

    async def generate(
        self, prompt: str, *, max_tokens: int, stop: Sequence[str] = (), temperature: float = 0.0, tools: ToolUse = NO_TOOLS,
        hold: Hold = never,
    ) -> AsyncGenerator[str, None]:
        """Stream the continuation. While ``hold`` says so, the decoder computes nothing: the request ends at its next
        token and, once ``hold`` lets it, a new one goes on from the prompt and the text so far (the slot's cached
        prefix makes that cost a token or two). On two cores this gives the CPU to the reply's first clause's
        synthesis and to other sessions' first clauses (:mod:`realtime.priority`). With tools, the grammar constrains
        one request from its start, so that one is never held."""
        body: dict[str, object] = {
            "stop": list(stop),
            "temperature": temperature,
            # greedy decoding of a 0.5B model loops ("2 plus 2 equals 4. 2 plus 2 ...") without it
            "repeat_penalty": 1.15,
            "repeat_last_n": 64,
            "stream": True,
            "cache_prompt": True,
            **call_grammar(tools),
        }
        pausing = never if tools.offered else hold
        written: list[str] = []
        while len(written) < max_tokens:
            paused = False
            request = {**body, "prompt": prompt + "".join(written), "max_tokens": max_tokens - len(written)}
            async for piece in self._stream(request, pausing):
                if piece is None:
                    paused = True
                    break
                written.append(piece)
                yield piece
            if not paused:
                return
            await _while_held(hold)

    async def _stream(self, body: dict[str, object], hold: Hold) -> AsyncGenerator[str | None, None]:
        """One streamed request: its pieces, then None if it ended because ``hold`` said so. llama.cpp reports its
        progress through the prompt after every step (:data:`PROMPT_BATCH`), where a request closed or held ends (it may
        have begun one more step meanwhile)."""
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[str | BaseException | None] = asyncio.Queue()
        cancelled, paused = threading.Event(), threading.Event()

        def on_piece(text: str) -> bool:
            if text:
                loop.call_soon_threadsafe(pieces.put_nowait, text)
            if hold():
                paused.set()
            return cancelled.is_set() or paused.is_set()

        def run() -> None:
            try:
                self._request({**body, "return_progress": True}, on_piece)
                outcome: BaseException | None = None
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                outcome = exc
            loop.call_soon_threadsafe(pieces.put_nowait, outcome)

        worker = asyncio.ensure_future(asyncio.to_thread(run))
        try:
            while (item := await pieces.get()) is not None:
                if isinstance(item, BaseException):
                    raise DecoderError(str(item)) from item
                yield item
            if paused.is_set():
                yield None
        finally:
            cancelled.set()
            # Wait for the request to stop (at its next piece or report of progress); a cancellation of the consumer
            # meanwhile goes on up (swallowed, it would let a stopped turn's reply run on and fill a queue nobody reads).
            await asyncio.shield(worker)

    def _request(self, body: dict[str, object], on_piece: Callable[[str], bool]) -> None:
        """Run one streamed completion request (blocking); ``on_piece`` receives the text of each response that
        carries some, or an empty text for each report of progress through the prompt, and returns True to end the
        request."""
        failure: list[str] = []

        def callback(response: object) -> bool:
            data = json.loads(response) if isinstance(response, str) else response
            if not isinstance(data, dict):
                return False
            if "error" in data:
                failure.append(str(data["error"]))
                return True
            choices = data.get("choices") or [{}]
            text = choices[0].get("text") or data.get("content") or ""
            # the last responses (the reason it stopped, the timings) come once the request is over: nothing to stop
            return on_piece(text) if (text or "prompt_progress" in data) else False

        self._server.handle_completions(body, callback)
        if failure:
            raise DecoderError(failure[0])
