"""Table 3: training and sampling time of PAV-DiT against MM-Diffusion and MM-LDM, with memory,
parameters and FLOPs; plus attention-kernel and scaling studies.

    python tools/benchmark.py [--models ROW ...] [--preset cpu|paper|tiny] [--device cpu|cuda]
        [--runs 3] [--warmup 1] [--kernel auto|sdpa|math|flash_attn] [--out FILE.md]
        [--attention] [--scaling] [--reference ROW] [--peak-tflops X] [--sample-batch 4]
        [--compile [MODE]]

Rows (``--models``): mm_diffusion_64, mm_diffusion_128, mm_ldm, mm_ldm_star, pavdit, pavdit_star
(* = generator only: latents precomputed, no decoding when sampling). Train/step: batch 2,
forward + backward + optimizer step; infer/sample: one clip, the whole sampling (decoding and
Griffin-Lim included except for * rows); medians of ``--runs`` after ``--warmup``. Every row runs
in its own process, so the CPU peak memory (peak RSS) is that row's. On CUDA: bf16 autocast and
the attention kernel of ``--kernel`` (default: the models' own, ``auto``: flash-attn when
installed, else SDPA).
Each row also reports the denoising network's achieved TFLOP/s and model FLOP utilisation (MFU)
for training and sampling, with network calls counted while timing (classifier-free guidance's
doubled batch included), and the throughput of sampling ``--sample-batch`` clips in one call.
Writes a markdown table shaped like Table 3 (with speed-ups against ``--reference``, PAV-DiT by
default) and a JSON beside it.
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
from pavdit.benchmark.timing import (autocast, counting_items, forward_flops,  # noqa: E402
                                     median_seconds, peak_memory_mb, peak_tflops)
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
    parser.add_argument('--reference', choices=ROW_NAMES,
                        help='row the speed-up columns divide by (default: pavdit when run, '
                             'else the first row)')
    parser.add_argument('--peak-tflops', type=float,
                        help='peak TFLOP/s of the device for the MFU columns (default: from the '
                             'data-sheet table for known GPUs; none on CPUs)')
    parser.add_argument('--compile', nargs='?', const='default', default=None, metavar='MODE',
                        help='torch.compile every denoising network (MODE: default, '
                             'reduce-overhead = CUDA graphs, max-autotune); compiling happens in '
                             'the warm-up calls')
    parser.add_argument('--sample-batch', type=int, default=4,
                        help='also time sampling this many clips in one call (samples/s); '
                             '1 turns it off')
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
    network, inputs = row.denoiser(batch_size)
    flops = forward_flops(network, inputs)
    if args.compile:  # every copy of the network: PAV-DiT samples with its EMA generator
        for module in row.module.modules():
            if type(module) is type(network):
                module.compile(mode=args.compile)
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
    # Items through the denoising network, counted (not assumed) while timing: forward and
    # backward of a training item cost 3 forwards; a sample counts every network call its
    # sampler makes (the doubled batch of classifier-free guidance included).
    with counting_items(row.module, type(network)) as trained:
        train = median_seconds(train_step, args.runs, args.warmup, args.device)
    row.module.eval()
    sample_runs = max(1, args.runs - 1)
    with torch.no_grad(), autocast(args.device, amp):
        with counting_items(row.module, type(network)) as sampled:
            infer = median_seconds(lambda: row.sample(1), sample_runs, 1, args.device)
        batched = (median_seconds(lambda: row.sample(args.sample_batch), 1, 1, args.device)
                   if args.sample_batch > 1 else None)
    flop_per_item = 2 * flops / batch_size  # fvcore counts a multiply-add as one
    train_flop = 3 * flop_per_item * trained[0] / (args.warmup + args.runs)
    sample_flop = flop_per_item * sampled[0] / (1 + sample_runs)
    return dict(row=args.row, title=row.title, resolution=row.resolution,
                frames=args.frames or PRESETS[args.preset]['frames'], train_s=train,
                infer_s=infer, memory_mb=peak_memory_mb(args.device),
                parameters=row_parameters(row), gflops=flops / 1e9, device=args.device,
                train_tflop=train_flop / 1e12, sample_tflop=sample_flop / 1e12,
                sample_batch=args.sample_batch,
                batched_samples_per_s=args.sample_batch / batched if batched else None)


def run_child(args, row: str, **overrides) -> dict:
    """Measure ``row`` in a fresh process (its own peak memory) and return its result."""
    with tempfile.NamedTemporaryFile(suffix='.json', delete=False) as handle:
        out = handle.name
    command = [sys.executable, __file__, '--row', row, '--preset', args.preset, '--device',
               args.device, '--runs', str(args.runs), '--warmup', str(args.warmup),
               '--sample-batch', str(args.sample_batch), '--json-out', out] + (['--no-amp'] if args.no_amp else []) + (
                   ['--kernel', args.kernel] if args.kernel else []) + (
                   ['--compile', args.compile] if args.compile else [])
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
    by_row = {r['row']: r for r in results}
    reference = by_row[args.reference or ('pavdit' if 'pavdit' in by_row else results[0]['row'])]
    versus = reference['title']
    peak = args.peak_tflops or (peak_tflops(device_name(args.device), bf16=not args.no_amp)
                                if args.device.startswith('cuda') else None)
    peak_note = (f'MFU: achieved FLOP/s over a peak of {peak:g} TFLOP/s' if peak else
                 'MFU needs the device\'s peak (--peak-tflops)')
    lines = [f'Table 3 on {device_name(args.device)}, preset `{args.preset}` (batch '
             f'{PRESETS[args.preset]["batch_size"]}, {PRESETS[args.preset]["frames"]} frames). '
             f'Speed-ups are the row\'s time divided by {versus}\'s. Achieved TFLOP/s count the '
             f'denoising network only (2 FLOPs a multiply-add, backward = 2 forwards, every '
             f'network call a sample makes); {peak_note}.', '',
             f'| method | res. | train/step | infer/sample | train vs {versus} | infer vs '
             f'{versus} | train TFLOP/s (MFU) | sample TFLOP/s (MFU) | samples/s at batch '
             f'{args.sample_batch} | peak memory | parameters | GFLOPs/denoiser call | '
             f'paper train/step | paper infer/sample |',
             '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|']
    for r in results:
        paper = PAPER_TABLE3[r['row']]
        batched = r.get('batched_samples_per_s')
        lines.append(
            f'| {r["title"]} | {r["resolution"]}^2 | {r["train_s"]:.3f} s | {r["infer_s"]:.2f} s '
            f'| {r["train_s"] / reference["train_s"]:.2f}x '
            f'| {r["infer_s"] / reference["infer_s"]:.2f}x '
            f'| {_utilisation(r["train_tflop"], r["train_s"], peak)} '
            f'| {_utilisation(r["sample_tflop"], r["infer_s"], peak)} '
            f'| {f"{batched:.3g}" if batched else "-"} | {r["memory_mb"]:.0f} MiB '
            f'| {r["parameters"] / 1e6:.1f}M | {r["gflops"]:.3g} | {paper[0]} s | {paper[1]} s |')
    return '\n'.join(lines) + '\n'


def _utilisation(tflop: float, seconds: float, peak: float = None) -> str:
    """'achieved TFLOP/s (MFU %)' of ``tflop`` done in ``seconds``."""
    achieved = tflop / seconds
    return f'{achieved:.3g}' + (f' ({100 * achieved / peak:.1f}%)' if peak else '')


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
            r = run_child(args, 'pavdit', frames=f, resolution=size, **{'sample-batch': 1})
            lines.append(f'| {f} | {size}^2 | {r["train_s"]:.3f} s | {r["infer_s"]:.2f} s | '
                         f'{r["memory_mb"]:.0f} MiB |')
    return '\n'.join(lines) + '\n'


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.reference and args.reference not in args.models:
        raise SystemExit(f'--reference {args.reference} is not among --models '
                         f'({" ".join(args.models)}): the speed-ups need its times')
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
