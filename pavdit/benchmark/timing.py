"""Timing and memory measurement of a benchmark row: train step, sampling, FLOPs, parameters."""
import contextlib
import resource
import statistics
import time
from typing import Callable

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
