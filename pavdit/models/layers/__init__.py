"""Reusable layers: attention kernels, attention modules, transformer blocks, position embeddings."""
from pavdit.models.layers import attention_kernels
from pavdit.models.layers.attention import CrossAttention, SelfAttention
from pavdit.models.layers.transformer import Mlp, TransformerBlock, sincos_1d, sincos_2d

__all__ = ['attention_kernels', 'CrossAttention', 'SelfAttention', 'Mlp', 'TransformerBlock',
           'sincos_1d', 'sincos_2d']
