"""Table 3: training and sampling time of PAV-DiT against MM-Diffusion and MM-LDM, with memory,
parameters and FLOPs; plus attention-kernel and scaling studies.

    python tools/benchmark.py [--models ROW ...] [--preset cpu|paper|tiny] [--device cpu|cuda]
        [--runs 3] [--warmup 1] [--kernel auto|sdpa|math|flash_attn] [--out FILE.md]
        [--attention] [--scaling]

Rows (``--models``): mm_diffusion_64, mm_diffusion_128, mm_ldm, mm_ldm_star, pavdit, pavdit_star
(* = generator only: latents precomputed, no decoding when sampling). Train/step: batch 2,
forward + backward + optimizer step; infer/sample: one clip, the whole sampling (decoding and
Griffin-Lim included except for * rows); medians of ``--runs`` after ``--warmup``. Every row runs
in its own process, so the CPU peak memory (peak RSS) is that row's. On CUDA: bf16 autocast and
the attention kernel of ``--kernel`` (default: the models' own, ``auto``: flash-attn when
installed, else SDPA).
Writes a markdown table shaped like Table 3 (with speed-ups against PAV-DiT) and a JSON beside it.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import tempfile

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch  # noqa: E402

from pavdit.benchmark.rows import (PRESETS, ROW_NAMES, build_row,  # noqa: E402
                                   paper_parameter_counts, row_parameters)
from pavdit.benchmark.timing import (autocast, forward_flops, median_seconds,  # noqa: E402
                                     peak_memory_mb)
from pavdit.models.layers.attention_kernels import set_attention_kernel  # noqa: E402

PAPER_TABLE3 = {  # seconds: train/step (batch 2), infer/sample; H100? no: the paper's own GPU
    'mm_diffusion_64': (1.70, 33.8), 'mm_diffusion_128': (2.36, 90.0), 'mm_ldm': (0.46, 70.0),
    'mm_ldm_star': (0.38, 8.7), 'pavdit': (0.44, 17.7), 'pavdit_star': (0.32, 3.93)}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Table 3 timing benchmark.')
    parser.add_argument('--models', nargs='+', default=list(ROW_NAMES), choices=ROW_NAMES)
    parser.add_argument('--preset', choices=sorted(PRESETS), default='cpu')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--no-amp', action='store_true', help='fp32 on CUDA (default bf16)')
    parser.add_argument('--kernel', default=None,
                        help='attention kernel for every model (default: each model\'s, auto)')
    parser.add_argument('--out', default='work_dirs/benchmark.md')
    parser.add_argument('--attention', action='store_true', help='attention-kernel study')
    parser.add_argument('--scaling', action='store_true', help='PAV-DiT cost vs frames/size')
    parser.add_argument('--row', help=argparse.SUPPRESS)        # internal: one row, in a child
    parser.add_argument('--frames', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--resolution', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--json-out', help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def measure_row(args) -> dict:
    """Build one row and time it (runs in a child process)."""
    row = build_row(args.row, args.preset, args.device, frames=args.frames,
                    resolution=args.resolution)
    if args.kernel:
        set_attention_kernel(row.module, args.kernel)
    amp = not args.no_amp
    batch_size = PRESETS[args.preset]['batch_size']
    batch = row.make_batch(batch_size)
    flops = forward_flops(*row.denoiser(batch_size))
    parameters = [p for p in row.module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=1e-4)
    row.module.train()

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        with autocast(args.device, amp):
            loss = row.loss(batch)
        loss.backward()
        optimizer.step()

    if args.device.startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()
    train = median_seconds(train_step, args.runs, args.warmup, args.device)
    row.module.eval()
    with torch.no_grad(), autocast(args.device, amp):
        infer = median_seconds(lambda: row.sample(1), max(1, args.runs - 1), 1, args.device)
    return dict(row=args.row, title=row.title, resolution=row.resolution,
                frames=args.frames or PRESETS[args.preset]['frames'], train_s=train,
                infer_s=infer, memory_mb=peak_memory_mb(args.device),
                parameters=row_parameters(row), gflops=flops / 1e9, device=args.device)


def run_child(args, row: str, **overrides) -> dict:
    """Measure ``row`` in a fresh process (its own peak memory) and return its result."""
    with tempfile.NamedTemporaryFile(suffix='.json', delete=False) as handle:
        out = handle.name
    command = [sys.executable, __file__, '--row', row, '--preset', args.preset, '--device',
               args.device, '--runs', str(args.runs), '--warmup', str(args.warmup),
               '--json-out', out] + (['--no-amp'] if args.no_amp else []) + (
                   ['--kernel', args.kernel] if args.kernel else [])
    for key, value in overrides.items():
        command += [f'--{key}', str(value)]
    subprocess.run(command, check=True)
    with open(out) as f:
        result = json.load(f)
    os.remove(out)
    return result


def device_name(device: str) -> str:
    if device.startswith('cuda'):
        return torch.cuda.get_device_name()
    return f'CPU ({os.cpu_count()} cores), torch {torch.__version__}'


def table3(results: list, args) -> str:
    reference = {r['row']: r for r in results}.get('pavdit') or {}
    lines = [f'Table 3 on {device_name(args.device)}, preset `{args.preset}` (batch '
             f'{PRESETS[args.preset]["batch_size"]}, {PRESETS[args.preset]["frames"]} frames). '
             'Speed-ups are the row\'s time divided by PAV-DiT\'s.', '',
             '| method | res. | train/step | infer/sample | train vs PAV-DiT | infer vs PAV-DiT '
             '| peak memory | parameters | GFLOPs/denoiser call | paper train/step | paper infer/sample |',
             '|---|---|---|---|---|---|---|---|---|---|---|']
    for r in results:
        ratio_train = r['train_s'] / reference['train_s'] if reference else float('nan')
        ratio_infer = r['infer_s'] / reference['infer_s'] if reference else float('nan')
        paper = PAPER_TABLE3[r['row']]
        lines.append(f'| {r["title"]} | {r["resolution"]}^2 | {r["train_s"]:.3f} s | '
                     f'{r["infer_s"]:.2f} s | {ratio_train:.2f}x | {ratio_infer:.2f}x | '
                     f'{r["memory_mb"]:.0f} MiB | {r["parameters"] / 1e6:.1f}M | '
                     f'{r["gflops"]:.3g} | {paper[0]} s | {paper[1]} s |')
    return '\n'.join(lines) + '\n'


def attention_study(args) -> str:
    """math vs sdpa vs flash (when usable) on the STDiT and TimeSformer attention shapes."""
    from pavdit.models.layers import attention_kernels
    from pavdit.registry import ATTENTION_KERNELS
    paper = args.preset == 'paper'
    shapes = {  # (batch * groups, heads, tokens, head dim)
        'STDiT spatial (within a plane)': (2 * 6, 16, 256, 72) if paper else (12, 6, 64, 64),
        'STDiT temporal (across the 6 planes)': (2 * 256, 16, 6, 72) if paper else (128, 6, 6, 64),
        'TimeSformer spatial (within a frame)': (2 * 16, 6, 1024, 64) if paper else (32, 4, 64, 32),
        'TimeSformer temporal (across frames)': (2 * 1024, 6, 16, 64) if paper else (128, 4, 16, 32),
    }
    dtype = torch.bfloat16 if args.device.startswith('cuda') else torch.float32
    kernels = ['math', 'sdpa'] + (['flash_attn'] if attention_kernels.FLASH_ATTN_AVAILABLE
                                  and args.device.startswith('cuda') else [])
    lines = [f'Attention kernels on {device_name(args.device)} ({dtype}), forward + backward:',
             '', '| shape | (B, H, N, D) | ' + ' | '.join(kernels) + ' |',
             '|---|---|' + '---|' * len(kernels)]
    for title, shape in shapes.items():
        q, k, v = (torch.randn(shape, device=args.device, dtype=dtype, requires_grad=True)
                   for _ in range(3))
        cells = []
        for name in kernels:
            kernel = ATTENTION_KERNELS.get(name)
            seconds = median_seconds(lambda: kernel(q, k, v).sum().backward(), args.runs,
                                     args.warmup, args.device)
            cells.append(f'{seconds * 1e3:.2f} ms')
        lines.append(f'| {title} | {tuple(shape)} | ' + ' | '.join(cells) + ' |')
    if args.device.startswith('cuda'):
        from torch.nn.attention import SDPBackend, sdpa_kernel
        lines.append('')
        for title, shape in shapes.items():
            q, k, v = (torch.randn(shape, device=args.device, dtype=dtype) for _ in range(3))
            with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                seconds = median_seconds(lambda: torch.nn.functional.scaled_dot_product_attention(
                    q, k, v), args.runs, args.warmup, args.device)
            lines.append(f'SDPA forced to its FlashAttention backend, {title}: '
                         f'{seconds * 1e3:.2f} ms (forward)')
    return '\n'.join(lines) + '\n'


def scaling_study(args) -> str:
    paper = args.preset == 'paper'
    frames = (16, 32, 64)
    sizes = (128, 256) if paper else (32, 64)
    lines = ['PAV-DiT train/step and peak memory against clip length and frame size:', '',
             '| frames | resolution | train/step | infer/sample | peak memory |',
             '|---|---|---|---|---|']
    for f in frames:
        for size in sizes:
            r = run_child(args, 'pavdit', frames=f, resolution=size)
            lines.append(f'| {f} | {size}^2 | {r["train_s"]:.3f} s | {r["infer_s"]:.2f} s | '
                         f'{r["memory_mb"]:.0f} MiB |')
    return '\n'.join(lines) + '\n'


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.row:
        with open(args.json_out, 'w') as f:
            json.dump(measure_row(args), f)
        return
    sections, results = [], []
    for index, row in enumerate(args.models, 1):
        print(f'[{index}/{len(args.models)}] {row} ({args.preset}, {args.device})', flush=True)
        results.append(run_child(args, row))
        r = results[-1]
        print(f'    train/step {r["train_s"]:.3f} s, infer/sample {r["infer_s"]:.2f} s, '
              f'{r["memory_mb"]:.0f} MiB, {r["parameters"] / 1e6:.1f}M parameters', flush=True)
    sections.append(table3(results, args))
    counts = paper_parameter_counts()
    sections.append('Paper-size parameter counts (built on the meta device): ' + ', '.join(
        f'{name} {count / 1e6:.1f}M' for name, count in counts.items())
        + ' (published: MM-Diffusion 134M, MM-LDM-S 131M, -B 384M, -L 1543M).\n')
    if args.attention:
        sections.append(attention_study(args))
    if args.scaling:
        sections.append(scaling_study(args))
    report = '\n'.join(sections)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        f.write(report)
    with open(osp.splitext(args.out)[0] + '.json', 'w') as f:
        json.dump(dict(preset=args.preset, device=device_name(args.device), rows=results,
                       paper_parameters=counts), f, indent=1)
    print(report)
    print(f'written to {args.out}')


if __name__ == '__main__':
    main()
