"""A tiny random Step-Audio checkpoint in the real on-disk format, for tests and smoke runs.

    python -m realtime.step_audio.tiny OUT_DIR

The layout of the released checkpoints: ``config.json`` with the real keys (Step-Audio-2-mini's nested
``text_config`` beside ``audio_encoder_config``), weights under the real tensor names in safetensors shards
``model-0000K-of-0000N.safetensors`` with ``model.safetensors.index.json``, and a Hugging Face tokenizer
(``tokenizer.json`` + ``tokenizer_config.json``): a byte-level BPE trained here on a few sentences (any text
encodes), the format's special tokens after the text vocabulary as in the real one. Deterministic for a seed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from realtime.step_audio.checkpoint import INDEX_FILE
from realtime.step_audio.config import StepAudioConfig
from realtime.step_audio.model import StepAudioModel
from realtime.step_audio.prompt import AUDIO_END, AUDIO_PATCH, AUDIO_START, BOT, EOT, special_token_id

END_OF_TEXT = "<|endoftext|>"
SPECIAL_TOKENS = [END_OF_TEXT, BOT, EOT, "<think>", "</think>", AUDIO_START, AUDIO_END, AUDIO_PATCH]
TINY_AUDIO = {
    "n_mels": 128,
    "n_audio_ctx": 1500,
    "n_audio_state": 64,
    "n_audio_head": 4,
    "n_audio_layer": 2,
    "llm_dim": 64,
    "kernel_size": 3,
    "adapter_stride": 2,
}
TINY_TEXT = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_attention_groups": 2,
    "num_key_value_heads": 2,
    "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
}
_CORPUS = [
    "You are a friendly voice assistant. Answer in one or two short sentences.",
    "What is two plus two? Two plus two is four. The capital of France is Paris.",
    "Let me think about the question step by step, then answer it out loud.",
    "human assistant system 0 1 2 3 4 5 6 7 8 9",
]


def build_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE (a few hundred tokens) with the Step-Audio special tokens appended."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=384, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tokenizer.train_from_iterator(_CORPUS, trainer)
    tokenizer.add_special_tokens(SPECIAL_TOKENS)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=END_OF_TEXT, pad_token=END_OF_TEXT)


def tiny_config(tokenizer: PreTrainedTokenizerFast) -> dict[str, object]:
    """``config.json`` of the tiny model, vocabulary sized for ``tokenizer``."""
    vocab_size = -(-len(tokenizer) // 64) * 64
    return {
        "architectures": ["StepAudio2ForCausalLM"],
        "model_type": "step_audio_2",
        "torch_dtype": "float32",
        "audio_encoder_config": dict(TINY_AUDIO),
        "text_config": {
            **TINY_TEXT,
            "vocab_size": vocab_size,
            "eos_token_id": tokenizer.convert_tokens_to_ids(EOT),
            "pad_token_id": tokenizer.convert_tokens_to_ids(END_OF_TEXT),
        },
    }


def write_tiny_checkpoint(out_dir: str | Path, *, seed: int = 0, shards: int = 2) -> Path:
    """Write the tiny checkpoint to ``out_dir`` (created) and return it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    tokenizer.save_pretrained(out)
    config = tiny_config(tokenizer)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    torch.manual_seed(seed)
    model = StepAudioModel.build(
        StepAudioConfig.from_dict(config),
        special_token_id(tokenizer, AUDIO_PATCH),
        device="cpu",
        dtype=torch.float32,
    )
    _save_sharded(model.state_dict(), out, shards)
    return out


def _save_sharded(tensors: dict[str, torch.Tensor], out: Path, shards: int) -> None:
    """Split by size into ``shards`` files, in state-dict order, with the index the real checkpoints have."""
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    groups: list[dict[str, torch.Tensor]] = [{} for _ in range(shards)]
    running = 0
    for name, tensor in tensors.items():
        groups[min(running * shards // total, shards - 1)][name] = tensor.contiguous()
        running += tensor.numel() * tensor.element_size()
    weight_map = {}
    for number, group in enumerate(groups, start=1):
        filename = f"model-{number:05d}-of-{shards:05d}.safetensors"
        save_file(group, str(out / filename), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(group, filename))
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(write_tiny_checkpoint(args.out_dir, seed=args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
