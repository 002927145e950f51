"""Pre-norm transformer pieces and fixed sin-cos position embeddings for any grid size."""
import math
from typing import Optional

import torch
from torch import nn

from pavdit.models.layers.attention import SelfAttention


class Mlp(nn.Sequential):
    """Linear -> GELU -> Linear. (..., dim) -> (..., dim)."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__(nn.Linear(dim, hidden_dim), nn.GELU(approximate='tanh'),
                         nn.Linear(hidden_dim, dim))


class TransformerBlock(nn.Module):
    """x + Attn(LN(x)), then x + MLP(LN(x)). (B, N, dim) -> (B, N, dim)."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, kernel: str = 'auto'):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attention = SelfAttention(dim, num_heads, kernel=kernel)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, mlp_dim)

    def forward(self, x: torch.Tensor, key_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = x + self.attention(self.norm1(x), key_mask=key_mask)
        return x + self.mlp(self.norm2(x))


def sincos_1d(length: int, dim: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Fixed sinusoidal embedding of positions 0..length-1 -> (length, dim); dim must be even."""
    if dim % 2:
        raise ValueError(f'sin-cos embedding needs an even dim, got {dim}')
    position = torch.arange(length, device=device, dtype=torch.float64)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float64)
                          * (-math.log(10000.0) / dim))
    angles = position * frequency
    return torch.cat([angles.sin(), angles.cos()], dim=1).to(dtype)


def sincos_2d(height: int, width: int, dim: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Fixed 2D sinusoidal embedding, half the channels per axis -> (height * width, dim)."""
    if dim % 4:
        raise ValueError(f'2D sin-cos embedding needs dim divisible by 4, got {dim}')
    rows = sincos_1d(height, dim // 2, device, dtype)[:, None, :].expand(height, width, dim // 2)
    cols = sincos_1d(width, dim // 2, device, dtype)[None, :, :].expand(height, width, dim // 2)
    return torch.cat([rows, cols], dim=-1).reshape(height * width, dim)
