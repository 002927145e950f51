"""A tiny model for exercising the training plumbing (registry, runner, checkpoints, resume)."""
from pavdit.models.toy.attention_regressor import TinyAttentionRegressor

__all__ = ['TinyAttentionRegressor']
