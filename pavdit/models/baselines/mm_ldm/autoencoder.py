"""Stage 2 of MM-LDM: the multimodal KL autoencoder between per-frame VAE latents and the compact
video / audio latents the DiT works on, with its temporal pooling / expansion of the video."""
from typing import Tuple

import torch
from einops import rearrange, repeat
from torch import nn

from pavdit.models.baselines.common import divisor_heads
from pavdit.models.baselines.mm_ldm.convolutions import ConvDecoder, ConvEncoder
from pavdit.models.layers import CrossAttention, TransformerBlock


def _levels(factor: int, what: str) -> int:
    """Number of resolution levels for a power-of-two downsampling ``factor`` (1 -> 1 level)."""
    if factor < 1 or factor & (factor - 1):
        raise ValueError(f'{what} must shrink the VAE latent by a power of two, got factor '
                         f'{factor}')
    return factor.bit_length()


class TemporalPool(nn.Module):
    """(B*T, C, H, W) -> (B, C, H, W): per position, a transformer block over the T frames (with a
    learned frame embedding), then a learned query ("content" token) attends over them."""

    def __init__(self, channels: int, frames: int, num_heads: int, kernel: str):
        super().__init__()
        self.frames = frames
        self.frame_embedding = nn.Parameter(torch.randn(frames, channels) * 0.02)
        self.block = TransformerBlock(channels, num_heads, 4 * channels, kernel)
        self.query = nn.Parameter(torch.randn(1, 1, channels) * 0.02)
        self.norm = nn.LayerNorm(channels)
        self.pool = CrossAttention(channels, num_heads, kernel=kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, height, width = x.shape
        tokens = rearrange(x, '(b t) c h w -> (b h w) t c', t=self.frames)
        tokens = self.block(tokens + self.frame_embedding.to(tokens.dtype))
        pooled = self.pool(self.query.expand(tokens.shape[0], -1, -1).to(tokens.dtype),
                           self.norm(tokens))
        return rearrange(pooled, '(b h w) 1 c -> b c h w', h=height, w=width)


class TemporalExpand(nn.Module):
    """(B, C, H, W) -> (B*T, C, H, W): broadcast to T frames plus a learned frame embedding, then a
    transformer block over the frames at each position."""

    def __init__(self, channels: int, frames: int, num_heads: int, kernel: str):
        super().__init__()
        self.frames = frames
        self.frame_embedding = nn.Parameter(torch.randn(frames, channels) * 0.02)
        self.block = TransformerBlock(channels, num_heads, 4 * channels, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, height, width = x.shape
        tokens = repeat(x, 'b c h w -> (b h w) t c', t=self.frames)
        tokens = self.block(tokens + self.frame_embedding.to(tokens.dtype))
        return rearrange(tokens, '(b h w) t c -> (b t) c h w', h=height, w=width)


class MultimodalKLAutoencoder(nn.Module):
    """MM-LDM's second stage: per-frame VAE latents of a clip and of the audio image <-> compact
    video and audio latents (KL autoencoder; the frozen encoder returns the posterior mean).

    Args:
        frames: T.
        in_channels: VAE latent channels (4).
        vae_latent_size: (h, w) of the VAE latents (32x32 at 256x256).
        audio_vae_latent_size: (h, w) of the audio image's VAE latent.
        video_latent_shape: (C, H, W) of the video latent (MM-LDM: 16x16x16).
        audio_latent_shape: (C, H, W) of the audio latent (MM-LDM: 16x8x8).
        channels: base width C; video levels (C, 2C, ...), audio levels (C, 2C, 4C, ...), one level
            per halving of the resolution.
        blocks: ResBlocks per encoder level (decoder: blocks + 1).
        head_dim: attention head width (MM-LDM: ``num_head_channels`` 64).
        kernel: attention kernel.

    Shapes: encode_video (B, 4, T, h, w) -> (B, *video_latent_shape); encode_audio (B, 4, ha, wa) ->
    (B, *audio_latent_shape); decode_video / decode_audio invert them.
    """

    def __init__(self, frames: int = 16, in_channels: int = 4,
                 vae_latent_size: Tuple[int, int] = (32, 32),
                 audio_vae_latent_size: Tuple[int, int] = (32, 32),
                 video_latent_shape: Tuple[int, int, int] = (16, 16, 16),
                 audio_latent_shape: Tuple[int, int, int] = (16, 8, 8), channels: int = 320,
                 blocks: int = 2, head_dim: int = 64, kernel: str = 'auto'):
        super().__init__()
        self.frames, self.in_channels = frames, in_channels
        self.video_latent_shape = tuple(video_latent_shape)
        self.audio_latent_shape = tuple(audio_latent_shape)
        video_levels = self._check(vae_latent_size, video_latent_shape, 'video latent')
        audio_levels = self._check(audio_vae_latent_size, audio_latent_shape, 'audio latent')
        video_widths = [channels * 2 ** i for i in range(video_levels)]
        audio_widths = [channels * 2 ** i for i in range(audio_levels)]
        video_width, audio_width = video_widths[-1], audio_widths[-1]
        # about width / head_dim heads each, a divisor of the width
        video_heads = divisor_heads(video_width, video_width // head_dim)
        audio_heads = divisor_heads(audio_width, audio_width // head_dim)
        self.video_encoder = ConvEncoder(
            in_channels, video_widths, blocks, 2 * video_latent_shape[0], video_heads,
            kernel, TemporalPool(video_width, frames, video_heads, kernel))
        self.video_decoder = ConvDecoder(
            video_latent_shape[0], video_widths, blocks, in_channels, video_heads, kernel,
            TemporalExpand(video_width, frames, video_heads, kernel))
        self.audio_encoder = ConvEncoder(in_channels, audio_widths, blocks,
                                         2 * audio_latent_shape[0], audio_heads, kernel)
        self.audio_decoder = ConvDecoder(audio_latent_shape[0], audio_widths, blocks,
                                         in_channels, audio_heads, kernel)

    @staticmethod
    def _check(vae_size, latent_shape, what) -> int:
        factors = {vae_size[0] // latent_shape[1], vae_size[1] // latent_shape[2]}
        if (len(factors) != 1 or vae_size[0] % latent_shape[1]
                or vae_size[1] % latent_shape[2]):
            raise ValueError(f'{what} {tuple(latent_shape)} must shrink the VAE latent '
                             f'{tuple(vae_size)} by one factor on both axes')
        return _levels(factors.pop(), what)

    def encode_video(self, latents: torch.Tensor) -> torch.Tensor:
        frames = rearrange(latents, 'b c t h w -> (b t) c h w')
        mean, _logvar = self.video_encoder(frames).chunk(2, dim=1)
        return mean

    def decode_video(self, z: torch.Tensor) -> torch.Tensor:
        return rearrange(self.video_decoder(z), '(b t) c h w -> b c t h w', t=self.frames)

    def encode_audio(self, latents: torch.Tensor) -> torch.Tensor:
        mean, _logvar = self.audio_encoder(latents).chunk(2, dim=1)
        return mean

    def decode_audio(self, z: torch.Tensor) -> torch.Tensor:
        return self.audio_decoder(z)
