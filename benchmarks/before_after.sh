#!/usr/bin/env bash
# Before and after a change, on one machine in one run: `realtime bench --quick` on a baseline commit (checked out in
# a temporary git worktree, run with this checkout's environment), then on this checkout. Both write their JSON and
# markdown results to benchmarks/results/, labelled LABEL-before and LABEL-after.
#
#   bash benchmarks/before_after.sh BASE_REF [LABEL] [extra `realtime bench` options...]
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
base=${1:?usage: benchmarks/before_after.sh BASE_REF [LABEL] [bench options...]}
label=${2:-cpu}
shift $(($# < 2 ? $# : 2))
tree=$(mktemp -d)
trap 'git -C "$repo" worktree remove --force "$tree"' EXIT
git worktree add --quiet --detach "$tree" "$base"
echo "before: $(git -C "$tree" log -1 --format='%h %s')"
(cd "$tree" && PYTHONPATH="$tree" "$repo/.venv/bin/python" -m realtime.cli bench --quick --label "$label-before" \
  --output-dir "$repo/benchmarks/results" "$@")
echo "after: $(git log -1 --format='%h %s')$(git diff --quiet HEAD || echo ' (+ uncommitted changes)')"
env -u PYTHONPATH .venv/bin/python -m realtime.cli bench --quick --label "$label-after" --output-dir benchmarks/results "$@"
