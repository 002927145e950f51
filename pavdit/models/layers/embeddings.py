"""Diffusion timestep embeddings: sinusoidal features of the (scalar) timestep and an MLP on them.

One convention for every model (STDiT, MM-LDM's DiT, MM-Diffusion's U-Nets): geometric
frequencies ``max_period ** (-i / half)`` for i < half = dim // 2, cosines first, then sines
(guided-diffusion's and DiT's layout). The fixed *position* embeddings (``sincos_1d`` /
``sincos_2d`` in :mod:`pavdit.models.layers.transformer`) are a different convention (sines first,
frequencies ``10000 ** (-2i / dim)``, float64) and stay separate.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0
                       ) -> torch.Tensor:
    """Sinusoidal embedding (B,) -> (B, dim) in float32, cosines first; an odd ``dim`` gets one
    trailing zero."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32,
                                                           device=timesteps.device) / half)
    args = timesteps.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


def timestep_mlp(in_dim: int, dim: int) -> nn.Sequential:
    """Linear(in_dim, dim) -> SiLU -> Linear(dim, dim): the MLP on the sinusoidal features."""
    return nn.Sequential(nn.Linear(in_dim, dim), nn.SiLU(), nn.Linear(dim, dim))


class TimestepEmbedder(nn.Module):
    """Scalar timesteps (B,) -> (B, dim): ``frequency_dim``-d sinusoidal features (DiT: 256)
    through :func:`timestep_mlp`, run in the MLP's dtype."""

    def __init__(self, dim: int, frequency_dim: int = 256, max_period: float = 10000.0):
        super().__init__()
        self.frequency_dim, self.max_period = frequency_dim, max_period
        self.mlp = timestep_mlp(frequency_dim, dim)

    def forward(self, timesteps: torch.Tensor) -> torch.Tensor:
        features = timestep_embedding(timesteps, self.frequency_dim, self.max_period)
        return self.mlp(features.to(self.mlp[0].weight.dtype))
