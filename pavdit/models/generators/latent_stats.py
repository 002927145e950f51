"""Per-plane, per-channel latent statistics: normalisation for the generator and reflection bounds.

The autoencoder's KL posterior does not give unit-variance latents, and the six planes differ in
scale. ``LatentNormalizer`` holds a shift and scale per plane and channel (buffers, so they are
saved in the checkpoint) computed from data, and the range of the normalised latents that the
reflected-flow sampler uses as its box.
"""
from typing import Dict, Iterable, Sequence, Tuple

import torch
from torch import nn

from pavdit.registry import MODELS

Planes = Dict[str, torch.Tensor]


@MODELS.register_module()
class LatentNormalizer(nn.Module):
    """z_normalised = (z - shift) / scale per plane and channel.

    Args:
        keys: plane keys (e.g. video_t ... audio_w).
        channels: latent channels C.
        bound_margin: the reflection box is the normalised data range widened by this fraction.

    Buffers (per key, shape (C,)): ``shift``, ``scale``, ``low``, ``high``; ``fitted`` (bool).
    """

    def __init__(self, keys: Sequence[str], channels: int = 4, bound_margin: float = 0.1):
        super().__init__()
        self.keys, self.channels, self.bound_margin = list(keys), channels, bound_margin
        for key in self.keys:
            self.register_buffer(f'shift_{key}', torch.zeros(channels))
            self.register_buffer(f'scale_{key}', torch.ones(channels))
            self.register_buffer(f'low_{key}', torch.full((channels,), -3.0))
            self.register_buffer(f'high_{key}', torch.full((channels,), 3.0))
        self.register_buffer('fitted', torch.tensor(False))

    def _stat(self, name: str, key: str, like: torch.Tensor) -> torch.Tensor:
        """The (C,) statistic shaped to broadcast over a (B, C, h, w) plane."""
        return getattr(self, f'{name}_{key}').to(like.dtype)[None, :, None, None]

    def normalize(self, planes: Planes) -> Planes:
        return {k: (z - self._stat('shift', k, z)) / self._stat('scale', k, z)
                for k, z in planes.items()}

    def denormalize(self, planes: Planes) -> Planes:
        return {k: z * self._stat('scale', k, z) + self._stat('shift', k, z)
                for k, z in planes.items()}

    def bounds(self, like: Planes) -> Tuple[Planes, Planes]:
        """(low, high) planes shaped like ``like``: the reflection box in normalised units."""
        low = {k: self._stat('low', k, z).expand_as(z) for k, z in like.items()}
        high = {k: self._stat('high', k, z).expand_as(z) for k, z in like.items()}
        return low, high

    @torch.no_grad()
    def outside_share(self, planes: Planes) -> float:
        """Share of the elements of ``planes`` (unnormalised latents) whose normalised value lies
        outside the reflection box."""
        normalised, (low, high) = self.normalize(planes), self.bounds(planes)
        outside = sum(((z < low[k]) | (z > high[k])).sum().item() for k, z in normalised.items())
        return outside / sum(z.numel() for z in normalised.values())

    @torch.no_grad()
    def fit(self, batches: Iterable[Planes]) -> None:
        """Set shift/scale to the mean/std (float64) and the box to the normalised min/max."""
        count, total, total_sq, minimum, maximum = {}, {}, {}, {}, {}
        for planes in batches:
            for key in self.keys:
                z = planes[key].double().transpose(0, 1).reshape(self.channels, -1)
                count[key] = count.get(key, 0) + z.shape[1]
                total[key] = total.get(key, 0) + z.sum(1)
                total_sq[key] = total_sq.get(key, 0) + (z * z).sum(1)
                low, high = z.min(1).values, z.max(1).values
                minimum[key] = torch.minimum(minimum[key], low) if key in minimum else low
                maximum[key] = torch.maximum(maximum[key], high) if key in maximum else high
        if not count:
            raise ValueError('LatentNormalizer.fit got no batches')
        for key in self.keys:
            mean = total[key] / count[key]
            std = (total_sq[key] / count[key] - mean ** 2).clamp_min(1e-12).sqrt()
            std = torch.where(std < 1e-6, torch.ones_like(std), std)  # constant channel
            low, high = (minimum[key] - mean) / std, (maximum[key] - mean) / std
            margin = self.bound_margin * (high - low).clamp_min(1e-3)
            for name, value in (('shift', mean), ('scale', std), ('low', low - margin),
                                ('high', high + margin)):
                getattr(self, f'{name}_{key}').copy_(value.float())
        self.fitted.fill_(True)
