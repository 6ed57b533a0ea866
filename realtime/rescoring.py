"""Second-pass rescoring of Whisper's n-best list by a language model: which of the hypotheses that sound alike reads
as something a person says.

Whisper's beam keeps hypotheses that differ by a sound ("What is the opposite on heart?", "... of heart?", "... of
hot?"); its first is the likeliest acoustically, not the likeliest sentence. A second pass with a text language model
is the classic remedy (n-best rescoring, the second pass of Kaldi's and ESPnet's recipes): each hypothesis gets its
acoustic log-probability plus ``weight`` times the language model's log-probability of its words, and the best sum
wins. The language model is SmolLM2-135M-Instruct (Apache-2.0, a general English chat model; its GGUF file comes from
a wheel, sha256-checked), scoring the words as a user's chat turn, run by transformers in bfloat16 in a worker
process (see :class:`NBestRescorer` for why): dequantised at load (~270 MB of memory), so that the matrix units of
CPUs that have them (Intel AMX) do the work.

Measured on 2026-12-02 on two cores (``benchmarks.recognition_wer``, Whisper base with a beam of 5, each clip with and
without rescoring in turn; the scoring then in the same process, on two threads): on the bench's 86 spoken questions
the word error rate fell from 0.124 to 0.105 and the questions heard word for word rose from 64% to 72%, for +36 ms a
question (p50; +51 ms p90); on 200 of Debian's Asterisk recordings (real speech, one studio voice) the word error rate
stayed 0.057 (one prompt fewer word for word: "twelfth" heard as "12." rather than "12th"), for +16 ms. In the agent
(``realtime bench``, the worker on one thread) the first reply audio came ~55 ms later at the median. Probes before it (the five hypotheses of each
clip kept and scored offline): the right words were among them for 66 of the questions and first for 55; weights of
0.3, 0.5 and 1.0 gave 63, 63 and 65 questions and 155, 152 and 149 of the 200 recordings word for word (156 without
rescoring), so the weight is 0.3; the 0.5B Qwen chat model in SmolLM2's place heard as many questions (63 at 0.5) in
~140 ms against ~53 ms. Without the rule on length (:func:`rescore`) the recordings' word error rate doubled.
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from realtime.asr import words

log = logging.getLogger(__name__)

USER_TURN = "<|im_start|>user\n"
"""What the scored words follow: the opening of a user's turn in SmolLM2-Instruct's chat template (ChatML)."""

WEIGHT = 0.3
"""The language model's weight against Whisper's log-probability (see the module's measurements)."""

TIMEOUT_S = 2.0
"""How long a transcript waits for its scores (s) before it goes on with Whisper's first hypothesis; a scoring takes
~30-50 ms on two cores."""


@dataclass(frozen=True)
class Hypothesis:
    """One of Whisper's n-best: its words and its log-probability (natural log, summed over its tokens)."""

    text: str
    log_probability: float


class _LanguageModel:
    """The scoring model itself, in the worker process: SmolLM2 by transformers in bfloat16 on ``threads`` threads."""

    def __init__(self, path: Path, threads: int) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        torch.set_num_threads(threads)
        self._tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        if self._tokenizer.pad_token is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token
        self._tokenizer.padding_side = "right"  # each text keeps its positions; the padding after it is not scored
        transformers_logging.set_verbosity_error()  # it advises float32 for packed GGUF kernels; bfloat16 is faster here
        self._model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.bfloat16)
        self._model.eval()

    def log_probabilities(self, texts: list[str]) -> list[float]:
        import torch

        batch = self._tokenizer([USER_TURN + text for text in texts], return_tensors="pt", padding=True)
        with torch.inference_mode():
            logits = self._model(**batch).logits[:, :-1].float()
        targets = batch.input_ids[:, 1:]
        token_lp = logits.log_softmax(-1).gather(-1, targets[..., None])[..., 0] * batch.attention_mask[:, 1:]
        return [float(x) for x in token_lp.sum(1)]


_worker_model: _LanguageModel | None = None
"""The worker process's model (set by :func:`_load`)."""


def _load(path: str, threads: int) -> None:
    global _worker_model
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the server's to handle; it stops the worker
    os.environ["TQDM_DISABLE"] = "1"  # transformers' GGUF loader draws a bar of its tensors that no switch of its own stops
    parent = multiprocessing.parent_process()
    assert parent is not None, "run in a worker process"
    # A server killed outright (SIGKILL, an unhandled SIGTERM) cannot tell its worker to stop: the worker goes with it.
    threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()
    _worker_model = _LanguageModel(Path(path), threads)


def _exit_with(parent_sentinel: int) -> None:
    multiprocessing.connection.wait([parent_sentinel])
    os._exit(0)


def _score(texts: list[str]) -> list[float]:
    assert _worker_model is not None, "the worker's initializer loads the model"
    return _worker_model.log_probabilities(texts)


class NBestRescorer:
    """Picks the best of Whisper's hypotheses by acoustic plus language-model log-probability; safe to share
    between sessions (one scoring at a time). ``model_path``: a GGUF chat model with a ChatML template (default:
    SmolLM2-135M-Instruct); ``threads``: torch's intra-op threads. One by default: four hypotheses took 63 ms on two
    threads and 88 ms on one on an idle 2-core machine, but beside two busy threads of another process 156 ms at the
    median with a tail to 2 s on two (OpenMP threads waiting for each other at every step while the cores are taken)
    against 174 ms and at most 196 ms on one; the tail showed in the bench (final transcript p99 1.9 s).

    The model runs in a process of its own (started here, loaded before this returns): with torch in the server's
    process, llama.cpp wrote each reply's first clause ~200 ms later on two cores though torch was idle (both run on
    the OpenMP runtime). A worker that dies or answers late costs a transcript its rescoring, never the transcript: it
    gets Whisper's first hypothesis, and a dead worker is started again in the background. Raises
    :class:`~realtime.assets.ModelIntegrityError` for a missing or corrupt default model, ``RuntimeError`` when the
    worker cannot load the model."""

    def __init__(self, model_path: str | Path | None = None, *, weight: float = WEIGHT, threads: int = 1) -> None:
        from realtime.assets import SMOLLM2_135M_GGUF

        self._path = Path(model_path) if model_path else SMOLLM2_135M_GGUF.path("model.gguf")
        self._threads = threads
        self.weight = weight
        self._restarting = threading.Lock()
        self._pool, self._ready = self._start()
        try:
            self._ready.result()
        except BrokenProcessPool as exc:
            self.close()
            raise RuntimeError(
                f"the rescoring worker could not load {self._path}: see its error above (a script that starts it needs "
                "`if __name__ == '__main__':`, Python's rule for the processes it spawns)"
            ) from exc

    def _start(self) -> tuple[concurrent.futures.ProcessPoolExecutor, concurrent.futures.Future[list[float]]]:
        """A worker (spawned, so that nothing of this process's runtimes is inherited) and its first scoring, which pays
        for lazy initialisation."""
        pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_load,
            initargs=(str(self._path), self._threads),
        )
        return pool, pool.submit(_score, ["Hello."])

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until the worker has loaded its model (after a start again); raises ``TimeoutError`` after
        ``timeout`` seconds, ``BrokenProcessPool`` when it could not."""
        self._ready.result(timeout=timeout)

    def worker_pid(self) -> int:
        """The worker process's id (for a supervisor, or a test that kills it)."""
        return self._pool.submit(os.getpid).result(timeout=TIMEOUT_S)

    def log_probabilities(self, texts: list[str]) -> list[float]:
        """The language model's log-probability (natural log, summed over tokens) of each text as a user's turn.
        Raises ``TimeoutError`` after :data:`TIMEOUT_S`, ``BrokenProcessPool`` when the worker died or is starting."""
        if not self._ready.done():
            raise BrokenProcessPool("the rescoring worker is starting again")
        return self._pool.submit(_score, texts).result(timeout=TIMEOUT_S)

    def best(self, hypotheses: Sequence[Hypothesis]) -> int:
        """The index of the best of ``hypotheses`` by :func:`rescore` with this language model; Whisper's first (0)
        when the worker fails, which is logged (a dead worker is started again)."""
        try:
            return rescore(hypotheses, self.log_probabilities, self.weight)
        except TimeoutError:
            log.warning("rescoring took over %.1f s; Whisper's first hypothesis is kept", TIMEOUT_S)
        except BrokenProcessPool as exc:
            log.warning("no rescoring (%s); Whisper's first hypothesis is kept", exc)
            with self._restarting:
                if self._ready.done():  # not already starting again for another session's transcript
                    self._pool.shutdown(wait=False, cancel_futures=True)
                    self._pool, self._ready = self._start()
        except Exception:
            log.exception("rescoring failed; Whisper's first hypothesis is kept")
        return 0

    def close(self) -> None:
        """Stop the worker process."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def rescore(hypotheses: Sequence[Hypothesis], prior: Callable[[list[str]], list[float]], weight: float) -> int:
    """The index of the hypothesis with the highest ``log_probability + weight * prior``; ``prior`` gives the language
    model's log-probability of each text. Only hypotheses with at least as many words as Whisper's first compete: a sum
    of log-probabilities favours fewer words, and a hypothesis that stops early ("if" for a minute of speech, found on
    the Asterisk recordings) would win. Hypotheses with the same words (case and punctuation aside) are scored once,
    as the first of them (Whisper's better one); with one such group left, ``prior`` is not asked. Raises
    ``ValueError`` for no hypotheses."""
    if not hypotheses:
        raise ValueError("no hypotheses to rescore")
    least = len(words(hypotheses[0].text))
    first: dict[tuple[str, ...], int] = {}
    for i, hypothesis in enumerate(hypotheses):
        heard = tuple(words(hypothesis.text))
        if len(heard) >= least:
            first.setdefault(heard, i)
    if len(first) == 1:
        return 0
    chosen = list(first.values())
    lm = prior([hypotheses[i].text for i in chosen])
    totals = [hypotheses[i].log_probability + weight * p for i, p in zip(chosen, lm, strict=True)]
    return chosen[max(range(len(chosen)), key=totals.__getitem__)]
