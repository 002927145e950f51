"""3D-to-2D projectors: collapse one axis of the feature grid with a small transformer.

For the collapsed axis, every line of features along it (e.g. the T features at one (h, w)
position) becomes a short sequence; a learned query token is prepended, the sequence goes through
a transformer, and the query token's output is that position's value in the 2D plane. This is
attention pooling: the projector learns which frames (or rows, or columns) matter.
"""
import torch
from einops import rearrange
from torch import nn

from pavdit.models.layers import TransformerBlock, sincos_1d
from pavdit.registry import MODELS

# How each plane's lines are cut out of u (B, D, T, H, W) and put back together.
_TO_LINES = {'t': 'b d t h w -> (b h w) t d', 'h': 'b d t h w -> (b t w) h d',
             'w': 'b d t h w -> (b t h) w d'}
_TO_PLANE = {'t': '(b h w) d -> b d h w', 'h': '(b t w) d -> b d t w',
             'w': '(b t h) d -> b d t h'}


@MODELS.register_module()
class AxisProjector(nn.Module):
    """Project u (B, in_dim, T, H', W') to the plane missing ``axis`` (paper Eq. 2).

    Args:
        axis: 't' -> z_t (B, dim, H', W'); 'h' -> z_h (B, dim, T, W'); 'w' -> z_w (B, dim, T, H').
        in_dim: width of u.
        dim: transformer width (paper: 384).
        depth, num_heads, mlp_dim: transformer settings (paper: 4 layers, 4 heads, MLP 512).
        kernel: attention kernel name.
    """

    def __init__(self, axis: str, in_dim: int, dim: int = 384, depth: int = 4, num_heads: int = 4,
                 mlp_dim: int = 512, kernel: str = 'auto'):
        super().__init__()
        if axis not in _TO_LINES:
            raise ValueError(f"projector axis must be 't', 'h' or 'w', got {axis!r}")
        self.axis, self.dim = axis, dim
        self.in_proj = nn.Linear(in_dim, dim)
        self.query = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.normal_(self.query, std=0.02)
        self.blocks = nn.ModuleList(TransformerBlock(dim, num_heads, mlp_dim, kernel)
                                    for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        batch, _, frames, height, width = u.shape
        lines = self.in_proj(rearrange(u, _TO_LINES[self.axis]))
        lines = lines + sincos_1d(lines.shape[1], self.dim, lines.device, lines.dtype)
        x = torch.cat([self.query.expand(len(lines), -1, -1).to(lines.dtype), lines], dim=1)
        for block in self.blocks:
            x = block(x)
        sizes = dict(b=batch, t=frames, h=height, w=width)
        keep = {k: v for k, v in sizes.items() if k != self.axis and k in _TO_PLANE[self.axis]}
        return rearrange(self.norm(x[:, 0]), _TO_PLANE[self.axis], **keep)
