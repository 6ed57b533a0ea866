"""Second-pass rescoring of Whisper's n-best list by a language model: which of the hypotheses that sound alike reads
as something a person says.

Whisper's beam keeps hypotheses that differ by a sound ("What is the opposite on heart?", "... of heart?", "... of
hot?"); its first is the likeliest acoustically, not the likeliest sentence. A second pass with a text language model
is the classic remedy (n-best rescoring, the second pass of Kaldi's and ESPnet's recipes): each hypothesis gets its
acoustic log-probability plus ``weight`` times the language model's log-probability of its words, and the best sum
wins. The language model is SmolLM2-135M-Instruct (Apache-2.0, a general English chat model; its GGUF file comes from
a wheel, sha256-checked), scoring the words as a user's chat turn, run by transformers in bfloat16: dequantised at
load (~270 MB of memory), so that the matrix units of CPUs that have them (Intel AMX) do the work.

Measured on 2026-12-02 on two cores (``benchmarks.recognition_wer``, Whisper base with a beam of 5, each clip with and
without rescoring in turn): on the bench's 86 spoken questions the word error rate fell from 0.124 to 0.105 and the
questions heard word for word rose from 64% to 72%, for +36 ms a question (p50; +51 ms p90); on 200 of Debian's
Asterisk recordings (real speech, one studio voice) the word error rate stayed 0.057 (one prompt fewer word for word:
"twelfth" heard as "12." rather than "12th"), for +16 ms. Probes before it (the five hypotheses of each
clip kept and scored offline): the right words were among them for 66 of the questions and first for 55; weights of
0.3, 0.5 and 1.0 gave 63, 63 and 65 questions and 155, 152 and 149 of the 200 recordings word for word (156 without
rescoring), so the weight is 0.3; the 0.5B Qwen chat model in SmolLM2's place heard as many questions (63 at 0.5) in
~140 ms against ~53 ms. Without the rule on length (:func:`rescore`) the recordings' word error rate doubled.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from realtime.asr import words

USER_TURN = "<|im_start|>user\n"
"""What the scored words follow: the opening of a user's turn in SmolLM2-Instruct's chat template (ChatML)."""

WEIGHT = 0.3
"""The language model's weight against Whisper's log-probability (see the module's measurements)."""


@dataclass(frozen=True)
class Hypothesis:
    """One of Whisper's n-best: its words and its log-probability (natural log, summed over its tokens)."""

    text: str
    log_probability: float


class NBestRescorer:
    """Picks the best of Whisper's hypotheses by acoustic plus language-model log-probability; safe to share
    between sessions (one scoring at a time). ``model_path``: a GGUF chat model with a ChatML template (default:
    SmolLM2-135M-Instruct); ``threads``: torch's intra-op threads for the process (transformers' progress bars are
    turned off). Raises :class:`~realtime.assets.ModelIntegrityError` for a missing or corrupt default model."""

    def __init__(self, model_path: str | Path | None = None, *, weight: float = WEIGHT, threads: int = 2) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        from realtime.assets import SMOLLM2_135M_GGUF

        transformers_logging.disable_progress_bar()  # a server's log is no place for a bar of GGUF tensors

        path = Path(model_path) if model_path else SMOLLM2_135M_GGUF.path("model.gguf")
        torch.set_num_threads(threads)
        self._tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        if self._tokenizer.pad_token is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token
        self._tokenizer.padding_side = "right"  # each text keeps its positions; the padding after it is not scored
        verbosity = transformers_logging.get_verbosity()
        transformers_logging.set_verbosity_error()  # it advises float32 for packed GGUF kernels; bfloat16 is faster here
        try:
            self._model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.bfloat16)
        finally:
            transformers_logging.set_verbosity(verbosity)
        self._model.eval()
        self._lock = threading.Lock()
        self.weight = weight
        self.log_probabilities(["Hello."])  # the first call pays for lazy initialisation

    def log_probabilities(self, texts: list[str]) -> list[float]:
        """The language model's log-probability (natural log, summed over tokens) of each text as a user's turn."""
        import torch

        batch = self._tokenizer([USER_TURN + text for text in texts], return_tensors="pt", padding=True)
        with self._lock, torch.inference_mode():
            logits = self._model(**batch).logits[:, :-1].float()
        targets = batch.input_ids[:, 1:]
        token_lp = logits.log_softmax(-1).gather(-1, targets[..., None])[..., 0] * batch.attention_mask[:, 1:]
        return [float(x) for x in token_lp.sum(1)]

    def best(self, hypotheses: Sequence[Hypothesis]) -> int:
        """The index of the best of ``hypotheses`` by :func:`rescore` with this language model."""
        return rescore(hypotheses, self.log_probabilities, self.weight)


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
