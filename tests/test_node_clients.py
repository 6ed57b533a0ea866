"""Real JavaScript clients against the websocket endpoint, on the real embedded models: the `openai` SDK's realtime
client and the Agents SDK's websocket transport. The `openai` client always connects with wss:, so the server runs
with a self-signed certificate made here, which Node trusts through NODE_EXTRA_CA_CERTS. Node and the packages come
from scripts/setup.sh (`npm ci` in tests/node, pinned by its package-lock.json); each script prints one JSON object."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from realtime.models import Models
from realtime.server import RealtimeServer, ServerOptions

NODE_DIR = Path(__file__).parent / "node"
NODE = shutil.which("node")
NODE_MAJOR = int(subprocess.run([NODE, "--version"], capture_output=True, text=True, check=True).stdout.lstrip("v").split(".")[0]) if NODE else 0
KEY = "secret-key"
QUESTION = "What is the capital of France?"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(NODE is None or not (NODE_DIR / "node_modules").is_dir(), reason="needs Node and `npm ci` in tests/node (scripts/setup.sh)"),
]


@dataclass
class Certificate:
    cert: Path
    key: Path


@pytest.fixture
def certificate(tmp_path: Path) -> Certificate:
    """A self-signed certificate for 127.0.0.1 (Node checks the address against its subjectAltName), valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    made = Certificate(tmp_path / "cert.pem", tmp_path / "key.pem")
    made.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    made.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return made


@pytest.fixture
async def server(models: Models, certificate: Certificate) -> AsyncIterator[RealtimeServer]:
    """`realtime serve --certfile --keyfile --api-key` on loopback, in this process."""
    options = ServerOptions(port=0, api_key=KEY, certfile=str(certificate.cert), keyfile=str(certificate.key))
    running = await RealtimeServer(models, options).start()
    yield running
    await running.stop()


def trusting(certificate: Certificate) -> dict[str, str]:
    """Node's environment to trust ``certificate``."""
    return {"NODE_EXTRA_CA_CERTS": str(certificate.cert)}


async def run_node(
    script: str, *args: str, env: dict[str, str] | None = None, flags: tuple[str, ...] = (), timeout_s: float = 120.0
) -> tuple[int, dict[str, Any]]:
    """Run a script of tests/node (``env`` added to this process's, the API key given); its exit code and the JSON it
    printed. The scripts give up on their own before ``timeout_s``."""
    assert NODE is not None
    process = await asyncio.create_subprocess_exec(
        NODE, *flags, script, *args, cwd=NODE_DIR, env={**os.environ, "OPENAI_API_KEY": KEY, **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=timeout_s)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert out, f"{script} printed nothing (exit code {process.returncode}): {err.decode()}"
    assert process.returncode is not None
    return process.returncode, json.loads(out)


async def test_the_openai_sdk_realtime_client_over_wss(server: RealtimeServer, certificate: Certificate) -> None:
    # Node 20 has the native WebSocket behind a flag; from Node 22 on it is there by default.
    flags = ("--experimental-websocket",) if NODE_MAJOR < 22 else ()
    base_url = f"https://127.0.0.1:{server.port}/v1"
    code, result = await run_node("openai_realtime.mjs", base_url, QUESTION, env=trusting(certificate), flags=flags)
    assert code == 0 and not result["errors"], result
    events = result["events"]
    order = ["session.created", "session.updated", "conversation.item.added", "conversation.item.done", "response.created",
             "response.output_audio_transcript.delta", "response.output_audio.delta", "response.done"]
    positions = [events.index(kind) for kind in order]
    assert positions == sorted(positions), events
    assert result["status"] == "completed"
    assert "paris" in result["transcript"].lower(), result["transcript"]
    assert result["audio_bytes"] > 24_000, result  # over half a second of 24 kHz PCM16


async def test_the_agents_sdk_over_its_websocket_transport(server: RealtimeServer, certificate: Certificate) -> None:
    url = f"wss://127.0.0.1:{server.port}/v1/realtime?model=embedded"
    code, result = await run_node("agents_realtime.mjs", url, QUESTION, env=trusting(certificate))
    assert code == 0 and not result["errors"], result
    sent = [event["type"] for event in result["sent"]]
    assert sent[:3] == ["session.update", "conversation.item.create", "response.create"], sent
    assert "paris" in result["answer"].lower(), result["answer"]
    history = [(item["role"], item["status"], item["text"]) for item in result["history"]]
    assert history == [("user", "completed", QUESTION), ("assistant", "completed", result["answer"])], result
