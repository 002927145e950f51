#!/usr/bin/env bash
# The README main job: set up .venv/ and run the end-to-end demo (extra args go to tools/demo.py).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
exec .venv/bin/python tools/demo.py "$@"
