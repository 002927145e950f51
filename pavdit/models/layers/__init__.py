"""Reusable layers: attention kernels and attention modules."""
from pavdit.models.layers import attention_kernels
from pavdit.models.layers.attention import CrossAttention, SelfAttention

__all__ = ['attention_kernels', 'CrossAttention', 'SelfAttention']
