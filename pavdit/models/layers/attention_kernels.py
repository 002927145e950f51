"""Attention kernels: interchangeable implementations of softmax(q k^T / sqrt(D)) v.

Every kernel is registered in :data:`pavdit.registry.ATTENTION_KERNELS` and called as
``kernel(q, k, v, mask=None)``:

- ``q``: (B, H, Nq, D), ``k`` and ``v``: (B, H, Nk, D), all of one dtype and device;
- ``mask``: optional boolean tensor broadcastable to (B, H, Nq, Nk), True = attend;
- returns (B, H, Nq, D) in the dtype of ``q``.

A query row whose mask is all False returns zeros (what torch SDPA does), never NaN.

Kernels: ``math`` (explicit fp32 softmax; the numerical reference), ``sdpa``
(``torch.nn.functional.scaled_dot_product_attention``, which picks FlashAttention-2 / memory-
efficient kernels on CUDA and never builds the (Nq, Nk) score matrix there), ``flash_attn`` (the
flash-attn package; fp16/bf16 CUDA tensors, no mask) and ``auto`` (``flash_attn`` where usable,
otherwise ``sdpa``).
"""
import importlib.util
from typing import Callable, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from pavdit.registry import ATTENTION_KERNELS

FLASH_ATTN_AVAILABLE = importlib.util.find_spec('flash_attn') is not None
FLASH_DTYPES = (torch.float16, torch.bfloat16)


def _check_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                  mask: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """Validate shapes; return the mask with leading singleton dims up to 4-D (or None)."""
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(f'attention expects q, k, v shaped (B, H, N, D); got {tuple(q.shape)}, '
                         f'{tuple(k.shape)}, {tuple(v.shape)}')
    if k.shape != v.shape or q.shape[-1] != k.shape[-1] or q.shape[:2] != k.shape[:2]:
        raise ValueError(f'attention shapes do not match: q {tuple(q.shape)}, k {tuple(k.shape)}, '
                         f'v {tuple(v.shape)} (need q (B, H, Nq, D), k = v (B, H, Nk, D))')
    if mask is not None and mask.dtype != torch.bool:
        raise TypeError(f'attention mask must be boolean (True = attend), got {mask.dtype}')
    if mask is not None and mask.dim() < 4:
        mask = mask.reshape((1,) * (4 - mask.dim()) + tuple(mask.shape))
    return mask


@ATTENTION_KERNELS.register_module(name='math')
def math_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                   mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Reference kernel: scores and softmax in fp32, whatever the input dtype."""
    mask = _check_inputs(q, k, v, mask)
    scale = q.shape[-1] ** -0.5
    scores = torch.matmul(q.float() * scale, k.float().transpose(-2, -1))
    if mask is not None:
        scores = scores.masked_fill(~mask, float('-inf'))
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        # A row with nothing to attend to is all -inf: softmax gives NaN there; make it zero.
        weights = weights.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)
    return torch.matmul(weights, v.float()).to(q.dtype)


@ATTENTION_KERNELS.register_module(name='sdpa')
def sdpa_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                   mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """torch's fused scaled-dot-product attention."""
    mask = _check_inputs(q, k, v, mask)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def flash_attn_unusable_reason(q: torch.Tensor, mask: Optional[torch.Tensor] = None
                               ) -> Optional[str]:
    """Why ``flash_attn`` cannot run on these inputs, or None when it can."""
    if not FLASH_ATTN_AVAILABLE:
        return ('the flash-attn package is not installed (see requirements/optional.txt; '
                'use attention kernel "sdpa" or "auto" instead)')
    if not q.is_cuda:
        return f'flash-attn needs CUDA tensors, got device {q.device}'
    if q.dtype not in FLASH_DTYPES:
        return f'flash-attn needs float16 or bfloat16 tensors, got {q.dtype}'
    if mask is not None:
        return 'flash-attn takes no attention mask; use "sdpa" for masked attention'
    return None


@ATTENTION_KERNELS.register_module(name='flash_attn')
def flash_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """FlashAttention-2 from the flash-attn package (layout (B, N, H, D) internally)."""
    _check_inputs(q, k, v, mask)
    reason = flash_attn_unusable_reason(q, mask)
    if reason is not None:
        raise RuntimeError(f'attention kernel "flash_attn" cannot run: {reason}')
    from flash_attn import flash_attn_func
    out = flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    return out.transpose(1, 2)


@ATTENTION_KERNELS.register_module(name='auto')
def auto_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                   mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``flash_attn`` where it can run on these inputs, ``sdpa`` otherwise."""
    if flash_attn_unusable_reason(q, mask) is None:
        return flash_attention(q, k, v, mask)
    return sdpa_attention(q, k, v, mask)


AttentionKernel = Callable[..., torch.Tensor]


def get_attention_kernel(kernel: Union[str, AttentionKernel]) -> AttentionKernel:
    """Resolve a kernel name from config (or pass a callable through)."""
    if callable(kernel):
        return kernel
    found = ATTENTION_KERNELS.get(kernel)
    if found is None:
        raise KeyError(f'unknown attention kernel {kernel!r}; registered kernels: '
                       f'{sorted(ATTENTION_KERNELS.module_dict)}')
    return found


class AttentionKernelUser(nn.Module):
    """Base of every module that calls an attention kernel, so that :func:`set_attention_kernel`
    finds it. Subclasses call ``self.use_kernel(kernel)`` in ``__init__`` and ``self.kernel(q, k,
    v, mask=...)`` in ``forward``."""

    def use_kernel(self, kernel: Union[str, AttentionKernel]) -> None:
        self.kernel = get_attention_kernel(kernel)
        self.kernel_name = kernel if isinstance(kernel, str) else getattr(
            kernel, '__name__', repr(kernel))


def set_attention_kernel(module: nn.Module, kernel: Union[str, AttentionKernel]) -> int:
    """Switch every attention block in ``module`` (itself included) to ``kernel`` (a registered
    name or a callable); returns how many blocks were switched.

    Raises:
        KeyError: an unknown kernel name (listing the registered ones).
        ValueError: ``module`` holds no attention block.
    """
    get_attention_kernel(kernel)  # fail on a bad name before touching anything
    users = [m for m in module.modules() if isinstance(m, AttentionKernelUser)]
    if not users:
        raise ValueError(f'{type(module).__name__} holds no attention block to switch')
    for user in users:
        user.use_kernel(kernel)
    return len(users)
