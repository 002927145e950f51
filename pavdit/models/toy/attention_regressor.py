"""TinyAttentionRegressor: one self-attention block regressing a per-sequence target.

Small enough to train in seconds on a CPU, but it runs through the same pieces the real models use
(registry build, attention kernel layer, mmengine ``train_step``, checkpoints), so the tests of the
training plumbing exercise real code paths.
"""
from typing import Dict, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import nn

from pavdit.registry import MODELS


@MODELS.register_module()
class TinyAttentionRegressor(BaseModel):
    """Regress a (B, out_dim) target from a (B, N, in_dim) token sequence.

    Args:
        in_dim: token width of the input.
        dim: hidden width.
        out_dim: target width.
        attention: config of the attention block (any registered block taking ``dim``), or a
            built module.
        data_preprocessor: mmengine data preprocessor config.
    """

    def __init__(self, in_dim: int = 8, dim: int = 32, out_dim: int = 4,
                 attention: Union[dict, nn.Module] = dict(type='SelfAttention', num_heads=4),
                 data_preprocessor: Union[dict, None] = None):
        super().__init__(data_preprocessor=data_preprocessor)
        self.embed = nn.Linear(in_dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.attention = (attention if isinstance(attention, nn.Module)
                          else MODELS.build(attention, default_args=dict(dim=dim)))
        self.head = nn.Linear(dim, out_dim)

    def predict_targets(self, inputs: torch.Tensor) -> torch.Tensor:
        """inputs (B, N, in_dim) -> predictions (B, out_dim)."""
        h = self.embed(inputs)
        h = h + self.attention(self.norm(h))
        return self.head(h.mean(dim=1))

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor = None,
                mode: str = 'tensor') -> Union[torch.Tensor, Dict[str, torch.Tensor], list]:
        prediction = self.predict_targets(inputs)
        if mode == 'loss':
            return dict(loss_mse=F.mse_loss(prediction, targets))
        if mode == 'predict':
            return [dict(prediction=p, target=t) for p, t in zip(prediction, targets)]
        if mode == 'tensor':
            return prediction
        raise ValueError(f'unknown forward mode {mode!r}; expected "loss", "predict" or "tensor"')
