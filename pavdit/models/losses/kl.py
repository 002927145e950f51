"""Diagonal Gaussian posterior of the autoencoders and its KL term (paper Eq. 10, batchmean)."""
from typing import Optional

import torch


class DiagonalGaussian:
    """N(mean, exp(logvar)) with independent dimensions.

    ``logvar`` is clamped to [-30, 20] so that ``exp`` can neither underflow to a zero std nor
    overflow when an untrained encoder emits extreme values.

    Args:
        mean: (B, ...) tensor.
        logvar: log-variance, same shape as ``mean``.
    """

    def __init__(self, mean: torch.Tensor, logvar: torch.Tensor):
        if mean.shape != logvar.shape:
            raise ValueError(f'mean {tuple(mean.shape)} and logvar {tuple(logvar.shape)} '
                             'shapes differ')
        self.mean = mean
        self.logvar = logvar.clamp(-30.0, 20.0)

    @property
    def std(self) -> torch.Tensor:
        return torch.exp(0.5 * self.logvar)

    def sample(self, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Reparameterised sample ``mean + std * eps`` (differentiable), shape of ``mean``."""
        noise = torch.randn(self.mean.shape, generator=generator, device=self.mean.device,
                            dtype=self.mean.dtype)
        return self.mean + self.std * noise

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self) -> torch.Tensor:
        """KL(N(mean, var) || N(0, I)) summed over all non-batch dims, averaged over B -> scalar."""
        per_element = 0.5 * (self.mean.pow(2) + self.logvar.exp() - 1.0 - self.logvar)
        return per_element.reshape(per_element.shape[0], -1).sum(dim=1).mean()

    def __repr__(self) -> str:
        return f'DiagonalGaussian(shape={tuple(self.mean.shape)})'
