"""Attention on the 2D latent planes of one modality (paper section 3.1, Eq. 4-5).

- :class:`PlaneSpatialAttention` on the static plane z_t (H' x W'): a transformer block over its
  positions, for long-range spatial dependencies within the frame content.
- :class:`MultiScaleTemporalAttention` (MT-SelfAttn) on the motion planes z_h (T x W') and
  z_w (T x H'): self-attention over time at temporal scales 1, 1/2 and 1/4 (average pooling),
  each brought back to T frames by a transposed convolution, summed.
"""
from typing import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from pavdit.models.layers import SelfAttention, TransformerBlock, sincos_1d, sincos_2d
from pavdit.registry import MODELS


@MODELS.register_module()
class PlaneSpatialAttention(nn.Module):
    """A pre-norm transformer block over the H' x W' positions of z_t.

    Shapes: (B, dim, H', W') -> (B, dim, H', W').
    """

    def __init__(self, dim: int, num_heads: int = 4, mlp_ratio: float = 4.0,
                 kernel: str = 'auto'):
        super().__init__()
        self.dim = dim
        self.block = TransformerBlock(dim, num_heads, int(dim * mlp_ratio), kernel)

    def forward(self, plane: torch.Tensor) -> torch.Tensor:
        height, width = plane.shape[-2:]
        tokens = rearrange(plane, 'b d h w -> b (h w) d')
        position = sincos_2d(height, width, self.dim, tokens.device, tokens.dtype)
        return rearrange(self.block(tokens + position), 'b (h w) d -> b d h w', h=height)


@MODELS.register_module()
class MultiScaleTemporalAttention(nn.Module):
    """MT-SelfAttn: z + sum_k DeConv_k(Attn_t(AvgPool_k(LN(z)))) over scales k (paper Eq. 4-5).

    At each scale, the T axis is average-pooled by k (T is padded by repeating its last frame up to
    a multiple of k, so any T works), attention runs over the T/k steps at each position of the
    other axis, and a transposed 1D convolution with kernel = stride = k upsamples back to T.
    The residual keeps the block an identity at initialisation-scale outputs.

    Args:
        dim: plane feature width.
        num_heads: attention heads.
        scales: pooling factors (paper: 1, 2, 4).
        kernel: attention kernel name.

    Shapes: (B, dim, T, S) -> (B, dim, T, S), S = W' for z_h or H' for z_w.
    """

    def __init__(self, dim: int, num_heads: int = 4, scales: Sequence[int] = (1, 2, 4),
                 kernel: str = 'auto'):
        super().__init__()
        self.dim, self.scales = dim, tuple(scales)
        self.norm = nn.LayerNorm(dim)
        self.attentions = nn.ModuleList(SelfAttention(dim, num_heads, kernel=kernel)
                                        for _ in self.scales)
        self.upsamplers = nn.ModuleList(nn.ConvTranspose1d(dim, dim, kernel_size=k, stride=k)
                                        for k in self.scales)

    def forward(self, plane: torch.Tensor) -> torch.Tensor:
        batch, _, frames, size = plane.shape
        lines = rearrange(plane, 'b d t s -> (b s) d t')
        normed = self.norm(lines.transpose(1, 2)).transpose(1, 2)
        total = lines
        for k, attention, upsample in zip(self.scales, self.attentions, self.upsamplers):
            padded = F.pad(normed, (0, -frames % k), mode='replicate') if frames % k else normed
            pooled = F.avg_pool1d(padded, kernel_size=k) if k > 1 else padded  # (B S, D, T/k)
            steps = pooled.transpose(1, 2)
            steps = steps + sincos_1d(steps.shape[1], self.dim, steps.device, steps.dtype)
            attended = attention(steps).transpose(1, 2)
            total = total + upsample(attended)[..., :frames]
        return rearrange(total, '(b s) d t -> b d t s', b=batch, s=size)
