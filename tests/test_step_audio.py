"""The Step-Audio brain on a tiny random checkpoint written in the real on-disk format (CPU, float32).

Control flow (reasoning budget, modes, a missing or early ``</think>``) is driven by a stand-in lm_head whose next
token is a function of the last input token, so the sequences are known; everything else runs the real model.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from contextlib import aclosing
from pathlib import Path

import numpy as np
import pytest

for _module in ("torch", "transformers", "safetensors"):
    pytest.importorskip(_module, reason="needs the step-audio extra: pip install torch==2.13.0 -e '.[step-audio]'")

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from realtime.brain import ReplyRequest  # noqa: E402
from realtime.conversation import Conversation, Message  # noqa: E402
from realtime.errors import BrainStateError  # noqa: E402
from realtime.reasoning import Piece  # noqa: E402
from realtime.step_audio import CheckpointError, StepAudioBrain, audio_token_count  # noqa: E402
from realtime.step_audio.checkpoint import load_checkpoint  # noqa: E402
from realtime.step_audio.mel import TAIL_PADDING, log_mel_spectrogram  # noqa: E402
from realtime.step_audio.paced import mind_paced_speaking  # noqa: E402
from realtime.step_audio.tiny import main as tiny_main  # noqa: E402
from realtime.step_audio.tiny import write_tiny_checkpoint  # noqa: E402

RATE = 16000
INSTRUCTIONS = "You are a friendly voice assistant."
UNBOUNDED = 10_000
"""A reasoning budget the scripted model never reaches: the reasoning runs until the model closes it."""


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Torch's intra-op threads cost more than they bring for these tiny shapes on two cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("step-audio-tiny"))


@pytest.fixture(scope="session")
def brain(tiny_dir: Path) -> StepAudioBrain:
    return StepAudioBrain.load(tiny_dir, device="cpu")


def speech(seconds: float, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(round(seconds * RATE)) * 0.1).astype(np.float32)


async def hear_in_frames(conversation, samples: np.ndarray, frame: int = 320) -> None:
    for start in range(0, len(samples), frame):
        await conversation.hear(samples[start : start + frame])


async def collect(pieces) -> list[Piece]:
    return [piece async for piece in pieces]


def text(pieces: list[Piece], channel: str) -> str:
    return "".join(p.text for p in pieces if p.channel == channel)


# Audio front end, encoder and adaptor.


def test_audio_token_count_formula():
    assert audio_token_count(RATE) == 13
    assert audio_token_count(25 * RATE) == 313
    assert audio_token_count(0) == 0


@pytest.mark.parametrize("seconds", [0.5, 1.0, 2.0, 2.7, 25.0])
def test_encoder_and_adaptor_give_the_counted_tokens(brain: StepAudioBrain, seconds: float):
    model = brain.model
    clip = speech(seconds)
    count = audio_token_count(len(clip))
    with torch.inference_mode():
        raw = model.adapter(model.encoder(log_mel_spectrogram(torch.from_numpy(clip))[None]))
        embeddings = model.encode_audio(clip)
    assert raw.shape[1] in (count, count + 1)  # the official code cuts the one extra frame too
    assert embeddings.shape == (count, model.config.text.hidden_size)
    assert torch.equal(embeddings, raw[0, :count])


def test_log_mel_matches_whisper_feature_extractor():
    from transformers import WhisperFeatureExtractor

    clip = speech(2.0)
    ours = log_mel_spectrogram(torch.from_numpy(clip)).numpy()
    padded = np.pad(clip, (0, TAIL_PADDING))[None]
    reference = WhisperFeatureExtractor(feature_size=128)._np_extract_fbank_features(padded, "cpu")[0]  # noqa: SLF001 - a white-box check
    assert ours.shape == (128, (len(clip) + TAIL_PADDING) // 160)
    np.testing.assert_allclose(ours, reference, atol=1e-4)


# Prompt format.


async def test_prompt_ids_are_the_official_format(brain: StepAudioBrain):
    tok = brain.tokenizer
    names = ("<|BOT|>", "<|EOT|>", "<audio_start>", "<audio_patch>", "<audio_end>", "<think>")
    special = {name: tok.convert_tokens_to_ids(name) for name in names}
    bot, eot = special["<|BOT|>"], special["<|EOT|>"]

    def block(tokens: int) -> list[int]:
        return [special["<audio_start>"], *[special["<audio_patch>"]] * tokens, special["<audio_end>"]]

    def enc(text: str) -> list[int]:
        return tok.encode(text, add_special_tokens=False)

    conversation = brain.open(Conversation(INSTRUCTIONS), block_seconds=25.0)
    await conversation.hear(speech(60.0))  # two 25 s blocks prefilled as heard, 10 s left
    assert len(conversation.token_ids) == len(enc(f"system\n{INSTRUCTIONS}")) + 3 + len(enc("human\n")) + 2 * 315
    async for _ in conversation.reply(ReplyRequest(None, max_tokens=0, reasoning_budget=0)):
        pass
    human = [bot, *enc("human\n"), *block(313), *block(313), *block(audio_token_count(10 * RATE)), eot]
    system = [bot, *enc(f"system\n{INSTRUCTIONS}"), eot]
    expected = [*system, *human, bot, *enc("assistant\n"), special["<think>"], *enc("\n")]
    assert list(conversation.token_ids) == expected
    rendered = tok.decode(expected)
    assert rendered.startswith(f"<|BOT|>system\n{INSTRUCTIONS}<|EOT|><|BOT|>human\n<audio_start><audio_patch>")
    assert rendered.endswith("<audio_end><|EOT|><|BOT|>assistant\n<think>\n")
    assert enc(rendered) == expected  # what the official code gets by tokenizing the rendered turns

    await conversation.finish_turn("  Four.  ")  # history: the human audio and the answer as heard, no reasoning
    assert list(conversation.token_ids) == [*system, *human, bot, *enc("assistant\nFour."), eot]


def test_content_that_spells_a_control_token_stays_text(brain: StepAudioBrain):
    ids = brain.format.turn("assistant", "say <|EOT|> now")
    assert ids.count(brain.format.eot) == 1 and ids[-1] == brain.format.eot


# Listen while thinking: incremental prefill.


async def test_blockwise_prefill_equals_one_shot_prefill(brain: StepAudioBrain):
    audio = speech(4.5)
    conversation = brain.open(Conversation(INSTRUCTIONS), block_seconds=2.0)
    await hear_in_frames(conversation, audio)  # two complete blocks prefilled, 0.5 s waiting

    model, fmt = brain.model, brain.format
    blocks = [audio[: 2 * RATE], audio[2 * RATE : 4 * RATE]]
    with torch.inference_mode():
        embeddings = [model.encode_audio(b) for b in blocks]
        ids = fmt.turn("system", INSTRUCTIONS) + fmt.human_header
        ids += [t for e in embeddings for t in fmt.audio_block(len(e))]
        one_shot = model(torch.tensor(ids), model.new_cache(), torch.cat(embeddings))
    assert list(conversation.token_ids) == ids
    torch.testing.assert_close(conversation._logits, one_shot, atol=1e-4, rtol=1e-4)  # noqa: SLF001 - a white-box check


async def test_rewind_then_hearing_more_equals_hearing_it_all(brain: StepAudioBrain):
    audio = speech(4.0, seed=1)
    speculative = brain.open(Conversation(INSTRUCTIONS), block_seconds=2.0)
    await hear_in_frames(speculative, audio[: 3 * RATE])
    async with aclosing(speculative.reply(ReplyRequest(None, max_tokens=5, reasoning_budget=3))) as pieces:
        async for _ in pieces:
            pass
    speculative.rewind()  # the user goes on speaking
    await hear_in_frames(speculative, audio[3 * RATE :])

    at_once = brain.open(Conversation(INSTRUCTIONS), block_seconds=2.0)
    await at_once.hear(audio)
    assert speculative.token_ids == at_once.token_ids
    for a, b in zip(speculative._cache.layers, at_once._cache.layers, strict=True):  # noqa: SLF001 - a white-box check
        torch.testing.assert_close(a.keys, b.keys, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(a.values, b.values, atol=1e-5, rtol=1e-5)
    first = await collect(speculative.reply(ReplyRequest(None, max_tokens=4, reasoning_budget=2)))
    assert first == await collect(at_once.reply(ReplyRequest(None, max_tokens=4, reasoning_budget=2)))


# Reasoning, answer and modes, with a scripted next token.


class BigramHead(torch.nn.Module):
    """Stands in for lm_head: the next token depends only on the last input token (seen by an embedding hook)."""

    def __init__(self, brain: StepAudioBrain, table: dict[int, int], default: int) -> None:
        super().__init__()
        self.vocab = brain.model.config.text.vocab_size
        self.table, self.default, self.last = table, default, -1
        brain.model.model.embed_tokens.register_forward_hook(self._seen)

    def _seen(self, module, args, output) -> None:
        self.last = int(args[0][-1])

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = torch.full((*hidden.shape[:-1], self.vocab), -1e4)
        logits[..., self.table.get(self.last, self.default)] = 0.0
        return logits


@pytest.fixture
def scripted(tiny_dir: Path):
    """``scripted(chain) -> (brain, ids)``: a fresh brain whose decoder follows ``chain`` (token -> next token)."""

    def make(chain: dict[str, str]) -> tuple[StepAudioBrain, dict[str, int]]:
        brain = StepAudioBrain.load(tiny_dir, device="cpu")
        tok = brain.tokenizer
        ids = {name: tok.convert_tokens_to_ids(name) for name in {*chain, *chain.values()} - {"PROMPT"}}
        ids["PROMPT"] = brain.format.generation_prompt[-1]
        table = {ids[a]: ids[b] for a, b in chain.items()}
        brain.model.lm_head = BigramHead(brain, table, default=brain.format.eot)
        return brain, ids

    return make


REASON_FOREVER = {"PROMPT": "a", "a": "b", "b": "c", "c": "a"}
ANSWER_XYZ = {"</think>": "X", "X": "Y", "Y": "Z", "Z": "<|EOT|>"}


async def reply_of(brain: StepAudioBrain, **kwargs) -> tuple[list[Piece], list[int]]:
    conversation = brain.open(Conversation(INSTRUCTIONS))
    await conversation.hear(speech(1.0))
    pieces = await collect(conversation.reply(ReplyRequest(None, **kwargs)))
    ids, prompt = list(conversation.token_ids), brain.format.generation_prompt
    end = max(i + len(prompt) for i in range(len(ids)) if ids[i : i + len(prompt)] == prompt)
    return pieces, ids[end:]


async def test_reasoning_budget_closes_the_block_and_the_answer_follows(scripted):
    brain, ids = scripted(REASON_FOREVER | ANSWER_XYZ)
    pieces, tail = await reply_of(brain, max_tokens=10, reasoning_budget=7)
    assert text(pieces, "reasoning") == "abcabca"
    assert text(pieces, "answer") == "XYZ"
    assert tail == [ids[c] for c in "abcabca"] + [ids["</think>"]] + [ids[c] for c in "XYZ"]


async def test_end_of_text_inside_the_reasoning_is_replaced_by_think_close(scripted):
    brain, ids = scripted({"PROMPT": "a", "a": "b", "b": "<|EOT|>"} | ANSWER_XYZ)
    pieces, tail = await reply_of(brain, max_tokens=10, reasoning_budget=UNBOUNDED)
    assert (text(pieces, "reasoning"), text(pieces, "answer")) == ("ab", "XYZ")
    assert tail[:3] == [ids["a"], ids["b"], ids["</think>"]]


async def test_an_early_think_close_means_no_reasoning(scripted):
    brain, _ = scripted({"PROMPT": "</think>"} | ANSWER_XYZ)
    pieces, _ = await reply_of(brain, max_tokens=10, reasoning_budget=50)
    assert [p.channel for p in pieces] == ["answer"] * len(pieces) and text(pieces, "answer") == "XYZ"


async def test_max_tokens_caps_the_answer(scripted):
    brain, _ = scripted(REASON_FOREVER | {"</think>": "X", "X": "Y", "Y": "X"})
    pieces, _ = await reply_of(brain, max_tokens=5, reasoning_budget=2)
    assert text(pieces, "answer") == "XYXYX"


def channel_runs(pieces: list[Piece]) -> list[tuple[str, int]]:
    runs: list[tuple[str, int]] = []
    for piece in pieces:
        if runs and runs[-1][0] == piece.channel:
            runs[-1] = (piece.channel, runs[-1][1] + len(piece.text))
        else:
            runs.append((piece.channel, len(piece.text)))
    return runs


async def test_modes_pace_reasoning_and_answer(scripted):
    brain, ids = scripted(REASON_FOREVER | {"</think>": "X", "X": "Y", "Y": "Z", "Z": "X"})
    speak_first, tail = await reply_of(brain, mode="speak-first", max_tokens=50, reasoning_budget=200)
    assert channel_runs(speak_first) == [("answer", 40), ("reasoning", 80), ("answer", 10)]
    assert tail[:80] == [ids["abc"[i % 3]] for i in range(80)] and tail[80] == ids["</think>"]
    paced, _ = await reply_of(brain, mode="paced", max_tokens=50, reasoning_budget=200)
    assert channel_runs(paced) == [("reasoning", 80), ("answer", 40), ("reasoning", 80), ("answer", 10)]
    think_first, _ = await reply_of(brain, mode="think-first", max_tokens=50, reasoning_budget=100)
    assert channel_runs(think_first) == [("reasoning", 100), ("answer", 50)]
    assert text(think_first, "answer") == ("XYZ" * 17)[:50]


# Cancellation, misuse and closing.


async def test_closing_the_reply_stops_generation_within_a_token(scripted):
    brain, _ = scripted(REASON_FOREVER)
    conversation = brain.open(Conversation(INSTRUCTIONS))
    await conversation.hear(speech(1.0))
    pieces = conversation.reply(ReplyRequest(None, max_tokens=100, reasoning_budget=UNBOUNDED))
    received = [await anext(pieces) for _ in range(5)]
    await pieces.aclose()
    length = len(conversation.token_ids)
    await asyncio.sleep(0.05)
    assert len(conversation.token_ids) == length
    assert text(received, "reasoning") == "abcab"

    conversation.rewind()
    consumer = asyncio.create_task(collect(conversation.reply(ReplyRequest(None, max_tokens=100, reasoning_budget=UNBOUNDED))))
    while len(conversation.token_ids) < length + 20:
        await asyncio.sleep(0.001)
    at_cancel = len(conversation.token_ids)
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    stopped = len(conversation.token_ids)
    assert stopped <= at_cancel + 1 and conversation._busy == 0  # noqa: SLF001 - the step in flight ends; no other starts
    await asyncio.sleep(0.05)
    assert len(conversation.token_ids) == stopped

    conversation.close()
    assert conversation._cache is None and conversation.token_ids == ()  # noqa: SLF001 - a white-box check
    with pytest.raises(BrainStateError):
        await conversation.hear(speech(0.1))


async def test_replies_and_turns_must_alternate(brain: StepAudioBrain):
    conversation = brain.open(Conversation(INSTRUCTIONS))
    with pytest.raises(BrainStateError):
        await conversation.finish_turn("nothing was asked")
    await conversation.hear(speech(0.5))
    first = conversation.reply(ReplyRequest(None, max_tokens=2, reasoning_budget=1))
    await collect(first)
    with pytest.raises(BrainStateError):
        await collect(conversation.reply(ReplyRequest(None, max_tokens=2)))
    await conversation.finish_turn("")  # nothing heard: no assistant turn in history
    assert conversation.token_ids[-2:] == (brain.format.audio_end, brain.format.eot)


# Mind-Paced Speaking against a scripted continuation.


def fake_decoder(reasoning: list[int], answer: list[int], close: list[int], end: int):
    calls: list[list[int]] = []

    async def next_token(tail) -> int:
        tail = list(tail)
        calls.append(tail)
        for i in range(len(tail) - len(close) + 1):
            if tail[i : i + len(close)] == close:
                spoken = len(tail) - i - len(close)
                return answer[spoken] if spoken < len(answer) else end
        return reasoning[len(tail)] if len(tail) < len(reasoning) else end

    return next_token, calls


async def paced(next_token, **kwargs) -> list[tuple[str, int]]:
    options = {"think_close": [7, 8], "ends": {0}, "reasoning_budget": None, "max_answer_tokens": 100} | kwargs
    return [item async for item in mind_paced_speaking(next_token, **options)]


async def test_paced_holds_back_a_multi_token_think_close():
    next_token, _ = fake_decoder([1, 7, 2, 3, 7, 8], [4, 5], close=[7, 8], end=0)
    out = await paced(next_token, mode="think-first", segment_tokens=3)
    assert out == [("reasoning", 1), ("reasoning", 7), ("reasoning", 2), ("reasoning", 3), ("answer", 4), ("answer", 5)]


async def test_paced_streams_see_the_mps_contexts():
    next_token, calls = fake_decoder([1, 2, 3, 4, 5, 6, 7, 8], [4, 5, 6, 9], close=[7, 8], end=0)
    out = await paced(next_token, mode="speak-first", segment_tokens=2, answer_segment_tokens=2)
    assert [c for c, _ in out] == ["answer", "answer", "reasoning", "reasoning"] * 2
    assert calls[0] == [7, 8]  # speak-first: an answer before any reasoning
    assert calls[2] == []  # the formulation stream sees no answer
    assert calls[4] == [1, 2, 7, 8, 4, 5]  # articulation: reasoning so far, </think>, answer so far


async def test_paced_budget_and_end_inside_reasoning():
    next_token, _ = fake_decoder([1, 2, 3, 4, 5, 6], [4, 5, 6, 9], close=[7, 8], end=0)
    out = await paced(next_token, mode="paced", reasoning_budget=4, segment_tokens=3, answer_segment_tokens=1)
    reasoning = [("reasoning", t) for t in (1, 2, 3)]
    assert out == [*reasoning, ("answer", 4), ("reasoning", 4), ("answer", 5), ("answer", 6), ("answer", 9)]
    stops, _ = fake_decoder([1, 0], [4], close=[7, 8], end=0)
    assert await paced(stops, mode="think-first") == [("reasoning", 1), ("answer", 4)]

    async def abandoned(tail) -> None:
        return None

    assert await paced(abandoned, mode="paced") == []


# Checkpoint loading.


@pytest.fixture
def broken(tiny_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "ckpt"
    shutil.copytree(tiny_dir, copy)
    return copy


def rewrite_shard(directory: Path, change) -> None:
    shard = directory / "model-00002-of-00002.safetensors"
    tensors = load_file(shard)
    change(tensors)
    save_file(tensors, shard, metadata={"format": "pt"})


def test_loader_reads_the_sharded_checkpoint(tiny_dir: Path):
    index = json.loads((tiny_dir / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) == 2
    names = {
        "encoder.positional_embedding.weight",
        "adapter.linear2.weight",
        "model.embed_tokens.weight",
        "lm_head.weight",
    }
    assert names <= set(index["weight_map"])
    model, tokenizer = load_checkpoint(tiny_dir, device="cpu")
    assert model.dtype == torch.float32 and model.audio_patch_id == tokenizer.convert_tokens_to_ids("<audio_patch>")


def test_loader_reads_the_flat_32b_config_layout(broken: Path, tiny_dir: Path):
    config = json.loads((broken / "config.json").read_text())
    config |= config.pop("text_config")
    (broken / "config.json").write_text(json.dumps(config))
    flat, _ = load_checkpoint(broken, device="cpu")
    nested, _ = load_checkpoint(tiny_dir, device="cpu")
    assert flat.config.text.num_key_value_heads == nested.config.text.num_key_value_heads == 2
    assert torch.equal(flat.lm_head.weight, nested.lm_head.weight)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: shutil.rmtree(d), "checkpoint directory not found"),
        (lambda d: (d / "config.json").unlink(), "missing config.json"),
        (lambda d: (d / "model-00001-of-00002.safetensors").unlink(), "missing shard model-00001-of-00002.safetensors"),
        (lambda d: rewrite_shard(d, lambda t: t.pop("lm_head.weight")), "missing tensors: lm_head.weight"),
        (lambda d: rewrite_shard(d, lambda t: t.update(extra=torch.zeros(1))), "unexpected tensors: extra"),
        (
            lambda d: rewrite_shard(d, lambda t: t.update({"lm_head.weight": torch.zeros(3, 64)})),
            "tensors of the wrong shape: lm_head.weight (3, 64)",
        ),
        (lambda d: [(d / name).unlink() for name in ("tokenizer.json", "tokenizer_config.json")], "missing tokenizer"),
    ],
)
def test_loader_errors_name_the_problem(broken: Path, damage, message: str):
    damage(broken)
    with pytest.raises(CheckpointError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_checkpoint(broken, device="cpu")


def test_tiny_writer_is_deterministic(tmp_path: Path, tiny_dir: Path):
    assert tiny_main([str(tmp_path / "again")]) == 0
    for shard in ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "tokenizer.json"):
        assert (tmp_path / "again" / shard).read_bytes() == (tiny_dir / shard).read_bytes()


# The GPU benchmark's code path, on the CPU.


def test_gpu_benchmark_smoke_run(tmp_path: Path):
    from benchmarks.step_audio_gpu import main

    argv = ["--repeats", "1", "--warmup", "0", "--reasoning-budget", "4", "--decode-tokens", "4"]
    argv += ["--out", str(tmp_path)]
    assert main(["--device", "cpu", "--tiny", *argv]) == 0
    (result,) = tmp_path.glob("step-audio-gpu-*.json")
    data = json.loads(result.read_text())
    assert set(data["end_of_speech_to_first_answer_ms"]) == {"budget", "think-first", "paced", "speak-first"}
    assert data["decode_tokens_per_s"] and data["block_prefill_ms"]["2.0"] > 0
    assert result.with_suffix(".md").read_text().startswith("# Step-Audio brain latency, tiny")
    if not torch.cuda.is_available():
        assert main(["--device", "cuda", *argv]) == 2


async def test_client_items_enter_the_history_before_the_next_turn(brain: StepAudioBrain):
    """A typed message, an answer and a spoken message added by a client: the model hears them all, in order."""
    conversation = brain.open(Conversation(INSTRUCTIONS), block_seconds=25.0)
    conversation.add_item(Message("user", "What is two plus two?"))
    conversation.add_item(Message("assistant", "Four."))
    conversation.add_item(Message("user", "", audio_ms=3_000), speech(3.0))
    conversation.add_item(Message("assistant", "{}", kind="function_call", call_id="c1", name="f"))  # no functions here
    async for _ in conversation.reply(ReplyRequest(None, max_tokens=0, reasoning_budget=0)):
        pass
    rendered = brain.tokenizer.decode(list(conversation.token_ids))
    assert rendered.startswith(
        f"<|BOT|>system\n{INSTRUCTIONS}<|EOT|><|BOT|>human\nWhat is two plus two?<|EOT|><|BOT|>assistant\nFour.<|EOT|>"
        "<|BOT|>human\n<audio_start><audio_patch>"
    )
    assert rendered.endswith("<audio_end><|EOT|><|BOT|>assistant\n<think>\n")
    assert "f(" not in rendered and '"c1"' not in rendered
