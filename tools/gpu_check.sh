#!/usr/bin/env bash
# One prepared call for a lent CUDA machine (offline, Python 3.12, torch 2.11 preinstalled):
# install the wheels prepared with ../shared/device/fetch_wheels.sh into /tmp/site, then
#   1. the MDSA under torchrun with NCCL DDP and bf16 (--amp), through both training stages;
#   2. the tiny PAV-DiT sharded by FSDP (FlexibleRunner) from that MDSA, with bf16, then resumed;
#   3. the GPU tests; 4. the paper-preset benchmark, then its generator rows compiled (MFU);
#   5. the MDSA training memory at 256x256x16.
# Everything fits the 10-minute call limit; results go to $OUT (or ./gpu_out). With the argument
# `distributed`, only steps 1 and 2 run.
#   run(command="bash tools/gpu_check.sh", carry=[".whl"], timeout_s=590)
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
W=/tmp/gpu_work
TORCHRUN="python3 -m torch.distributed.run --nproc-per-node 1"

echo "== 1. MDSA, NCCL DDP, bf16, both stages" | tee "$OUT/distributed.log"
timeout 120 $TORCHRUN tools/train.py configs/mdsa/mdsa_synthetic_tiny.py --launcher pytorch --amp \
  --work-dir $W/mdsa --cfg-options train_cfg.max_iters=20 model.disc_start=10 \
  default_hooks.checkpoint.interval=20 default_hooks.logger.interval=5 2>&1 \
  | grep -E "Iter\(train\)|Error|error|Saving" | tee -a "$OUT/distributed.log"

echo "== 2. PAV-DiT, FSDP (FlexibleRunner), bf16, then resumed" | tee -a "$OUT/distributed.log"
# Class-free (no text encoder wheel on the machine), over the MDSA just trained.
cat > /tmp/fsdp_gpu.py <<EOF
_base_ = ['$PWD/configs/pavdit/pavdit_synthetic_tiny_fsdp.py']
model = dict(conditioner=None, autoencoder=dict(checkpoint='$W/mdsa/iter_20.pth'))
default_hooks = dict(checkpoint=dict(interval=10), logger=dict(interval=5))
EOF
for iters in 10 20; do
  timeout 120 $TORCHRUN tools/train.py /tmp/fsdp_gpu.py --launcher pytorch --amp --resume \
    --work-dir $W/fsdp --cfg-options train_cfg.max_iters=$iters 2>&1 | tee -a "$OUT/fsdp_full.log" \
    | grep -E "Iter\(train\)|Error|error|resumed|Saving" | tee -a "$OUT/distributed.log"
done
python3 - <<EOF 2>&1 | tee -a "$OUT/distributed.log"
from pavdit.utils.checkpoint_io import load_checkpoint_file
ckpt = load_checkpoint_file('$W/fsdp/iter_20.pth')
sd = ckpt['state_dict']
print('fsdp checkpoint iter', ckpt['meta']['iter'], 'ema_steps', int(sd['ema_steps']),
      'generator tensors', sum(k.startswith('generator.') for k in sd),
      'ema tensors', sum(k.startswith('ema_generator.') for k in sd))
EOF

[ "${1:-all}" = distributed ] && exit 0
echo "== 3. GPU tests"
timeout 120 python3 -m pytest -q -m gpu tests/ 2>&1 | tee "$OUT/gpu_tests.log"
echo "== 4. benchmark"
timeout 170 python3 tools/benchmark.py --preset paper --device cuda --runs 3 --warmup 1 \
  --attention --out "$OUT/benchmark.md" 2>&1 | tee "$OUT/benchmark.log"
echo "== 4b. compiled generator rows (CUDA graphs), MFU against the data-sheet peak"
timeout 150 python3 tools/benchmark.py --preset paper --device cuda --runs 3 --warmup 2 \
  --models pavdit pavdit_star --compile reduce-overhead --sample-batch 8 \
  --out "$OUT/benchmark_compiled.md" 2>&1 | tee "$OUT/benchmark_compiled.log"
echo "== 5. MDSA memory"
timeout 60 python3 tools/profile_memory.py configs/mdsa/mdsa_landscape.py --resolution 256 \
  --device cuda --amp 2>&1 | tail -1 | tee "$OUT/mdsa_memory.txt"
