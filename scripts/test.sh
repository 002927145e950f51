#!/usr/bin/env bash
# The README test command: set up .venv/ and run the tests (extra arguments go to pytest).
#
# Two tiers. By default the fast tier: every test not marked `slow` (a few minutes on 2 cores).
# The slow tier runs the tools end to end (the demo, the docs' commands, the benchmark, SIGKILL
# resumes, overfitting recipes): `-m slow` runs only it, `--all` runs both, and naming test files
# or test ids (tests/...) runs them whatever their mark. CI (.ci/run) runs both tiers.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"

tier=(-m "not slow")
args=()
for arg in "$@"; do
  case "$arg" in
    --all) tier=() ;;
    tests/*|./tests/*) tier=(); args+=("$arg") ;;
    *) args+=("$arg") ;;
  esac
done
exec .venv/bin/python -m pytest -q "${tier[@]}" "${args[@]}"
