"""MM-Diffusion's coupled residual block and its parts: the "2D+1D" video conv, the single-modality
self-attention blocks, and the sequence of coupled blocks that makes one U-Net stage."""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint

from pavdit.models.baselines.common import divisor_heads, group_norm, zero_module
from pavdit.models.layers import SelfAttention, modulate

VIDEO_FACTOR = 2  # spatial down/up-sampling per level (time is never resampled)
AUDIO_FACTOR = 4  # waveform down/up-sampling per level


class PseudoConv3d(nn.Module):
    """A k x k conv within every frame followed by a k-tap conv over time ("2D+1D").

    Shapes: (B, Cin, T, H, W) -> (B, Cout, T, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__()
        self.spatial = nn.Conv2d(in_channels, out_channels, kernel_size,
                                 padding=kernel_size // 2)
        self.temporal = nn.Conv1d(out_channels, out_channels, kernel_size,
                                  padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, t, h, w = x.shape
        x = self.spatial(rearrange(x, 'b c t h w -> (b t) c h w'))
        x = self.temporal(rearrange(x, '(b t) c h w -> (b h w) c t', b=b))
        return rearrange(x, '(b h w) c t -> b c t h w', b=b, h=h, w=w)


class TokenSelfAttention(nn.Module):
    """Pre-norm residual self-attention over the last axis of (N, C, L) (the authors'
    single-modal attention block); the output projection starts at zero."""

    def __init__(self, channels: int, num_heads: int, kernel: str, norm_groups: int = 32):
        super().__init__()
        self.norm = group_norm(channels, norm_groups)
        self.attn = SelfAttention(channels, divisor_heads(channels, num_heads), kernel=kernel)
        zero_module(self.attn.proj)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.attn(self.norm(x).transpose(1, 2)).transpose(1, 2)


class VideoSelfAttention(nn.Module):
    """Spatial attention within every frame, then temporal attention at every pixel."""

    def __init__(self, channels: int, num_heads: int, kernel: str, norm_groups: int = 32):
        super().__init__()
        self.spatial = TokenSelfAttention(channels, num_heads, kernel, norm_groups)
        self.temporal = TokenSelfAttention(channels, num_heads, kernel, norm_groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, t, h, w = x.shape
        x = self.spatial(rearrange(x, 'b c t h w -> (b t) c (h w)'))
        x = self.temporal(rearrange(x, '(b t) c (h w) -> (b h w) c t', b=b, h=h))
        return rearrange(x, '(b h w) c t -> b c t h w', b=b, h=h, w=w)


class CoupledResBlock(nn.Module):
    """One residual block of both U-Nets sharing the timestep FiLM.

    Args:
        in_channels, out_channels: widths (the same for both modalities).
        emb_channels: width of the timestep embedding.
        dropout: dropout before the output convs.
        audio_dilation: dilation of the audio 3-tap conv.
        resample: ``None``, ``'down'`` or ``'up'`` (video H, W by 2; audio by 4), applied after
            the input conv (the authors' order) and to the skip path.
        video_attention, audio_attention: self-attention after the residual sum.
        num_heads, kernel, norm_groups: attention heads / kernel, GroupNorm groups.
        checkpoint_attention: recompute the attention in backward (see the package docstring).

    Shapes: video (B, Cin, T, H, W), audio (B, Cin, L), emb (B, E) ->
    (B, Cout, T, H', W'), (B, Cout, L').
    """

    def __init__(self, in_channels: int, out_channels: int, emb_channels: int,
                 dropout: float = 0.0, audio_dilation: int = 1, resample: Optional[str] = None,
                 video_attention: bool = False, audio_attention: bool = False,
                 num_heads: int = 4, kernel: str = 'auto', norm_groups: int = 32,
                 checkpoint_attention: bool = True):
        super().__init__()
        if resample not in (None, 'down', 'up'):
            raise ValueError(f"resample must be None, 'down' or 'up', got {resample!r}")
        self.resample = resample
        self.checkpoint_attention = checkpoint_attention
        self.video_in = nn.Sequential(group_norm(in_channels, norm_groups), nn.SiLU(),
                                      PseudoConv3d(in_channels, out_channels, 3))
        self.audio_in = nn.Sequential(
            group_norm(in_channels, norm_groups), nn.SiLU(),
            nn.Conv1d(in_channels, out_channels, 3, padding='same', dilation=audio_dilation))
        self.emb = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, 2 * out_channels))
        self.video_out_norm = group_norm(out_channels, norm_groups)
        self.video_out = nn.Sequential(
            nn.SiLU(), nn.Dropout(dropout), zero_module(nn.Conv3d(out_channels, out_channels, 1)))
        self.audio_out_norm = group_norm(out_channels, norm_groups)
        self.audio_out = nn.Sequential(
            nn.SiLU(), nn.Dropout(dropout), zero_module(nn.Conv1d(out_channels, out_channels, 1)))
        same = in_channels == out_channels
        self.video_skip = nn.Identity() if same else nn.Conv3d(in_channels, out_channels, 1)
        self.audio_skip = nn.Identity() if same else nn.Conv1d(in_channels, out_channels, 1)
        self.video_attention = (VideoSelfAttention(out_channels, num_heads, kernel, norm_groups)
                                if video_attention else None)
        self.audio_attention = (TokenSelfAttention(out_channels, num_heads, kernel, norm_groups)
                                if audio_attention else None)

    def _resample_video(self, x: torch.Tensor) -> torch.Tensor:
        if self.resample == 'down':
            return F.avg_pool3d(x, (1, VIDEO_FACTOR, VIDEO_FACTOR))
        if self.resample == 'up':
            return F.interpolate(x, scale_factor=(1, VIDEO_FACTOR, VIDEO_FACTOR), mode='nearest')
        return x

    def _resample_audio(self, x: torch.Tensor) -> torch.Tensor:
        if self.resample == 'down':
            return F.avg_pool1d(x, AUDIO_FACTOR)
        if self.resample == 'up':
            return F.interpolate(x, scale_factor=AUDIO_FACTOR, mode='nearest')
        return x

    def _attend(self, block: Optional[nn.Module], x: torch.Tensor) -> torch.Tensor:
        if block is None:
            return x
        if self.checkpoint_attention and torch.is_grad_enabled() and x.requires_grad:
            return checkpoint(block, x, use_reentrant=False)
        return block(x)

    def forward(self, video: torch.Tensor, audio: torch.Tensor, emb: torch.Tensor
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        video_h = self._resample_video(self.video_in(video))
        audio_h = self._resample_audio(self.audio_in(audio))
        video, audio = self._resample_video(video), self._resample_audio(audio)
        scale, shift = self.emb(emb).to(video_h.dtype).chunk(2, dim=1)  # (B, Cout) each
        video_h = modulate(self.video_out_norm(video_h), shift[:, :, None, None, None],
                           scale[:, :, None, None, None])
        audio_h = modulate(self.audio_out_norm(audio_h), shift[:, :, None], scale[:, :, None])
        video = self.video_skip(video) + self.video_out(video_h)
        audio = self.audio_skip(audio) + self.audio_out(audio_h)
        return self._attend(self.video_attention, video), self._attend(self.audio_attention, audio)


class CoupledStage(nn.ModuleList):
    """Blocks run in sequence on (video, audio, emb)."""

    def forward(self, video: torch.Tensor, audio: torch.Tensor, emb: torch.Tensor
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        for block in self:
            video, audio = block(video, audio, emb)
        return video, audio
