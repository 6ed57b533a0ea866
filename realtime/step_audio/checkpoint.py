"""Load a local Step-Audio checkpoint directory (config.json, safetensors shards, tokenizer) without remote code.

Where the names come from (public code read through a code search, 2026-11; the repositories of the vLLM
files were not named by the index):

- The Hugging Face remote-code ``modeling_step_audio_2.py`` (``StepAudio2ForCausalLM``, the model that
  ``stepfun-ai/Step-Audio2``'s ``stepaudio2.py`` loads with ``trust_remote_code``): it holds ``model``
  (transformers' ``Qwen2Model``), ``encoder`` (``AudioEncoder``: ``conv1``, ``conv2``, ``positional_embedding`` an
  ``nn.Embedding(n_audio_ctx, n_audio_state)``, ``blocks.N.attn.{query,key,value,out}`` with ``key`` bias-free,
  ``attn_ln``, ``mlp`` = Sequential(Linear, GELU, Linear), ``mlp_ln``, ``after_norm``), ``adapter`` (``Adaptor``:
  ``conv``, ``linear1`` to 2048, ``relu``, ``linear2``) and an untied ``lm_head``; it reads
  ``config.audio_encoder_config.{n_mels, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer, llm_dim,
  kernel_size, adapter_stride}`` and ``config.text_config``.
- vLLM ports of ``StepAudio2ForCausalLM`` (``model_executor/models/step_audio2.py``): ``load_weights`` maps
  ``model.*`` and ``lm_head`` onto the language model and loads ``encoder.*`` / ``adapter.*`` as they are,
  requiring every parameter; their ``StepAudio2Config`` takes ``text_config`` nested, or flat "for the 32B
  model", with ``num_attention_groups`` equal to ``num_key_value_heads``. An inference engine's port of
  Step-Audio-2-mini shows the nested keys (``text_config``: ``hidden_size``, ``intermediate_size``,
  ``num_attention_heads``, ``num_attention_groups``, ``num_key_value_heads``, ``num_hidden_layers``,
  ``vocab_size`` 158720, ``rms_norm_eps``, ``rope_theta``, ...).

So the checkpoint's names are this package's module names: the mapping is the identity, and what the loader
adds is checking (every tensor present, none unknown, every shape right) with errors that name the tensor.

Token ids: the HF ``forward`` looks for 151688 and writes the audio from the next position, and
``yigagilbert/Step-Audio-2-mini`` names 151688 ``DEFAULT_AUDIO_START_ID``: 151688 is ``<audio_start>``. The vLLM
ports and vllm-omni's Step-Audio2 constants give ``<audio_patch>`` = 151690 (text ids stop below 151688, audio
tokens start at 151696); ``stepfun-ai/Step-Audio-R1``'s examples stop on 151665 (``<|EOT|>``). The loader
takes ``<audio_patch>`` from the tokenizer, checked against the config's ``audio_token_index`` if it has one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import torch
from safetensors import safe_open
from transformers import AutoTokenizer, PretrainedConfig, PreTrainedTokenizerBase

from realtime.step_audio.config import CheckpointError, StepAudioConfig
from realtime.step_audio.model import StepAudioModel
from realtime.step_audio.prompt import AUDIO_PATCH, special_token_id

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
_SKIPPED_BUFFERS = ("rotary_emb.inv_freq",)
"""Non-persistent buffers that older exports saved; recomputed at build time, never loaded."""


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def read_config(model_dir: str | Path) -> StepAudioConfig:
    path = _directory(model_dir) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"missing config.json in {path.parent}")
    try:
        return StepAudioConfig.from_dict(json.loads(path.read_text()))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"config.json in {path.parent} is not valid JSON: {exc}") from exc


def load_tokenizer(model_dir: str | Path) -> PreTrainedTokenizerBase:
    directory = _directory(model_dir)
    if not (directory / "tokenizer.json").is_file() and not (directory / "tokenizer_config.json").is_file():
        raise CheckpointError(f"missing tokenizer files (tokenizer.json, tokenizer_config.json) in {directory}")
    # A blank model config: AutoTokenizer would otherwise read config.json, whose class needs remote code.
    return AutoTokenizer.from_pretrained(str(directory), config=PretrainedConfig())


def load_checkpoint(
    model_dir: str | Path, *, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> tuple[StepAudioModel, PreTrainedTokenizerBase]:
    """The model with the checkpoint's weights on ``device`` (CUDA if any) in ``dtype`` (bf16 on CUDA, else f32)."""
    config = read_config(model_dir)
    tokenizer = load_tokenizer(model_dir)
    try:
        patch_id = special_token_id(tokenizer, AUDIO_PATCH)
    except ValueError as exc:
        raise CheckpointError(f"{exc} (in {model_dir})") from exc
    if config.audio_token_index is not None and config.audio_token_index != patch_id:
        raise CheckpointError(
            f"config.json audio_token_index {config.audio_token_index} != tokenizer's {AUDIO_PATCH} id {patch_id}"
        )
    device = torch.device(device) if device is not None else default_device()
    model = StepAudioModel.build(config, patch_id, device=device, dtype=dtype or default_dtype(device))
    load_weights(model, model_dir)
    return model, tokenizer


def load_weights(model: StepAudioModel, model_dir: str | Path) -> None:
    """Copy every tensor of the checkpoint's safetensors into ``model`` after checking names and shapes."""
    files = weight_files(model_dir)
    params = model.state_dict()
    shapes: dict[str, tuple[int, ...]] = {}
    for path, names in files.items():
        handle = _open(path)
        shapes.update((name, tuple(handle.get_slice(name).get_shape())) for name in names)
    missing = sorted(set(params) - set(shapes))
    unexpected = sorted(set(shapes) - set(params))
    mis_shaped = [
        f"{name} {shapes[name]} (expected {tuple(params[name].shape)})"
        for name in sorted(set(shapes) & set(params))
        if shapes[name] != tuple(params[name].shape)
    ]
    problems = [
        _listing("missing tensors", missing),
        _listing("unexpected tensors", unexpected),
        _listing("tensors of the wrong shape", mis_shaped),
    ]
    if any(problems):
        raise CheckpointError(f"checkpoint {model_dir} does not fit its config: " + "; ".join(p for p in problems if p))
    with torch.no_grad():
        for path, names in files.items():
            handle = _open(path, model.device)
            for name in names:
                params[name].copy_(handle.get_tensor(name))


def weight_files(model_dir: str | Path) -> dict[Path, list[str]]:
    """Each safetensors file of the checkpoint (from the index when it is sharded) and the tensors it holds."""
    directory = _directory(model_dir)
    index = directory / INDEX_FILE
    if index.is_file():
        weight_map = json.loads(index.read_text()).get("weight_map", {})
        shards = sorted(set(weight_map.values()))
        absent = [shard for shard in shards if not (directory / shard).is_file()]
        if absent:
            raise CheckpointError(f"missing shard {', '.join(absent)} listed in {index}")
        paths = [directory / shard for shard in shards]
    elif (directory / SINGLE_FILE).is_file():
        paths = [directory / SINGLE_FILE]
    else:
        raise CheckpointError(f"no weights in {directory}: neither {INDEX_FILE} nor {SINGLE_FILE}")
    return {path: [name for name in _open(path).keys() if not name.endswith(_SKIPPED_BUFFERS)] for path in paths}  # noqa: SIM118


def _directory(model_dir: str | Path) -> Path:
    directory = Path(model_dir)
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint directory not found: {directory}")
    return directory


def _open(path: Path, device: torch.device | None = None):  # noqa: ANN202 - safetensors' handle has no public type
    try:
        return safe_open(str(path), framework="pt", device=str(device or "cpu"))
    except Exception as exc:  # noqa: BLE001 - a corrupt or truncated file, reported by name
        raise CheckpointError(f"cannot read {path}: {exc}") from exc


def _listing(what: str, names: Iterable[str], limit: int = 8) -> str:
    names = list(names)
    if not names:
        return ""
    shown = ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")
    return f"{what}: {shown}"
