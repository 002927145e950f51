"""Small helpers shared by the baselines, so that their reduced test widths still build."""
import math

from torch import nn


def group_norm(channels: int, groups: int = 32, eps: float = 1e-5) -> nn.GroupNorm:
    """GroupNorm with ``groups`` groups (32 in both baselines' papers), fewer (gcd) when a small
    width is not a multiple of it."""
    return nn.GroupNorm(math.gcd(groups, channels), channels, eps=eps)


def divisor_heads(channels: int, heads: int) -> int:
    """``heads`` clamped to [1, channels] and lowered to the nearest divisor of ``channels``."""
    heads = max(1, min(heads, channels))
    while channels % heads:
        heads -= 1
    return heads


def zero_module(module: nn.Module) -> nn.Module:
    """Zero every parameter of ``module`` in place and return it."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module
