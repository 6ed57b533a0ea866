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
import time
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
"""How long a transcript waits for its scores (s) before it goes on with Whisper's first hypothesis; four hypotheses
took 88 ms on one thread of an idle 2-core machine, 174 ms beside two busy threads."""

LOAD_TIMEOUT_S = 300.0
"""How long the constructor waits for the worker to load its model (s; ~16 s on two cores)."""

STUCK_AFTER = 3
"""Scorings in a row past :data:`TIMEOUT_S` after which the worker is taken for stuck and started again."""

RESTART_INTERVAL_S = 60.0
"""A worker is started again at most once in this many seconds (s) after the start of the one that failed, so that a
model that keeps failing to load does not take the cores from the sessions."""


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
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the server's: its exit stops the worker cleanly
    _quiet_progress_bars()
    parent = multiprocessing.parent_process()
    assert parent is not None, "run in a worker process"
    # A server killed outright (SIGKILL, an unhandled SIGTERM) cannot tell its worker to stop: the worker goes with it.
    threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()
    _worker_model = _LanguageModel(Path(path), threads)


def _quiet_progress_bars() -> None:
    """No progress bars on the server's terminal from the worker's model load. transformers' "Loading weights" bar
    obeys its own switch; its GGUF loader's "Converting and de-quantizing GGUF tensors" bar is plain tqdm, which reads
    ``TQDM_DISABLE`` only when it is imported, and the spawned worker has imported it already (with the server's main
    module, before this initializer runs): so tqdm's default is changed in this process instead."""
    from functools import partialmethod

    import tqdm
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    tqdm.tqdm.__init__ = partialmethod(tqdm.tqdm.__init__, disable=True)


def _exit_with(parent_sentinel: int) -> None:
    multiprocessing.connection.wait([parent_sentinel])
    os._exit(0)


def _score(texts: list[str]) -> list[float]:
    assert _worker_model is not None, "the worker's initializer loads the model"
    return _worker_model.log_probabilities(texts)


def _warm() -> int:
    """The first scoring, which pays for lazy initialisation; the worker's process id."""
    _score(["Hello."])
    return os.getpid()


class _Starting(Exception):
    """The worker is loading its model (at a start again): nothing to restart."""


@dataclass(frozen=True)
class _Worker:
    """One worker process: its pool of one, the future of its process id once its model is loaded (or of the error
    that stopped it) and when it was started (``time.monotonic()``, s)."""

    pool: concurrent.futures.ProcessPoolExecutor
    ready: concurrent.futures.Future[int]
    started: float

    def pid(self) -> int | None:
        """The process id once loaded; None while loading or after it failed to load."""
        if not self.ready.done() or self.ready.exception() is not None:
            return None
        return self.ready.result()

    def stop(self) -> None:
        """Kill the process if it still runs (a stuck one included) and shut its pool down without waiting."""
        pid = self.pid()
        for child in multiprocessing.active_children():  # this process's live children only: no stranger's reused pid
            if child.pid == pid:
                child.kill()
        self.pool.shutdown(wait=False, cancel_futures=True)


class NBestRescorer:
    """Picks the best of Whisper's hypotheses by acoustic plus language-model log-probability; safe to share
    between sessions (one scoring at a time). ``model_path``: a GGUF chat model with a ChatML template (default:
    SmolLM2-135M-Instruct); ``threads``: torch's intra-op threads. One by default: four hypotheses took 63 ms on two
    threads and 88 ms on one on an idle 2-core machine, but beside two busy threads of another process 156 ms at the
    median with a tail to 2 s on two (OpenMP threads waiting for each other at every step while the cores are taken)
    against 174 ms and at most 196 ms on one; the tail showed in the bench (final transcript p99 1.9 s).

    The model runs in a process of its own (started here, loaded before this returns): with torch in the server's
    process, llama.cpp wrote each reply's first clause ~110 ms later on two cores though torch was idle (both run on
    the OpenMP runtime). A failing worker costs transcripts their rescoring, never the transcripts: they get Whisper's
    first hypothesis (logged). A worker that died, or that let :data:`STUCK_AFTER` scorings in a row run past
    :data:`TIMEOUT_S`, is killed and started again in the background, at most once every :data:`RESTART_INTERVAL_S`;
    the transcripts meanwhile (~16 s of loading) are not rescored. The worker ends with the server, killed or not.
    Raises :class:`~realtime.assets.ModelIntegrityError` for a missing or corrupt default model, ``RuntimeError`` when
    the worker cannot load the model within :data:`LOAD_TIMEOUT_S`."""

    def __init__(self, model_path: str | Path | None = None, *, weight: float = WEIGHT, threads: int = 1) -> None:
        from realtime.assets import SMOLLM2_135M_GGUF

        self._path = Path(model_path) if model_path else SMOLLM2_135M_GGUF.path("model.gguf")
        self._threads = threads
        self.weight = weight
        self._restarting = threading.Lock()
        self._timeouts = 0
        self._worker = self._start()
        try:
            self._worker.ready.result(timeout=LOAD_TIMEOUT_S)
        except BaseException as exc:
            self.close()
            if isinstance(exc, (BrokenProcessPool, TimeoutError)):
                raise RuntimeError(
                    f"the rescoring worker could not load {self._path}: see its error above (a script that starts it "
                    "needs `if __name__ == '__main__':`, Python's rule for the processes it spawns)"
                ) from exc
            raise

    def _start(self) -> _Worker:
        """A worker, spawned so that nothing of this process's runtimes is inherited, and its first scoring."""
        pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_load,
            initargs=(str(self._path), self._threads),
        )
        return _Worker(pool, pool.submit(_warm), time.monotonic())

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until the worker has loaded its model (after a start again); raises ``TimeoutError`` after
        ``timeout`` seconds, ``BrokenProcessPool`` when it could not."""
        self._worker.ready.result(timeout=timeout)

    def worker_pid(self) -> int | None:
        """The worker process's id; None while it loads or after it failed to."""
        return self._worker.pid()

    def log_probabilities(self, texts: list[str]) -> list[float]:
        """The language model's log-probability (natural log, summed over tokens) of each text as a user's turn.
        Raises ``TimeoutError`` after :data:`TIMEOUT_S`, ``BrokenProcessPool`` when the worker died."""
        return self._ask(self._worker, texts)

    @staticmethod
    def _ask(worker: _Worker, texts: list[str]) -> list[float]:
        future = worker.pool.submit(_score, texts)
        try:
            return future.result(timeout=TIMEOUT_S)
        except TimeoutError:
            future.cancel()  # not yet begun: not to be done at all
            raise

    def best(self, hypotheses: Sequence[Hypothesis]) -> int:
        """The index of the best of ``hypotheses`` by :func:`rescore` with this language model; Whisper's first (0)
        when the worker is loading or fails (logged; see the class)."""
        worker = self._worker  # one worker throughout, whatever other sessions' transcripts do meanwhile
        try:
            if not worker.ready.done():
                raise _Starting
            chosen = rescore(hypotheses, lambda texts: self._ask(worker, texts), self.weight)
        except _Starting:
            return 0
        except TimeoutError:
            self._timeouts += 1
            log.warning("rescoring took over %.1f s; Whisper's first hypothesis is kept", TIMEOUT_S)
            if self._timeouts >= STUCK_AFTER:
                self._restart(worker, f"{self._timeouts} scorings in a row took over {TIMEOUT_S:.1f} s")
        except BrokenProcessPool as exc:
            log.warning("no rescoring (%s); Whisper's first hypothesis is kept", exc)
            self._restart(worker, "it stopped")
        except Exception:
            log.exception("rescoring failed; Whisper's first hypothesis is kept")
        else:
            self._timeouts = 0
            return chosen
        return 0

    def _restart(self, failed: _Worker, why: str) -> None:
        """Start a worker in place of ``failed``, unless another transcript already did or it is too soon."""
        with self._restarting:
            if self._worker is not failed or time.monotonic() - failed.started < RESTART_INTERVAL_S:
                return
            log.warning("starting the rescoring worker again: %s", why)
            failed.stop()
            try:
                self._worker = self._start()
            except (OSError, RuntimeError) as exc:  # out of processes or memory, or at interpreter shutdown: tried later
                log.warning("the rescoring worker could not be started again: %s", exc)
            self._timeouts = 0

    def close(self) -> None:
        """Stop the worker process."""
        self._worker.stop()


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
