#!/usr/bin/env bash
# One prepared call for a lent CUDA machine (offline, Python 3.12, torch 2.11 preinstalled):
# install the pure-Python / cp312 wheels prepared with ../shared/device/fetch_wheels.sh into
# /tmp/site, run the GPU tests, then the paper-preset benchmark. Results go to $OUT (or ./gpu_out).
#   run(command="bash tools/gpu_check.sh", carry=[".whl"], timeout_s=540)
set -uo pipefail
OUT="${OUT:-gpu_out}"
mkdir -p "$OUT"
if ls .whl/*.whl > /dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
timeout 150 python3 -m pytest -q -m gpu tests/ 2>&1 | tee "$OUT/gpu_tests.log"
timeout 300 python3 tools/benchmark.py --preset paper --device cuda --runs 3 --warmup 1 \
  --attention --out "$OUT/benchmark.md" 2>&1 | tee "$OUT/benchmark.log"
python3 tools/profile_memory.py configs/mdsa/mdsa_landscape.py --resolution 256 --device cuda \
  --amp 2>&1 | tail -1 | tee "$OUT/mdsa_memory.txt"
