"""GPU latency of the Step-Audio-R1 brain, random weights of the real 33B shapes in bf16 (no checkpoint needed).

    .venv/bin/python -m benchmarks.step_audio_gpu                      # one CUDA GPU (exits 2 without one)
    .venv/bin/python -m benchmarks.step_audio_gpu --device cpu --tiny  # smoke run of the same code path

Everything runs through the brain's own API (``StepAudioBrain.open`` / ``StepAudioConversation``), as a session
would. Medians over ``--repeats`` runs after ``--warmup`` runs of:

- the encoder (+ adaptor) on 1, 2 and 4 s of audio, and per second of audio;
- the prefill of one heard block of 1, 2 and 4 s (encoder + decoder), after a system prompt and a first block;
- decode tokens/s while replying;
- the prefill at the end of speech: the last partial block (0.5, 1, 1.5 s) + ``<|EOT|>`` + generation prompt;
- end of speech -> first answer token in each reply mode (3 s of speech, 2 s blocks: one block heard, a 1 s
  partial block left), with ``--reasoning-budget`` tokens of reasoning where the mode reasons first.

End of speech -> first answer token is the brain's share of the first-packet delay; the speech synthesiser's
first chunk comes on top and is not measured here. The weights are random, so the text is meaningless: a mode
may reach its answer earlier than the budget if the random model happens to close its reasoning.
Writes ``benchmarks/results/step-audio-gpu-<date>.json`` and ``.md`` (or under ``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from functools import partial
from pathlib import Path

import numpy as np
import torch
import transformers

from realtime.brain import ReplyRequest
from realtime.conversation import Conversation
from realtime.step_audio import ReplyMode, StepAudioBrain, StepAudioConfig, StepAudioModel
from realtime.step_audio.prompt import AUDIO_PATCH, special_token_id
from realtime.step_audio.tiny import build_tokenizer, tiny_config

RESULTS = Path(__file__).with_name("results")
R1_CONFIG = {
    "architectures": ["StepAudio2ForCausalLM"],
    "audio_encoder_config": {
        "n_mels": 128,
        "n_audio_ctx": 1500,
        "n_audio_state": 1280,
        "n_audio_head": 20,
        "n_audio_layer": 32,
        "llm_dim": 5120,
        "kernel_size": 3,
        "adapter_stride": 2,
    },
    "vocab_size": 158720,
    "hidden_size": 5120,
    "intermediate_size": 27648,
    "num_hidden_layers": 64,
    "num_attention_heads": 40,
    "num_attention_groups": 8,
    "num_key_value_heads": 8,
    "max_position_embeddings": 65536,
    "rms_norm_eps": 1e-5,
    "rope_theta": 1000000.0,
}
"""Step-Audio-R1's sizes (Qwen2.5-32B decoder, Whisper-large encoder) in the flat 32B config layout."""
INSTRUCTIONS = "You are a friendly voice assistant. Answer in one or two short sentences."
BLOCKS_S = (1.0, 2.0, 4.0)
PARTIALS_S = (0.5, 1.0, 1.5)
MODES: tuple[ReplyMode, ...] = ("budget", "think-first", "paced", "speak-first")
RATE = 16000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--tiny", action="store_true", help="tiny shapes instead of the 33B ones (smoke runs)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--reasoning-budget", type=int, default=160, help="reasoning tokens before answering")
    parser.add_argument("--decode-tokens", type=int, default=64)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("step_audio_gpu: CUDA is not available; run it on a GPU, or use --device cpu --tiny", file=sys.stderr)
        return 2
    brain = build_brain(device, tiny=args.tiny)
    results = asyncio.run(measure(brain, args))
    results |= environment(brain, args)
    paths = write_results(results, args.out)
    print("\n".join(str(p) for p in paths))
    return 0


def build_brain(device: torch.device, *, tiny: bool) -> StepAudioBrain:
    tokenizer = build_tokenizer()
    config = StepAudioConfig.from_dict(tiny_config(tokenizer) if tiny else R1_CONFIG)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    torch.manual_seed(0)
    model = StepAudioModel.build(config, special_token_id(tokenizer, AUDIO_PATCH), device=device, dtype=dtype)
    return StepAudioBrain(model, tokenizer)


async def measure(brain: StepAudioBrain, args: argparse.Namespace) -> dict[str, object]:
    audio = (np.random.default_rng(0).standard_normal(RATE * 10) * 0.05).astype(np.float32)
    device = brain.model.device

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    async def median(sample: Callable[[], Awaitable[float | None]]) -> float | None:
        values = [await sample() for _ in range(args.warmup + args.repeats)][args.warmup :]
        kept = [v for v in values if v is not None]
        return round(statistics.median(kept), 2) if kept else None

    async def encoder(seconds: float) -> float:
        clip = audio[: int(seconds * RATE)]
        start = time.perf_counter()
        brain.run(brain.model.encode_audio, clip)
        sync()
        return (time.perf_counter() - start) * 1000

    async def block_prefill(seconds: float) -> float:
        conversation = brain.open(Conversation(INSTRUCTIONS), block_seconds=seconds)
        size = int(seconds * RATE)
        await conversation.hear(audio[:size])
        sync()
        start = time.perf_counter()
        await conversation.hear(audio[size : 2 * size])
        sync()
        conversation.close()
        return (time.perf_counter() - start) * 1000

    async def reply_prefill(partial: float) -> float:
        conversation = brain.open(Conversation(INSTRUCTIONS), block_seconds=2.0)
        await conversation.hear(audio[: int((2.0 + partial) * RATE)])
        sync()
        start = time.perf_counter()
        async for _ in conversation.reply(ReplyRequest(None, max_tokens=0)):
            pass
        sync()
        conversation.close()
        return (time.perf_counter() - start) * 1000

    async def decode() -> float | None:
        conversation = brain.open(Conversation(INSTRUCTIONS))
        await conversation.hear(audio[: 2 * RATE])
        first: tuple[float, int] | None = None
        request = ReplyRequest(None, max_tokens=args.decode_tokens, reasoning_budget=args.decode_tokens)
        async for _ in conversation.reply(request):
            first = first or (time.perf_counter(), len(conversation.token_ids))
        sync()
        elapsed, tokens = (time.perf_counter() - first[0], len(conversation.token_ids) - first[1]) if first else (0, 0)
        conversation.close()
        return tokens / elapsed if tokens else None

    async def first_answer(mode: ReplyMode) -> float | None:
        conversation = brain.open(Conversation(INSTRUCTIONS), block_seconds=2.0)
        await conversation.hear(audio[: 3 * RATE])
        sync()
        start = time.perf_counter()
        elapsed = None
        pieces = conversation.reply(ReplyRequest(None, max_tokens=16, reasoning_budget=args.reasoning_budget, mode=mode))
        async with aclosing(pieces):
            async for piece in pieces:
                if piece.channel == "answer":
                    elapsed = (time.perf_counter() - start) * 1000
                    break
        conversation.close()
        return elapsed

    encoder_ms = {str(s): await median(partial(encoder, s)) for s in BLOCKS_S}
    return {
        "encoder_ms": encoder_ms,
        "encoder_ms_per_audio_second": {s: round(v / float(s), 2) for s, v in encoder_ms.items() if v is not None},
        "block_prefill_ms": {str(s): await median(partial(block_prefill, s)) for s in BLOCKS_S},
        "reply_prefill_ms": {str(s): await median(partial(reply_prefill, s)) for s in PARTIALS_S},
        "decode_tokens_per_s": await median(decode),
        "end_of_speech_to_first_answer_ms": {mode: await median(partial(first_answer, mode)) for mode in MODES},
    }


def environment(brain: StepAudioBrain, args: argparse.Namespace) -> dict[str, object]:
    model = brain.model
    text = model.config.text
    return {
        "date": dt.date.today().isoformat(),
        "device": torch.cuda.get_device_name(model.device) if model.device.type == "cuda" else "cpu",
        "dtype": str(model.dtype).removeprefix("torch."),
        "shapes": "tiny" if args.tiny else "Step-Audio-R1 33B",
        "parameters_b": round(sum(p.numel() for p in model.parameters()) / 1e9, 3),
        "decoder": {"hidden": text.hidden_size, "layers": text.num_hidden_layers, "vocab": text.vocab_size},
        "repeats": args.repeats,
        "warmup": args.warmup,
        "reasoning_budget": args.reasoning_budget,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "excluded": "speech synthesis (first TTS chunk) is not part of any number here",
    }


def write_results(results: dict[str, object], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"step-audio-gpu-{results['date']}"
    json_path, md_path = stem.with_suffix(".json"), stem.with_suffix(".md")
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    md_path.write_text(markdown(results))
    return [json_path, md_path]


def markdown(results: dict[str, object]) -> str:
    def rows(title: str, values: object, unit: str) -> list[str]:
        assert isinstance(values, dict)
        return [f"| {title} {key} | {value} {unit} |" for key, value in values.items()]

    lines = [
        f"# Step-Audio brain latency, {results['shapes']}, {results['device']} ({results['dtype']}), {results['date']}",
        "",
        f"Random weights, medians of {results['repeats']} runs after {results['warmup']} warm-up. "
        "End of speech -> first answer token is the brain's share of the first-packet delay: "
        "the first TTS chunk comes on top and is not measured.",
        "",
        "| measure | median |",
        "| --- | --- |",
        *rows("encoder, audio s", results["encoder_ms"], "ms"),
        *rows("encoder per audio second, block s", results["encoder_ms_per_audio_second"], "ms"),
        *rows("prefill of one heard block, s", results["block_prefill_ms"], "ms"),
        *rows("end-of-speech prefill, partial block s", results["reply_prefill_ms"], "ms"),
        f"| decode | {results['decode_tokens_per_s']} tokens/s |",
        *rows("end of speech -> first answer token, mode", results["end_of_speech_to_first_answer_ms"], "ms"),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
