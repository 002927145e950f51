"""Cross-modal attention between the video and audio branches.

- :class:`GroupCrossModalAttention` (GCM-Attn, paper Eq. 6): for each plane group (z_t, z_h, z_w),
  audio attends to video and video attends to audio, both with residuals.
- :class:`BiBlockCrossAttention` (Bi-Block CrossAttn, Eq. 8): in the decoder, the two 3D feature
  grids are cut into the same grid of non-overlapping spatio-temporal blocks, and each video
  block cross-attends to the matching audio block and vice versa.
"""
from typing import Dict, Sequence, Tuple

import torch
from einops import rearrange
from torch import nn

from pavdit.models.layers import CrossAttention, sincos_1d
from pavdit.registry import MODELS

PLANES = ('t', 'h', 'w')


class _BidirectionalCrossAttention(nn.Module):
    """x_v += CA(x_v -> x_a), x_a += CA(x_a -> x_v), both from the inputs (symmetric).

    x_v (B, Nv, D), x_a (B, Na, D) -> same shapes.
    """

    def __init__(self, dim: int, num_heads: int, kernel: str):
        super().__init__()
        self.norm_video, self.norm_audio = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.video_from_audio = CrossAttention(dim, num_heads, kernel=kernel)
        self.audio_from_video = CrossAttention(dim, num_heads, kernel=kernel)

    def forward(self, video: torch.Tensor, audio: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        v, a = self.norm_video(video), self.norm_audio(audio)
        return video + self.video_from_audio(v, a), audio + self.audio_from_video(a, v)


@MODELS.register_module()
class GroupCrossModalAttention(nn.Module):
    """GCM-Attn on the three plane groups.

    The motion planes z_h and z_w share the time axis between modalities, so both sides get the
    same temporal sin-cos embedding before attending: a video step can find the audio step at the
    same time. z_t has no time axis and attends by content only.

    Args:
        dim: plane feature width.
        num_heads: attention heads.
        kernel: attention kernel name.

    Shapes: ``forward(video, audio)`` with dicts {'t': (B, dim, H', W'), 'h': (B, dim, T, W'),
    'w': (B, dim, T, H')} per modality (sizes may differ between modalities, T must match);
    returns the two updated dicts.
    """

    def __init__(self, dim: int, num_heads: int = 4, kernel: str = 'auto'):
        super().__init__()
        self.dim = dim
        self.groups = nn.ModuleDict({p: _BidirectionalCrossAttention(dim, num_heads, kernel)
                                     for p in PLANES})

    def forward(self, video: Dict[str, torch.Tensor], audio: Dict[str, torch.Tensor]):
        out_video, out_audio = dict(video), dict(audio)
        for plane, attend in self.groups.items():
            v = rearrange(video[plane], 'b d x y -> b (x y) d')
            a = rearrange(audio[plane], 'b d x y -> b (x y) d')
            if plane != 't':
                v, a = v + self._time_position(video[plane]), a + self._time_position(
                    audio[plane])
            v, a = attend(v, a)
            out_video[plane] = rearrange(v, 'b (x y) d -> b d x y', x=video[plane].shape[2])
            out_audio[plane] = rearrange(a, 'b (x y) d -> b d x y', x=audio[plane].shape[2])
        return out_video, out_audio

    def _time_position(self, plane: torch.Tensor) -> torch.Tensor:
        """(B, dim, T, S) -> a (T * S, dim) embedding of each token's time step."""
        frames, size = plane.shape[2:]
        return sincos_1d(frames, self.dim, plane.device, plane.dtype).repeat_interleave(size, 0)


@MODELS.register_module()
class BiBlockCrossAttention(nn.Module):
    """Bi-Block CrossAttn between the decoder's video and audio feature grids.

    Both grids (B, dim, T, H, W) are cut into ``T / block_frames`` x ``spatial_blocks[0]`` x
    ``spatial_blocks[1]`` blocks; blocks with the same index cross-attend in both directions.
    Blocks in time align the two modalities' frames; the spatial split keeps attention local and
    cheap (a block has ``block_frames * H/nh * W/nw`` tokens).

    Args:
        dim: feature width.
        num_heads: attention heads.
        block_frames: frames per block (T must be divisible by it).
        spatial_blocks: (nh, nw) blocks along height and width (each modality's H and W must be
            divisible by them).
        kernel: attention kernel name.

    Shapes: (video (B, dim, T, Hv, Wv), audio (B, dim, T, Ha, Wa)) -> same shapes.
    """

    def __init__(self, dim: int, num_heads: int = 4, block_frames: int = 4,
                 spatial_blocks: Sequence[int] = (2, 2), kernel: str = 'auto'):
        super().__init__()
        self.block_frames, self.spatial_blocks = block_frames, tuple(spatial_blocks)
        self.attend = _BidirectionalCrossAttention(dim, num_heads, kernel)

    def forward(self, video: torch.Tensor, audio: torch.Tensor):
        v_blocks = self._to_blocks(video, 'video')
        a_blocks = self._to_blocks(audio, 'audio')
        v_blocks, a_blocks = self.attend(v_blocks, a_blocks)
        return self._from_blocks(v_blocks, video.shape), self._from_blocks(a_blocks, audio.shape)

    def _to_blocks(self, grid: torch.Tensor, name: str) -> torch.Tensor:
        frames, height, width = grid.shape[2:]
        nh, nw = self.spatial_blocks
        if frames % self.block_frames or height % nh or width % nw:
            raise ValueError(
                f'{type(self).__name__}: the {name} grid (T={frames}, H={height}, W={width}) is '
                f'not divisible into blocks of {self.block_frames} frames x {nh} x {nw}; change '
                f'block_frames / spatial_blocks')
        return rearrange(grid, 'b d (nt bt) (nh bh) (nw bw) -> (b nt nh nw) (bt bh bw) d',
                         bt=self.block_frames, nh=nh, nw=nw)

    def _from_blocks(self, blocks: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        batch, _, frames, height, width = shape
        nh, nw = self.spatial_blocks
        return rearrange(blocks, '(b nt nh nw) (bt bh bw) d -> b d (nt bt) (nh bh) (nw bw)',
                         b=batch, bt=self.block_frames, nh=nh, nw=nw, bh=height // nh,
                         bw=width // nw)
