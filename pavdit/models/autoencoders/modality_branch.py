"""One modality's half of MDSA: encoder, three projectors, plane attention, latent heads, decoder."""
import copy
from typing import Dict, Optional, Union

import torch
from torch import nn

from pavdit.models.builder import build_module
from pavdit.models.losses.kl import DiagonalGaussian

PLANES = ('t', 'h', 'w')
Planes = Dict[str, torch.Tensor]


class ModalityBranch(nn.Module):
    """Encode a clip to three 2D planes and decode planes back to a clip.

    Args:
        in_channels: 3 for video, 1 for mel frames.
        patch_size: spatial patch size d of encoder and decoder.
        encoder: config (filled with in_channels, patch_size) or module; exposes ``dim``.
        projector: one config for the three :class:`AxisProjector`s (axis and in_dim filled in).
        decoder: config (filled with out_channels, patch_size) or module; exposes ``dim``.
        latent_channels: C of every latent plane (paper: 4).
        spatial_attention: block on z_t's features (config filled with ``dim``), or None.
        temporal_attention: block on z_h's and z_w's features (MT-SelfAttn), or None.

    Shapes (x: (B, C, T, H, W), H' = H / d, W' = W / d, P = projector width):
        plane_features(x) -> {'t': (B, P, H', W'), 'h': (B, P, T, W'), 'w': (B, P, T, H')}
        posteriors(features) -> the same keys, DiagonalGaussian over (B, latent_channels, ...)
        latent_grid(latents) -> (B, D, T, H', W'); decoder(grid) -> (B, C, T, H, W)
    """

    def __init__(self, in_channels: int, patch_size: int, encoder: Union[dict, nn.Module],
                 projector: dict, decoder: Union[dict, nn.Module], latent_channels: int = 4,
                 spatial_attention: Optional[dict] = None,
                 temporal_attention: Optional[dict] = None):
        super().__init__()
        self.in_channels, self.patch_size = in_channels, patch_size
        self.encoder = build_module(encoder, in_channels=in_channels, patch_size=patch_size)
        self.projectors = nn.ModuleDict({
            p: build_module(copy.deepcopy(projector), axis=p, in_dim=self.encoder.dim)
            for p in PLANES})
        self.plane_dim = self.projectors['t'].dim
        self.spatial_attention = build_module(spatial_attention, dim=self.plane_dim)
        self.temporal_attention = None if temporal_attention is None else nn.ModuleDict({
            p: build_module(copy.deepcopy(temporal_attention), dim=self.plane_dim)
            for p in ('h', 'w')})
        self.posterior_heads = nn.ModuleDict({
            p: nn.Conv2d(self.plane_dim, 2 * latent_channels, kernel_size=1) for p in PLANES})
        self.decoder = build_module(decoder, out_channels=in_channels, patch_size=patch_size)
        self.latent_in = nn.ModuleDict({
            p: nn.Conv2d(latent_channels, self.decoder.dim, kernel_size=1) for p in PLANES})

    def plane_features(self, x: torch.Tensor) -> Planes:
        u = self.encoder(x)
        planes = {p: projector(u) for p, projector in self.projectors.items()}
        if self.spatial_attention is not None:
            planes['t'] = self.spatial_attention(planes['t'])
        if self.temporal_attention is not None:
            planes.update({p: block(planes[p]) for p, block in self.temporal_attention.items()})
        return planes

    def posteriors(self, features: Planes) -> Dict[str, DiagonalGaussian]:
        return {p: DiagonalGaussian(*head(features[p]).chunk(2, dim=1))
                for p, head in self.posterior_heads.items()}

    def latent_grid(self, latents: Planes) -> torch.Tensor:
        """Paper Eq. 7: lift each plane, broadcast it along its missing axis and sum.

        {'t': (B, C, H', W'), 'h': (B, C, T, W'), 'w': (B, C, T, H')} -> (B, D, T, H', W').
        """
        z_t, z_h, z_w = (self.latent_in[p](latents[p]) for p in PLANES)
        return z_t[:, :, None, :, :] + z_h[:, :, :, None, :] + z_w[:, :, :, :, None]
