"""MM-Diffusion's random-shift multimodal attention (RS-MMA) between the video and audio U-Nets."""
from typing import Optional, Tuple

import torch
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint

from pavdit.models.baselines.common import divisor_heads, group_norm, zero_module
from pavdit.models.layers.attention_kernels import AttentionKernelUser


class RandomShiftCrossAttention(AttentionKernelUser):
    """RS-MMA: windowed video <-> audio attention with a random window shift.

    Each modality has one norm, one query/key/value projection and one zero-initialised output
    projection; video queries of frame i use the audio keys/values of frames
    ``(i + s + j) mod T`` for j < window, and audio queries of frame i the video keys/values of
    the same frames. The shift s is uniform in [0, T - window] when ``random_shift`` is on and the
    module is training (or ``shift_in_eval``), else 0; ``last_shift`` records the one used.
    A window of T frames or more is full attention between the two clips.

    Shapes: video (B, C, T, H, W), audio (B, C, L) -> the same; L % T == 0 unless the window
    covers the clip.
    """

    def __init__(self, channels: int, num_heads: int, window: int, random_shift: bool = True,
                 shift_in_eval: bool = True, kernel: str = 'auto', norm_groups: int = 32,
                 checkpoint_attention: bool = True):
        super().__init__()
        if window < 1:
            raise ValueError(f'cross-attention window must be >= 1 frame, got {window}')
        self.num_heads = divisor_heads(channels, num_heads)
        self.window = window
        self.random_shift = random_shift
        self.shift_in_eval = shift_in_eval
        self.checkpoint_attention = checkpoint_attention
        self.use_kernel(kernel)
        self.video_norm = group_norm(channels, norm_groups)
        self.audio_norm = group_norm(channels, norm_groups)
        self.video_qkv = nn.Linear(channels, 3 * channels)
        self.audio_qkv = nn.Linear(channels, 3 * channels)
        self.video_proj = zero_module(nn.Linear(channels, channels))
        self.audio_proj = zero_module(nn.Linear(channels, channels))
        self.last_shift: Optional[int] = None

    def extra_repr(self) -> str:
        return (f'num_heads={self.num_heads}, window={self.window}, '
                f'random_shift={self.random_shift}, kernel={self.kernel_name!r}')

    def draw_shift(self, frames: int) -> int:
        shifting = self.random_shift and (self.training or self.shift_in_eval)
        if not shifting or self.window >= frames:
            return 0
        return int(torch.randint(0, frames - self.window + 1, ()).item())

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q, k, v = (rearrange(x, 'b n (h d) -> b h n d', h=self.num_heads) for x in (q, k, v))
        return rearrange(self.kernel(q, k, v), 'b h n d -> b n (h d)')

    def _forward(self, video: torch.Tensor, audio: torch.Tensor, shift: int
                 ) -> Tuple[torch.Tensor, torch.Tensor]:
        b, c, t, h, w = video.shape
        video_tokens = self.video_norm(video.flatten(2)).transpose(1, 2)  # (B, T*H*W, C)
        audio_tokens = self.audio_norm(audio).transpose(1, 2)  # (B, L, C)
        vq, vk, vv = self.video_qkv(video_tokens).chunk(3, dim=-1)
        aq, ak, av = self.audio_qkv(audio_tokens).chunk(3, dim=-1)
        if self.window >= t:
            video_out, audio_out = self._attend(vq, ak, av), self._attend(aq, vk, vv)
        else:
            # Frame windows: row i lists frames (i + shift + j) mod T, j < window.
            frames = (torch.arange(t, device=video.device)[:, None] + shift
                      + torch.arange(self.window, device=video.device)[None]) % t

            def per_frame(x: torch.Tensor) -> torch.Tensor:  # (B, T*n, C) -> (B, T, n, C)
                return x.reshape(b, t, -1, c)

            def windows(x: torch.Tensor) -> torch.Tensor:  # (B, T*n, C) -> (B*T, window*n, C)
                return rearrange(per_frame(x)[:, frames], 'b t j n c -> (b t) (j n) c')

            video_out = self._attend(rearrange(per_frame(vq), 'b t n c -> (b t) n c'),
                                     windows(ak), windows(av))
            audio_out = self._attend(rearrange(per_frame(aq), 'b t n c -> (b t) n c'),
                                     windows(vk), windows(vv))
            video_out = video_out.reshape(b, -1, c)
            audio_out = audio_out.reshape(b, -1, c)
        video = video + self.video_proj(video_out).transpose(1, 2).reshape(b, c, t, h, w)
        audio = audio + self.audio_proj(audio_out).transpose(1, 2)
        return video, audio

    def forward(self, video: torch.Tensor, audio: torch.Tensor, emb: torch.Tensor = None
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        t, length = video.shape[2], audio.shape[-1]
        if self.window < t and length % t:
            raise ValueError(f'windowed multimodal attention needs the audio length ({length}) '
                             f'to be a multiple of the frame count ({t})')
        shift = self.draw_shift(t)
        self.last_shift = shift
        if self.checkpoint_attention and torch.is_grad_enabled() and (
                video.requires_grad or audio.requires_grad):
            return checkpoint(self._forward, video, audio, shift, use_reentrant=False)
        return self._forward(video, audio, shift)
