#!/usr/bin/env bash
# Create or refresh the virtualenv .venv/ at the repository root (idempotent).
# Re-installs only when requirements/*.txt or setup.cfg changed since the last successful run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "pavdit needs Python >= 3.11"' \
  || { echo "bootstrap: $PYTHON is older than Python 3.11" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv
fi

STAMP=.venv/.pavdit-requirements.sha256
WANT="$(cat requirements/*.txt setup.cfg pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  echo "bootstrap: installing requirements (first run: ~5 GB, a few minutes)"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r requirements/tests.txt
  .venv/bin/python -m pip install --quiet --no-deps -e .
  echo "$WANT" > "$STAMP"
else
  echo "bootstrap: .venv is up to date"
fi
