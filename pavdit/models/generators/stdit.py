"""STDiT: the spatio-temporal diffusion transformer (Open-Sora 1.0 design) over packed latent planes.

The input is the six latent planes packed as 6 "frames" of a canvas (paper Eq. 9). Each block:
adaLN-single modulation, spatial self-attention within each plane, temporal self-attention across
the planes at each canvas position, cross-attention to the condition tokens, MLP.

    x (B, C, F, Hc, Wc) --3D patch embed--> tokens (B, F * S, D) + 2D sin-cos (space) + slot emb
      t --sin-cos + MLP--> t_emb (B, D) --SiLU, Linear--> t6 (B, 6D)   (adaLN-single)
      [STDiTBlock x depth] --final adaLN + Linear--> (B, C, F, Hc, Wc)
"""
from collections.abc import Mapping
from typing import Optional, Sequence, Tuple

import torch
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint

from pavdit.models.layers import (CrossAttention, Mlp, SelfAttention, TimestepEmbedder, modulate,
                                  sincos_2d)
from pavdit.registry import MODELS
from pavdit.utils.validation import check_tensor, describe


class STDiTBlock(nn.Module):
    """Spatial attention, temporal attention, cross-attention and MLP with adaLN-single.

    x: (B, F * S, D) tokens (F planes of S positions); t6: (B, 6, D) shared modulation;
    condition: dict(tokens=(B, L, D), mask=(B, L) bool), or None (no cross-attention).
    Returns (B, F * S, D).
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, kernel: str = 'auto'):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.spatial_attention = SelfAttention(dim, num_heads, kernel=kernel)
        self.temporal_attention = SelfAttention(dim, num_heads, kernel=kernel)
        self.cross_attention = CrossAttention(dim, num_heads, kernel=kernel)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        # adaLN-single: the timestep gives one (6, D) modulation for the whole network; each block
        # only adds its own learned table.
        self.scale_shift_table = nn.Parameter(torch.randn(6, dim) / dim ** 0.5)

    def forward(self, x: torch.Tensor, t6: torch.Tensor, condition: Optional[dict],
                frames: int) -> torch.Tensor:
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = (
            self.scale_shift_table[None] + t6).chunk(6, dim=1)
        spatial = rearrange(modulate(self.norm1(x), shift_msa, scale_msa),
                            'b (f s) d -> (b f) s d', f=frames)
        spatial = rearrange(self.spatial_attention(spatial), '(b f) s d -> b (f s) d', f=frames)
        x = x + gate_msa * spatial
        temporal = rearrange(x, 'b (f s) d -> (b s) f d', f=frames)
        temporal = rearrange(self.temporal_attention(temporal), '(b s) f d -> b (f s) d',
                             b=x.shape[0])
        x = x + gate_msa * temporal
        if condition is not None:  # unconditional models have no condition tokens
            x = x + self.cross_attention(x, condition['tokens'], condition.get('mask'))
        return x + gate_mlp * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))


@MODELS.register_module()
class STDiT(nn.Module):
    """Spatio-temporal DiT over a (C, F, Hc, Wc) latent canvas.

    Args:
        in_channels: latent channels C.
        num_frames: plane slots F (6 for the paper's packing).
        patch_size: (pf, ph, pw); pf must be 1 (planes are never merged).
        hidden_size, depth, num_heads, mlp_ratio: transformer size (paper: 16 blocks; Open-Sora
            STDiT-XL/2: 1152 wide, 16 heads).
        kernel: attention kernel name.
        grad_checkpointing: recompute each block in the backward pass to save memory.
        zero_init: zero the output projection, the cross-attention and temporal-attention output
            projections (training from scratch starts as an identity-plus-zero map).

    Shapes: forward(x (B, C, F, Hc, Wc), timesteps (B,), condition dict(tokens=(B, L,
    hidden_size), mask=(B, L)) or None) -> (B, C, F, Hc, Wc). Hc and Wc must be divisible by the
    patch. Arguments are validated by :meth:`check_inputs`.
    """

    def __init__(self, in_channels: int = 4, num_frames: int = 6,
                 patch_size: Sequence[int] = (1, 2, 2), hidden_size: int = 1152, depth: int = 16,
                 num_heads: int = 16, mlp_ratio: float = 4.0, kernel: str = 'auto',
                 grad_checkpointing: bool = False, zero_init: bool = True):
        super().__init__()
        if patch_size[0] != 1:
            raise ValueError(f'STDiT patch_size[0] must be 1 (one plane per frame), got '
                             f'{patch_size}')
        self.in_channels, self.num_frames = in_channels, num_frames
        self.patch_size, self.hidden_size = tuple(patch_size), hidden_size
        self.grad_checkpointing = grad_checkpointing
        self.patch_embed = nn.Conv3d(in_channels, hidden_size, kernel_size=self.patch_size,
                                     stride=self.patch_size)
        self.slot_embedding = nn.Parameter(torch.randn(num_frames, hidden_size) * 0.02)
        self.timestep_embedder = TimestepEmbedder(hidden_size)
        self.timestep_block = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 6 * hidden_size))
        self.blocks = nn.ModuleList(STDiTBlock(hidden_size, num_heads, mlp_ratio, kernel)
                                    for _ in range(depth))
        self.final_norm = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.final_scale_shift_table = nn.Parameter(torch.randn(2, hidden_size)
                                                    / hidden_size ** 0.5)
        patch_volume = self.patch_size[1] * self.patch_size[2]
        self.final_linear = nn.Linear(hidden_size, patch_volume * in_channels)
        self.initialize_weights(zero_init)

    def initialize_weights(self, zero_init: bool) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.xavier_uniform_(self.patch_embed.weight.view(self.hidden_size, -1))
        for layer in (self.timestep_embedder.mlp[0], self.timestep_embedder.mlp[2]):
            nn.init.normal_(layer.weight, std=0.02)
        nn.init.normal_(self.timestep_block[1].weight, std=0.02)
        if zero_init:
            for block in self.blocks:
                nn.init.zeros_(block.cross_attention.proj.weight)
                nn.init.zeros_(block.cross_attention.proj.bias)
                nn.init.zeros_(block.temporal_attention.proj.weight)
                nn.init.zeros_(block.temporal_attention.proj.bias)
            nn.init.zeros_(self.final_linear.weight)
            nn.init.zeros_(self.final_linear.bias)

    def check_inputs(self, x: torch.Tensor, timesteps: torch.Tensor, condition: Optional[dict]
                     ) -> Tuple[torch.Tensor, Optional[dict]]:
        """Validate :meth:`forward`'s arguments; return x and the condition in the model's dtype.

        x: floating point (B, in_channels, num_frames, Hc, Wc), Hc and Wc divisible by the patch,
        no zero-size dimension (float64 / float16 / bfloat16 are cast to the parameters' dtype).
        timesteps: (B,) integer or floating point. condition: None or a dict with ``tokens``
        (B, L, hidden_size) floating point and optionally ``mask`` (B, L) bool or integer.

        Raises:
            TypeError / ValueError: naming the argument and the expected shape or dtype.
        """
        dims = {}
        check_tensor(x, 'x', ('B', self.in_channels, self.num_frames, 'Hc', 'Wc'), dims=dims)
        ph, pw = self.patch_size[1:]
        if x.shape[-2] % ph or x.shape[-1] % pw:
            raise ValueError(f'x: STDiT expects (B, {self.in_channels}, {self.num_frames}, Hc, '
                             f'Wc) with Hc, Wc divisible by {ph}x{pw}; got {tuple(x.shape)}')
        check_tensor(timesteps, 'timesteps', ('B',), dtype='real', dims=dims)
        dtype = self.patch_embed.weight.dtype
        if condition is not None:
            if not isinstance(condition, Mapping) or 'tokens' not in condition:
                raise TypeError(f'condition must be None or dict(tokens=(B, L, '
                                f'{self.hidden_size}), mask=(B, L) bool), got '
                                f'{describe(condition)}' + (f' with keys {sorted(condition)}'
                                                            if isinstance(condition, Mapping)
                                                            else ''))
            check_tensor(condition['tokens'], "condition['tokens']",
                         ('B', 'L', self.hidden_size), dims=dims, allow_empty=True)
            if condition.get('mask') is not None:
                check_tensor(condition['mask'], "condition['mask']", ('B', 'L'),
                             dtype='bool_or_integer', dims=dims, allow_empty=True)
            condition = dict(condition, tokens=condition['tokens'].to(dtype))
        return x.to(dtype), condition

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor,
                condition: Optional[dict] = None) -> torch.Tensor:
        x, condition = self.check_inputs(x, timesteps, condition)
        batch, _, frames, height, width = x.shape
        ph, pw = self.patch_size[1:]
        grid_h, grid_w = height // ph, width // pw
        tokens = rearrange(self.patch_embed(x), 'b d f h w -> b f (h w) d')
        tokens = tokens + sincos_2d(grid_h, grid_w, self.hidden_size, x.device, tokens.dtype)
        tokens = tokens + self.slot_embedding[None, :, None].to(tokens.dtype)
        tokens = rearrange(tokens, 'b f s d -> b (f s) d')
        t_emb = self.timestep_embedder(timesteps)
        t6 = self.timestep_block(t_emb).view(batch, 6, self.hidden_size)
        for block in self.blocks:
            if self.grad_checkpointing and self.training:
                tokens = checkpoint(block, tokens, t6, condition, frames, use_reentrant=False)
            else:
                tokens = block(tokens, t6, condition, frames)
        shift, scale = (self.final_scale_shift_table[None] + t_emb[:, None]).chunk(2, dim=1)
        out = self.final_linear(modulate(self.final_norm(tokens), shift, scale))
        return rearrange(out, 'b (f h w) (p q c) -> b c f (h p) (w q)', f=frames, h=grid_h,
                         p=ph, q=pw)
