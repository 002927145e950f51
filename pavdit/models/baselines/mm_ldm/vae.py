"""Stage 1 of MM-LDM: Stable Diffusion's per-frame f8 KL-VAE, shared by video frames and audio
images."""
from typing import Sequence

import torch
from torch import nn

from pavdit.models.baselines.mm_ldm.convolutions import ConvDecoder, ConvEncoder

VAE_SCALE = 0.18215  # Stable Diffusion's latent scale (MM-LDM's ``scale_factor``)


class FrameKLVAE(nn.Module):
    """Stable Diffusion's f8 KL-VAE applied to single images (video frames or audio images).

    Args:
        channels: widths per level (SD: (128, 256, 512, 512)); len - 1 stride-2 downsamplings.
        blocks: ResBlocks per encoder level (decoder: blocks + 1).
        latent_channels: z channels (SD: 4).
        image_channels: 3 (RGB).
        kernel: attention kernel of the mid-block attention.

    Shapes: encode (N, 3, H, W) -> scaled posterior mean (N, 4, H / 8, W / 8) for SD's widths;
    decode inverts it.
    """

    def __init__(self, channels: Sequence[int] = (128, 256, 512, 512), blocks: int = 2,
                 latent_channels: int = 4, image_channels: int = 3, kernel: str = 'auto',
                 scale: float = VAE_SCALE):
        super().__init__()
        self.downsample = 2 ** (len(channels) - 1)
        self.latent_channels, self.scale = latent_channels, scale
        self.encoder = ConvEncoder(image_channels, channels, blocks, 2 * latent_channels, 1,
                                   kernel)
        self.quant_conv = nn.Conv2d(2 * latent_channels, 2 * latent_channels, 1)
        self.post_quant_conv = nn.Conv2d(latent_channels, latent_channels, 1)
        self.decoder = ConvDecoder(latent_channels, channels, blocks, image_channels, 1, kernel)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        mean, _logvar = self.quant_conv(self.encoder(images)).chunk(2, dim=1)
        return mean * self.scale

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(latents / self.scale))
