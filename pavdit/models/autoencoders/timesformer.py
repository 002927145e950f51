"""TimeSformer encoder and decoder: divided space-time attention over a patch grid.

Every block attends over time at each patch position, then over space within each frame, then
applies an MLP (Bertasius et al., 2021, "divided" attention). Position embeddings are fixed sin-cos
computed for the actual grid, so any T, H and W divisible by the patch size work, square or not.
"""
import torch
from einops import rearrange
from torch import nn

from pavdit.models.layers import Mlp, SelfAttention, sincos_1d, sincos_2d
from pavdit.registry import MODELS


class DividedSpaceTimeBlock(nn.Module):
    """Temporal attention, spatial attention, MLP, each pre-norm with a residual.

    x: (B, T, S, D) with S = H' * W' -> (B, T, S, D).
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, kernel: str = 'auto'):
        super().__init__()
        self.norm_time = nn.LayerNorm(dim)
        self.time_attention = SelfAttention(dim, num_heads, kernel=kernel)
        self.norm_space = nn.LayerNorm(dim)
        self.space_attention = SelfAttention(dim, num_heads, kernel=kernel)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, frames = x.shape[:2]
        along_time = rearrange(x, 'b t s d -> (b s) t d')
        along_time = along_time + self.time_attention(self.norm_time(along_time))
        x = rearrange(along_time, '(b s) t d -> (b t) s d', b=batch)
        x = x + self.space_attention(self.norm_space(x))
        x = x + self.mlp(self.norm_mlp(x))
        return rearrange(x, '(b t) s d -> b t s d', t=frames)


def space_time_position(frames: int, height: int, width: int, dim: int,
                        like: torch.Tensor) -> torch.Tensor:
    """Sum of a 1D temporal and a 2D spatial sin-cos embedding -> (T, H * W, dim)."""
    temporal = sincos_1d(frames, dim, like.device, like.dtype)[:, None, :]
    spatial = sincos_2d(height, width, dim, like.device, like.dtype)[None]
    return temporal + spatial


@MODELS.register_module()
class TimeSformerEncoder(nn.Module):
    """Patchify a clip into a 3D feature grid with divided space-time attention.

    Args:
        in_channels: 3 for video, 1 for mel frames.
        patch_size: spatial patch size d (one frame per patch in time).
        dim: feature width D.
        depth: number of divided space-time blocks.
        num_heads, mlp_ratio, kernel: block settings (kernel: attention kernel name).

    Shapes: (B, C, T, H, W) -> u (B, D, T, H/d, W/d).
    """

    def __init__(self, in_channels: int = 3, patch_size: int = 8, dim: int = 384, depth: int = 4,
                 num_heads: int = 6, mlp_ratio: float = 4.0, kernel: str = 'auto'):
        super().__init__()
        self.patch_size, self.dim = patch_size, dim
        self.patch_embed = nn.Conv3d(in_channels, dim, kernel_size=(1, patch_size, patch_size),
                                     stride=(1, patch_size, patch_size))
        self.blocks = nn.ModuleList(DividedSpaceTimeBlock(dim, num_heads, mlp_ratio, kernel)
                                    for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(f'{type(self).__name__}: frame size {height}x{width} is not '
                             f'divisible by patch_size {self.patch_size}')
        u = self.patch_embed(x)  # (B, D, T, H', W')
        frames, grid_h, grid_w = u.shape[2:]
        tokens = rearrange(u, 'b d t h w -> b t (h w) d')
        tokens = tokens + space_time_position(frames, grid_h, grid_w, self.dim, tokens)
        for block in self.blocks:
            tokens = block(tokens)
        return rearrange(self.norm(tokens), 'b t (h w) d -> b d t h w', h=grid_h)


@MODELS.register_module()
class TimeSformerDecoder(nn.Module):
    """Divided space-time blocks on a feature grid, then un-patchify back to frames.

    Args:
        out_channels: 3 for video, 1 for mel frames.
        patch_size: spatial patch size d.
        dim, depth, num_heads, mlp_ratio, kernel: as in :class:`TimeSformerEncoder`.

    Shapes: (B, D, T, H', W') -> (B, C, T, H' d, W' d).
    """

    def __init__(self, out_channels: int = 3, patch_size: int = 8, dim: int = 384,
                 depth: int = 4, num_heads: int = 6, mlp_ratio: float = 4.0,
                 kernel: str = 'auto'):
        super().__init__()
        self.patch_size, self.dim, self.out_channels = patch_size, dim, out_channels
        self.blocks = nn.ModuleList(DividedSpaceTimeBlock(dim, num_heads, mlp_ratio, kernel)
                                    for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.unpatchify = nn.Linear(dim, out_channels * patch_size * patch_size)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        frames, grid_h, grid_w = grid.shape[2:]
        tokens = rearrange(grid, 'b d t h w -> b t (h w) d')
        tokens = tokens + space_time_position(frames, grid_h, grid_w, self.dim, tokens)
        for block in self.blocks:
            tokens = block(tokens)
        patches = self.unpatchify(self.norm(tokens))
        return rearrange(patches, 'b t (h w) (c p q) -> b c t (h p) (w q)', h=grid_h,
                         p=self.patch_size, q=self.patch_size)

