"""Reusable layers: attention kernels, attention modules, transformer blocks, position and timestep
embeddings, adaLN modulation."""
from pavdit.models.layers import attention_kernels
from pavdit.models.layers.adaln import modulate
from pavdit.models.layers.attention import CrossAttention, SelfAttention
from pavdit.models.layers.attention_kernels import AttentionKernelUser, set_attention_kernel
from pavdit.models.layers.embeddings import TimestepEmbedder, timestep_embedding, timestep_mlp
from pavdit.models.layers.transformer import Mlp, TransformerBlock, sincos_1d, sincos_2d

__all__ = ['attention_kernels', 'AttentionKernelUser', 'set_attention_kernel', 'CrossAttention', 'SelfAttention', 'Mlp', 'TransformerBlock',
           'sincos_1d', 'sincos_2d', 'TimestepEmbedder', 'timestep_embedding', 'timestep_mlp',
           'modulate']
