#!/usr/bin/env bash
# Set everything up, then the gates (lint, types, full branch coverage of the pure core), then the whole test
# suite on the real models. Each gate fails the run: the tree must be clean before a commit.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

# Lint and types (configured in pyproject.toml: [tool.ruff], [tool.mypy]).
.venv/bin/ruff check .
.venv/bin/mypy audio vad tts realtime benchmarks

# The wire protocol core (with its commands and settings parsing), the turn-taking policy, the turn's state table and
# the scheduling between sessions: every line and branch covered by their own fast tests ([tool.coverage] in
# pyproject.toml).
.venv/bin/python -m pytest -q tests/test_protocol.py tests/test_policy.py tests/test_turn.py tests/test_priority.py \
  --cov=realtime.protocol --cov=realtime.commands --cov=realtime.wire_settings --cov=realtime.wire_responses --cov=realtime.policy \
  --cov=realtime.session.turn --cov=realtime.priority \
  --cov-branch --cov-report=term-missing --cov-fail-under=100

.venv/bin/python -m pytest -ra "$@"

# TIMING_RUNS=N (CI sets 3): the real-time tests whose outcome depends on scheduling (marked `timing`: barge-in, echo,
# turn-taking) run N times in all; any failure fails the run, so a flaky one cannot pass by luck.
for ((run = 2; run <= ${TIMING_RUNS:-1}; run++)); do
  echo "timing-sensitive tests, run $run of $TIMING_RUNS"
  .venv/bin/python -m pytest -ra -m timing "$@"
done
