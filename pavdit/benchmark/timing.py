"""Timing and memory measurement of a benchmark row: train step, sampling, FLOPs, parameters."""
import contextlib
import resource
import statistics
import time
from typing import Callable, Optional

import torch
from torch import nn


def synchronize(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def median_seconds(fn: Callable[[], None], runs: int, warmup: int, device: str) -> float:
    """Median wall time of ``fn`` over ``runs`` calls after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_memory_mb(device: str) -> float:
    """CUDA: max allocated since the last reset; CPU: this process's peak resident set."""
    if device.startswith('cuda'):
        return torch.cuda.max_memory_allocated() / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def autocast(device: str, enabled: bool):
    """bf16 autocast on CUDA when enabled; a no-op context otherwise."""
    if enabled and device.startswith('cuda'):
        return torch.autocast('cuda', dtype=torch.bfloat16)
    return contextlib.nullcontext()


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def forward_flops(module: nn.Module, inputs: tuple) -> float:
    """FLOPs of one forward of ``module`` on ``inputs`` (fvcore; a multiply-add counts as one)."""
    from fvcore.nn import FlopCountAnalysis
    analysis = FlopCountAnalysis(module, inputs)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    with torch.no_grad():
        return float(analysis.total())


# Dense peak throughput per accelerator in TFLOP/s, from the vendors' data sheets (without
# sparsity): (bf16 / fp16 tensor cores, fp32). Matched in order against torch's device name.
PEAK_TFLOPS = (
    ('H200', (989.0, 67.0)),
    ('H100 PCIe', (756.0, 51.0)),
    ('H100 NVL', (835.0, 60.0)),
    ('H100', (989.0, 67.0)),
    ('A100', (312.0, 19.5)),
    ('L40S', (362.0, 91.6)),
    ('A10', (125.0, 31.2)),
)


def peak_tflops(device_name: str, bf16: bool) -> Optional[float]:
    """The data-sheet peak of ``device_name`` (``torch.cuda.get_device_name()``), or None when the
    device is not in :data:`PEAK_TFLOPS` (CPUs included): give ``--peak-tflops`` then."""
    for key, (half, single) in PEAK_TFLOPS:
        if key in device_name:
            return half if bf16 else single
    return None


@contextlib.contextmanager
def counting_items(root: nn.Module, network_type: type):
    """Count the items (batch rows) every module of ``network_type`` inside ``root`` processes
    while the context is open: ``with counting_items(model, STDiT) as count: ...; count[0]``.

    Counting calls instead of assuming them covers what a sampler really runs: classifier-free
    guidance's doubled batch, solvers with several network calls per step, an EMA copy."""
    count = [0]

    def hook(module, args, kwargs):
        first = args[0] if args else next(iter(kwargs.values()))
        count[0] += first.shape[0]

    networks = [m for m in root.modules() if type(m) is network_type]
    handles = [m.register_forward_pre_hook(hook, with_kwargs=True) for m in networks]
    try:
        yield count
    finally:
        for handle in handles:
            handle.remove()
