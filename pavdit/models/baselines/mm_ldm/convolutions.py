"""LDM / Stable Diffusion convolutional pieces: ResNet block, mid-block attention, resampling,
and the encoder / decoder stacks shared by the per-frame VAE and the multimodal autoencoder."""
from typing import Optional, Sequence

import torch
from einops import rearrange
from torch import nn

from pavdit.models.baselines.common import group_norm
from pavdit.models.layers import SelfAttention


def _group_norm(channels: int) -> nn.GroupNorm:
    """SD's GroupNorm (32 groups, eps 1e-6), fewer groups when a small test width is not a
    multiple of 32."""
    return group_norm(channels, eps=1e-6)


class ResBlock(nn.Module):
    """SD/LDM ResNet block: (GroupNorm, SiLU, 3x3 conv) x 2 plus a 1x1 shortcut when the width
    changes. (N, C_in, H, W) -> (N, C_out, H, W)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.norm1 = _group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = _group_norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.shortcut = (nn.Identity() if in_channels == out_channels
                         else nn.Conv2d(in_channels, out_channels, 1))
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.act(self.norm1(x)))
        h = self.conv2(self.act(self.norm2(h)))
        return self.shortcut(x) + h


class SpatialAttention(nn.Module):
    """GroupNorm, self-attention over the H*W positions, residual. (N, C, H, W) -> same.
    One head is SD's VAE mid-block attention (q, k, v and output projections of width C)."""

    def __init__(self, channels: int, num_heads: int = 1, kernel: str = 'auto'):
        super().__init__()
        self.norm = _group_norm(channels)
        self.attention = SelfAttention(channels, num_heads, kernel=kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height = x.shape[-2]
        tokens = rearrange(self.norm(x), 'n c h w -> n (h w) c')
        return x + rearrange(self.attention(tokens), 'n (h w) c -> n c h w', h=height)


class Downsample(nn.Module):
    """SD's stride-2 3x3 conv with (0, 1, 0, 1) padding: H, W -> H / 2, W / 2."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(nn.functional.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Nearest x2 upsampling and a 3x3 conv: H, W -> 2H, 2W."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(nn.functional.interpolate(x, scale_factor=2.0, mode='nearest'))


def _mid_block(channels: int, num_heads: int, kernel: str) -> nn.Sequential:
    return nn.Sequential(ResBlock(channels, channels),
                         SpatialAttention(channels, num_heads, kernel),
                         ResBlock(channels, channels))


def _out_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(_group_norm(in_channels), nn.SiLU(),
                         nn.Conv2d(in_channels, out_channels, 3, padding=1))


class ConvEncoder(nn.Module):
    """LDM-style encoder: conv_in, per level ``blocks`` ResBlocks then a Downsample (not after the
    last level), a mid block (res, attention, res), GroupNorm, SiLU, conv to ``out_channels``.
    (N, in_channels, H, W) -> (N, out_channels, H / 2^(L-1), W / 2^(L-1)) for L = len(widths).
    ``temporal`` (a callable on (N, C, H, W)) runs before the mid block (the video AE's time
    pooling)."""

    def __init__(self, in_channels: int, widths: Sequence[int], blocks: int, out_channels: int,
                 mid_heads: int, kernel: str, temporal: Optional[nn.Module] = None):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, widths[0], 3, padding=1)
        layers, width = [], widths[0]
        for level, level_width in enumerate(widths):
            for _ in range(blocks):
                layers.append(ResBlock(width, level_width))
                width = level_width
            if level != len(widths) - 1:
                layers.append(Downsample(width))
        self.down = nn.Sequential(*layers)
        self.temporal = temporal
        self.mid = _mid_block(width, mid_heads, kernel)
        self.out = _out_block(width, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.down(self.conv_in(x))
        if self.temporal is not None:
            h = self.temporal(h)
        return self.out(self.mid(h))


class ConvDecoder(nn.Module):
    """Mirror of :class:`ConvEncoder`: conv_in, mid block, ``temporal`` (the video AE's frame
    expansion), per level (widest first) ``blocks + 1`` ResBlocks then an Upsample (not after the
    last), GroupNorm, SiLU, conv to ``out_channels``."""

    def __init__(self, in_channels: int, widths: Sequence[int], blocks: int, out_channels: int,
                 mid_heads: int, kernel: str, temporal: Optional[nn.Module] = None):
        super().__init__()
        width = widths[-1]
        self.conv_in = nn.Conv2d(in_channels, width, 3, padding=1)
        self.mid = _mid_block(width, mid_heads, kernel)
        self.temporal = temporal
        layers = []
        for level in reversed(range(len(widths))):
            for _ in range(blocks + 1):
                layers.append(ResBlock(width, widths[level]))
                width = widths[level]
            if level != 0:
                layers.append(Upsample(width))
        self.up = nn.Sequential(*layers)
        self.out = _out_block(width, out_channels)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))
        if self.temporal is not None:
            h = self.temporal(h)
        return self.out(self.up(h))
