"""Multi-head attention modules that run through a configurable attention kernel.

Both modules take the kernel by name (``kernel='auto' | 'sdpa' | 'math' | 'flash_attn'`` or any
name a user registered in ``ATTENTION_KERNELS``), so a benchmark or an ablation swaps the kernel
with one config value and no code change.
"""
from typing import Optional

import torch
from einops import rearrange
from torch import nn

from pavdit.models.layers.attention_kernels import AttentionKernelUser
from pavdit.registry import MODELS


class _MultiHeadAttention(AttentionKernelUser):
    """Shared plumbing: head split/merge, kernel call and output projection."""

    def __init__(self, dim: int, num_heads: int, kernel: str, proj_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'attention dim {dim} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.use_kernel(kernel)
        self.proj = nn.Linear(dim, dim, bias=proj_bias)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                key_mask: Optional[torch.Tensor]) -> torch.Tensor:
        """q (B, Nq, C), k and v (B, Nk, C), key_mask (B, Nk) bool or None -> (B, Nq, C)."""
        q, k, v = (rearrange(t, 'b n (h d) -> b h n d', h=self.num_heads) for t in (q, k, v))
        mask = None if key_mask is None else key_mask[:, None, None, :].bool()
        out = self.kernel(q, k, v, mask=mask)
        return self.proj(rearrange(out, 'b h n d -> b n (h d)'))

    def extra_repr(self) -> str:
        return f'num_heads={self.num_heads}, kernel={self.kernel_name!r}'


@MODELS.register_module()
class SelfAttention(_MultiHeadAttention):
    """Multi-head self-attention.

    Args:
        dim: token width C.
        num_heads: number of heads (C must divide evenly).
        qkv_bias: bias on the query/key/value projection.
        kernel: attention kernel name in ``ATTENTION_KERNELS``.

    Shapes:
        x: (B, N, C); key_mask: optional (B, N) bool, True = real token. Returns (B, N, C).
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True,
                 kernel: str = 'auto'):
        super().__init__(dim, num_heads, kernel)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)

    def forward(self, x: torch.Tensor, key_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return self._attend(q, k, v, key_mask)


@MODELS.register_module()
class CrossAttention(_MultiHeadAttention):
    """Multi-head cross-attention from ``x`` (queries) to ``context`` (keys and values).

    Args:
        dim: query token width C.
        num_heads: number of heads.
        context_dim: context token width Cc (defaults to C).
        qkv_bias: bias on the query and key/value projections.
        kernel: attention kernel name in ``ATTENTION_KERNELS``.

    Shapes:
        x: (B, N, C); context: (B, M, Cc); context_mask: optional (B, M) bool, True = real token.
        Returns (B, N, C).
    """

    def __init__(self, dim: int, num_heads: int = 8, context_dim: Optional[int] = None,
                 qkv_bias: bool = True, kernel: str = 'auto'):
        super().__init__(dim, num_heads, kernel)
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(context_dim or dim, 2 * dim, bias=qkv_bias)

    def forward(self, x: torch.Tensor, context: torch.Tensor,
                context_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        k, v = self.kv(context).chunk(2, dim=-1)
        return self._attend(self.q(x), k, v, context_mask)
