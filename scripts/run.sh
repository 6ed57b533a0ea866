#!/usr/bin/env bash
# Set everything up, then run the voice agent on the embedded default models.
# With no arguments it serves the voice endpoint (realtime serve); pass any `realtime` sub-command to run that.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "$#" -eq 0 ]; then
  set -- serve
fi
exec .venv/bin/realtime "$@"
