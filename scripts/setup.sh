#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian/Ubuntu machine: system packages, a local virtual environment
# (.venv), the project with its model packages, and the assembled model cache. CPU only by default.
set -euo pipefail
cd "$(dirname "$0")/.."

# flite/espeak-ng: test voices; portaudio: sounddevice; chromium, iproute2, fonts: the real-browser tests;
# mosquitto: the MQTT tests' broker; pulseaudio: virtual microphone and speaker for the `realtime mic` tests;
# codec2-examples: real radio speech with real background noise (the end-of-turn benchmark on real recordings);
# asterisk-core-sounds-en(-g722): real recorded prompts with exact transcripts (the recognition benchmark).
APT_PACKAGES=(flite espeak-ng sox libportaudio2 libsndfile1 chromium iproute2 fonts-dejavu-core mosquitto pulseaudio pulseaudio-utils
  codec2-examples asterisk-core-sounds-en-g722 asterisk-core-sounds-en)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# nodejs, npm: the JavaScript client tests (tests/node); a Node already on the PATH (with its npm) is kept.
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  # torch first, pinned: on this kind of machine torch==2.13.0 is a local CPU build; an unpinned torch
  # would pull several GB of CUDA packages. A GPU user sets TORCH_SPEC to the build they want.
  .venv/bin/python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
  .venv/bin/python -m pip install -q -e ".[step-audio,rescoring,dev,bench]"
  rm -f .venv/.installed-*; touch "$stamp"
fi
# Assemble and verify the chunked model files once (sha256-checked; prints a progress bar the first time); --fetch first
# downloads the one wheel a model file is taken from (Smart Turn, from pipecat-ai's wheel, without installing it).
.venv/bin/realtime models --fetch --prepare
# Real recorded speech for the end-of-turn benchmark (pyannote's sample conversation, from its wheel; sha256-checked).
.venv/bin/python -m benchmarks.end_of_turn_real --fetch
# The JavaScript clients, exactly as tests/node/package-lock.json pins them; again only when the lock changes.
npm_stamp=tests/node/node_modules/.installed-$(sha256sum tests/node/package-lock.json | cut -c1-16)
if [ ! -f "$npm_stamp" ]; then
  (cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
  touch "$npm_stamp"
fi
