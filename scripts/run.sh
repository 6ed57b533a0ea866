#!/usr/bin/env bash
# Set everything up, then run the voice agent on the embedded default models.
# With no arguments it answers a generated spoken question; pass any `realtime` sub-command to run that.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "$#" -eq 0 ]; then
  mkdir -p out
  espeak-ng -v en-us+m3 -s 160 -w out/question.wav "What is the capital of France?"
  set -- respond out/question.wav -o out/reply.wav
fi
exec .venv/bin/realtime "$@"
