"""Pixel-wise reconstruction losses of the autoencoder: L1, MSE, Charbonnier and their sums.

Why the choice matters (measured on a one-clip overfit, docs/mdsa.md): L1's minimiser is the
per-pixel *median*, so an object that covers a pixel in only a few frames of a clip - a small
bouncing ball - is cheaper to drop than to draw; the reconstruction keeps the background and loses
the ball. MSE's minimiser is the mean, which keeps a faint object and lets training sharpen it.
"""
from typing import Dict

import torch
from torch import nn

from pavdit.registry import MODELS

TERMS = ('l1', 'mse', 'charbonnier')


@MODELS.register_module()
class ReconstructionLoss(nn.Module):
    """A weighted sum of pixel losses; a term with weight 0 is not computed.

    Args:
        l1: weight of the mean absolute error (paper Eq. 10: 4.0).
        mse: weight of the mean squared error.
        charbonnier: weight of the mean of ``sqrt(diff^2 + eps^2) - eps`` (a smooth L1).
        eps: Charbonnier's smoothing width, in the data's units ([-1, 1] pixels and mel bins).

    ``forward(fake, real)`` with tensors of one shape returns ``{term: weighted loss}`` for the
    terms switched on (scalars).
    """

    def __init__(self, l1: float = 4.0, mse: float = 0.0, charbonnier: float = 0.0,
                 eps: float = 1e-3):
        super().__init__()
        self.weights = dict(l1=float(l1), mse=float(mse), charbonnier=float(charbonnier))
        negative = {k: w for k, w in self.weights.items() if w < 0}
        if negative or not any(self.weights.values()):
            raise ValueError(f'reconstruction_loss: weights must be >= 0 with at least one > 0, '
                             f'got {self.weights}')
        if eps <= 0:
            raise ValueError(f'reconstruction_loss.eps must be > 0, got {eps}')
        self.eps = eps

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> Dict[str, torch.Tensor]:
        diff = fake - real
        terms = dict(l1=lambda: diff.abs().mean(), mse=lambda: diff.pow(2).mean(),
                     charbonnier=lambda: ((diff.pow(2) + self.eps ** 2).sqrt() - self.eps).mean())
        return {name: weight * terms[name]() for name, weight in self.weights.items() if weight}
