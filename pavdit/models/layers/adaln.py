"""Adaptive normalisation (adaLN / FiLM): a timestep- or condition-dependent scale and shift."""
import torch


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``x * (1 + scale) + shift``; shift and scale broadcast against x (e.g. (B, 1, D) for
    (B, N, D) tokens, (B, C, 1, 1, 1) for (B, C, T, H, W) feature maps)."""
    return x * (1 + scale) + shift
