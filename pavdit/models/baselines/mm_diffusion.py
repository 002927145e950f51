"""MM-Diffusion (Ruan et al., CVPR 2023): coupled video / audio U-Nets in signal space, for the
Table 3 timing comparison (random weights; no checkpoint is loaded).

Written from the architecture of the authors' ``MultimodalUNet`` and the flags of their training
and sampling scripts (64x64 setting):

- one U-Net per modality with a shared timestep embedding (sinusoidal, model_channels wide, then
  Linear-SiLU-Linear to ``time_embed_dim = model_channels``) and coupled blocks: every residual
  block holds a video branch and an audio branch that receive the same FiLM scale/shift;
- video (B, 3, T, H, W): "2D+1D" convolutions (a 3x3 conv within each frame, then a 3-tap conv
  over time), GroupNorm over the whole clip, 1x1x1 output convs; down/up-sampling halves/doubles
  H and W only (average pooling / nearest), never T;
- audio (B, 1, N), the raw waveform (16 kHz): 3-tap 1-D convs whose dilation cycles
  ``2 ** (d % 10)`` with a counter d that grows by one per residual block down the encoder and
  shrinks by one per block up the decoder; down/up-sampling by 4;
- channel multipliers (1, 2, 3, 4) on 128 channels, 2 residual blocks per level, residual blocks
  do the resampling (``resblock_updown``), FiLM (``use_scale_shift_norm``), dropout 0.1;
- video self-attention (spatial within each frame, then temporal at each pixel, 4 heads) in the
  residual blocks at downsampling rates 2, 4, 8; no audio attention except in the middle block;
- random-shift multimodal attention (RS-MMA) after every residual block at rates 2, 4, 8 with
  windows of 1, 4, 8 frames: the video tokens of frame i attend to the audio of frames
  i + s .. i + s + w - 1 (mod T) and the audio of frame i to the video of those frames, with one
  random shift s in [0, T - w] per block and call; heads of 64 channels. The middle block is
  ResBlock - full-clip multimodal attention (no shift) - ResBlock, both ResBlocks with video and
  audio self-attention;
- attention blocks are gradient-checkpointed in training, as the authors' always are.

Deliberate differences (none changes the parameter count or the FLOPs materially):

- attention runs through pavdit's attention kernels (``kernel``), the windows vectorised over
  frames instead of the authors' Python loop, softmax with the usual 1/sqrt(d) scale;
- video layout (B, C, T, H, W) instead of (B, T, C, H, W); 1x1 convs on token sequences are
  ``nn.Linear`` (same weights);
- windows longer than the clip are clamped to it; a window covering the clip is plain full
  attention, which also covers audio lengths the frame count does not divide (the authors' code
  then leaves the last few audio samples out of the video's keys);
- the random shift is drawn outside the checkpointed function, so the backward recomputation
  reuses it (the authors' redraws it), from torch's global RNG (theirs: Python's ``random``);
- GroupNorm uses gcd(32, channels) groups and attention heads shrink to divide the width, so
  reduced widths (e.g. 16 channels) build; at the paper's sizes these are the authors' 32
  groups, 4 self-attention heads and width / 64 multimodal heads;
- no fp16 conversion, no class conditioning, no learned sigma (their configuration).

Sampling is the authors' DPM-Solver setting (singlestep, order 3, 20 steps, logSNR spacing; see
:class:`~pavdit.diffusion.dpm_solver.DPMSolver`); the output audio is already a waveform.
"""
import math
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint

from pavdit.diffusion.dpm_solver import DPMSolver
from pavdit.models.layers.attention import SelfAttention
from pavdit.models.layers.attention_kernels import get_attention_kernel
from pavdit.registry import MODELS

VIDEO_FACTOR = 2  # spatial down/up-sampling per level (time is never resampled)
AUDIO_FACTOR = 4  # waveform down/up-sampling per level


def _norm(channels: int, groups: int = 32) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(groups, channels), channels)


def _heads(channels: int, heads: int) -> int:
    """``heads`` capped to a divisor of ``channels``."""
    heads = max(1, min(heads, channels))
    while channels % heads:
        heads -= 1
    return heads


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0
                       ) -> torch.Tensor:
    """Sinusoidal embedding (B,) -> (B, dim), cosines first (guided-diffusion's layout)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32,
                                                           device=timesteps.device) / half)
    args = timesteps.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))


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
        self.norm = _norm(channels, norm_groups)
        self.attn = SelfAttention(channels, _heads(channels, num_heads), kernel=kernel)
        _zero(self.attn.proj)

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
        checkpoint_attention: recompute the attention in backward (see module docstring).

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
        self.video_in = nn.Sequential(_norm(in_channels, norm_groups), nn.SiLU(),
                                      PseudoConv3d(in_channels, out_channels, 3))
        self.audio_in = nn.Sequential(
            _norm(in_channels, norm_groups), nn.SiLU(),
            nn.Conv1d(in_channels, out_channels, 3, padding='same', dilation=audio_dilation))
        self.emb = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, 2 * out_channels))
        self.video_out_norm = _norm(out_channels, norm_groups)
        self.video_out = nn.Sequential(nn.SiLU(), nn.Dropout(dropout),
                                       _zero(nn.Conv3d(out_channels, out_channels, 1)))
        self.audio_out_norm = _norm(out_channels, norm_groups)
        self.audio_out = nn.Sequential(nn.SiLU(), nn.Dropout(dropout),
                                       _zero(nn.Conv1d(out_channels, out_channels, 1)))
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
        video_h = self.video_out_norm(video_h) * (1 + scale[:, :, None, None, None]) \
            + shift[:, :, None, None, None]
        audio_h = self.audio_out_norm(audio_h) * (1 + scale[:, :, None]) + shift[:, :, None]
        video = self.video_skip(video) + self.video_out(video_h)
        audio = self.audio_skip(audio) + self.audio_out(audio_h)
        return self._attend(self.video_attention, video), self._attend(self.audio_attention, audio)


class RandomShiftCrossAttention(nn.Module):
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
        self.num_heads = _heads(channels, num_heads)
        self.window = window
        self.random_shift = random_shift
        self.shift_in_eval = shift_in_eval
        self.checkpoint_attention = checkpoint_attention
        self.kernel_name = kernel
        self.kernel = get_attention_kernel(kernel)
        self.video_norm = _norm(channels, norm_groups)
        self.audio_norm = _norm(channels, norm_groups)
        self.video_qkv = nn.Linear(channels, 3 * channels)
        self.audio_qkv = nn.Linear(channels, 3 * channels)
        self.video_proj = _zero(nn.Linear(channels, channels))
        self.audio_proj = _zero(nn.Linear(channels, channels))
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


class _Stage(nn.ModuleList):
    """Blocks run in sequence on (video, audio, emb)."""

    def forward(self, video: torch.Tensor, audio: torch.Tensor, emb: torch.Tensor
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        for block in self:
            video, audio = block(video, audio, emb)
        return video, audio


@MODELS.register_module()
class MMDiffusion(nn.Module):
    """MM-Diffusion's coupled U-Net with its DDPM training loss and DPM-Solver sampler.

    Args:
        video_size: (T, H, W) of the clips; H and W divisible by 2 ** (levels - 1).
        audio_samples: waveform length N (16 kHz; 25,600 = 1.6 s); divisible by
            4 ** (levels - 1), and at every windowed multimodal-attention level by T.
        video_channels, audio_channels: input channels (3 colours, 1 waveform).
        model_channels: base width; level l is ``channel_mult[l] * model_channels`` wide.
        channel_mult: width multipliers, one level each.
        num_res_blocks: residual blocks per level (the decoder has one more).
        time_embed_dim: timestep embedding width (None = model_channels, the authors' choice).
        video_attention_resolutions, audio_attention_resolutions: downsampling rates 2 ** level
            with self-attention in the residual blocks (the middle block always has both).
        cross_attention_resolutions, cross_attention_windows: rates with multimodal attention
            and their windows in frames (clamped to T).
        cross_attention_shift: draw random window shifts (RS-MMA); ``shift_in_eval`` keeps
            drawing them in eval mode, as the authors' sampling does.
        middle_cross_attention: full-clip multimodal attention in the middle block.
        num_heads: self-attention heads; num_head_channels: width of a multimodal head.
        dropout: residual-block dropout.
        dilation_cycle: audio dilations are ``2 ** (counter % dilation_cycle)``.
        norm_groups: GroupNorm groups (capped to a divisor of the width).
        checkpoint_attention: gradient-checkpoint every attention block in training.
        kernel: attention kernel name in ``ATTENTION_KERNELS``.
        num_timesteps, beta_start, beta_end: the DDPM chain (linear betas).
        num_sampling_steps, solver_order, skip_type: the DPM-Solver setting.
    """

    def __init__(self, video_size: Sequence[int] = (16, 64, 64), audio_samples: int = 25600,
                 video_channels: int = 3, audio_channels: int = 1, model_channels: int = 128,
                 channel_mult: Sequence[float] = (1, 2, 3, 4), num_res_blocks: int = 2,
                 time_embed_dim: Optional[int] = None,
                 video_attention_resolutions: Sequence[int] = (2, 4, 8),
                 audio_attention_resolutions: Sequence[int] = (),
                 cross_attention_resolutions: Sequence[int] = (2, 4, 8),
                 cross_attention_windows: Sequence[int] = (1, 4, 8),
                 cross_attention_shift: bool = True, shift_in_eval: bool = True,
                 middle_cross_attention: bool = True, num_heads: int = 4,
                 num_head_channels: int = 64, dropout: float = 0.0, dilation_cycle: int = 10,
                 norm_groups: int = 32, checkpoint_attention: bool = True, kernel: str = 'auto',
                 num_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02,
                 num_sampling_steps: int = 20, solver_order: int = 3,
                 skip_type: str = 'logSNR'):
        super().__init__()
        frames, height, width = (int(s) for s in video_size)
        levels = len(channel_mult)
        if len(cross_attention_windows) != len(cross_attention_resolutions):
            raise ValueError('cross_attention_windows needs one window per cross-attention '
                             f'resolution: {cross_attention_windows} vs '
                             f'{cross_attention_resolutions}')
        video_div, audio_div = VIDEO_FACTOR ** (levels - 1), AUDIO_FACTOR ** (levels - 1)
        if height % video_div or width % video_div:
            raise ValueError(f'video size {height}x{width} must be divisible by {video_div} '
                             f'({levels} levels)')
        if audio_samples % audio_div:
            raise ValueError(f'audio_samples {audio_samples} must be divisible by {audio_div} '
                             f'({levels} levels)')
        windows = {}
        for rate, window in zip(cross_attention_resolutions, cross_attention_windows):
            level = round(math.log2(rate)) if rate > 0 else -1
            if 0 <= level < levels and 2 ** level == rate:
                windows[rate] = min(int(window), frames)
                length = audio_samples // AUDIO_FACTOR ** level
                if windows[rate] < frames and length % frames:
                    raise ValueError(
                        f'audio length {length} at downsampling rate {rate} is not a multiple '
                        f'of the {frames} frames, which windowed multimodal attention needs')
        self.video_size = (frames, height, width)
        self.audio_samples = audio_samples
        self.video_channels, self.audio_channels = video_channels, audio_channels
        self.model_channels = model_channels
        emb_dim = time_embed_dim or model_channels
        self.time_embed = nn.Sequential(nn.Linear(model_channels, emb_dim), nn.SiLU(),
                                        nn.Linear(emb_dim, emb_dim))
        common = dict(emb_channels=emb_dim, dropout=dropout, num_heads=num_heads, kernel=kernel,
                      norm_groups=norm_groups, checkpoint_attention=checkpoint_attention)

        def res_block(cin: int, cout: int, dilation: int, rate: int = 0, resample=None,
                      both_attention: bool = False) -> CoupledResBlock:
            return CoupledResBlock(
                cin, cout, audio_dilation=2 ** (dilation % dilation_cycle), resample=resample,
                video_attention=both_attention or rate in video_attention_resolutions,
                audio_attention=both_attention or rate in audio_attention_resolutions, **common)

        def cross(channels: int, window: int, shift: bool) -> RandomShiftCrossAttention:
            return RandomShiftCrossAttention(
                channels, channels // num_head_channels, window, random_shift=shift,
                shift_in_eval=shift_in_eval, kernel=kernel, norm_groups=norm_groups,
                checkpoint_attention=checkpoint_attention)

        ch = int(channel_mult[0] * model_channels)
        self.video_in = PseudoConv3d(video_channels, ch, 3)
        self.audio_in = nn.Conv1d(audio_channels, ch, 3, padding=1)
        skip_channels = [ch]
        self.input_stages = nn.ModuleList()
        dilation, rate = 1, 1
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                out = int(mult * model_channels)
                stage = _Stage([res_block(ch, out, dilation, rate)])
                dilation += 1
                ch = out
                if rate in windows:
                    stage.append(cross(ch, windows[rate], cross_attention_shift))
                self.input_stages.append(stage)
                skip_channels.append(ch)
            if level != levels - 1:
                self.input_stages.append(_Stage([res_block(ch, ch, dilation, resample='down')]))
                dilation += 1
                skip_channels.append(ch)
                rate *= VIDEO_FACTOR
        middle = [res_block(ch, ch, dilation, both_attention=True)]
        if middle_cross_attention:
            middle.append(cross(ch, frames, False))
        middle.append(res_block(ch, ch, dilation, both_attention=True))
        self.middle = _Stage(middle)
        dilation -= 1
        self.output_stages = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for block in range(num_res_blocks + 1):
                out = int(mult * model_channels)
                stage = _Stage([res_block(ch + skip_channels.pop(), out, dilation, rate)])
                dilation -= 1
                ch = out
                if rate in windows:
                    stage.append(cross(ch, windows[rate], cross_attention_shift))
                if level and block == num_res_blocks:
                    stage.append(res_block(ch, ch, dilation, resample='up'))
                    rate //= VIDEO_FACTOR
                self.output_stages.append(stage)
        first = int(channel_mult[0] * model_channels)
        self.video_out = nn.Sequential(_norm(ch, norm_groups), nn.SiLU(),
                                       _zero(nn.Conv3d(first, video_channels, 3, padding=1)))
        self.audio_out = nn.Sequential(_norm(ch, norm_groups), nn.SiLU(),
                                       _zero(nn.Conv1d(first, audio_channels, 3, padding=1)))
        self.scheduler = DPMSolver(num_sampling_steps=num_sampling_steps, order=solver_order,
                                   skip_type=skip_type, num_timesteps=num_timesteps,
                                   beta_start=beta_start, beta_end=beta_end)

    # ---------------------------------------------------------------------------- configurations

    @classmethod
    def paper_config(cls, resolution: int = 64) -> dict:
        """Constructor kwargs of the paper-size model: 16 frames, 25,600 audio samples (1.6 s),
        the authors' 64x64 flags. At 128x128 the U-Net gets the authors' default multipliers for
        that size, (1, 1, 2, 3, 4), i.e. one more level (a 128x128 model trained directly, with
        no super-resolution stage; the attention rates stay 2, 4, 8)."""
        mults = {64: (1, 2, 3, 4), 128: (1, 1, 2, 3, 4)}
        if resolution not in mults:
            raise ValueError(f'paper_config has resolutions 64 and 128, got {resolution}')
        return dict(video_size=(16, resolution, resolution), audio_samples=25600,
                    model_channels=128, channel_mult=mults[resolution], num_res_blocks=2,
                    video_attention_resolutions=(2, 4, 8), audio_attention_resolutions=(),
                    cross_attention_resolutions=(2, 4, 8), cross_attention_windows=(1, 4, 8),
                    cross_attention_shift=True, num_heads=4, num_head_channels=64,
                    dropout=0.1, num_sampling_steps=20, solver_order=3, skip_type='logSNR')

    # ------------------------------------------------------------------------------- the network

    def forward(self, video: torch.Tensor, audio: torch.Tensor, timesteps: torch.Tensor
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        """video (B, 3, T, H, W), audio (B, 1, N), timesteps (B,) DDPM steps (float) ->
        predicted noise (eps_video, eps_audio) of the same shapes."""
        emb = self.time_embed(timestep_embedding(timesteps, self.model_channels).to(video.dtype))
        video, audio = self.video_in(video), self.audio_in(audio)
        skips = [(video, audio)]
        for stage in self.input_stages:
            video, audio = stage(video, audio, emb)
            skips.append((video, audio))
        video, audio = self.middle(video, audio, emb)
        for stage in self.output_stages:
            video_skip, audio_skip = skips.pop()
            video, audio = stage(torch.cat([video, video_skip], dim=1),
                                 torch.cat([audio, audio_skip], dim=1), emb)
        return self.video_out(video), self.audio_out(audio)

    # ---------------------------------------------------------------------- training and sampling

    def _device_dtype(self, device=None) -> Tuple[torch.device, torch.dtype]:
        p = next(self.parameters())
        return torch.device(device) if device is not None else p.device, p.dtype

    def make_batch(self, batch_size: int, device=None,
                   generator: Optional[torch.Generator] = None) -> Dict[str, torch.Tensor]:
        """Random training inputs in [-1, 1]: video (B, 3, T, H, W), audio (B, 1, N)."""
        device, dtype = self._device_dtype(device)
        video = torch.rand(batch_size, self.video_channels, *self.video_size,
                           generator=generator, device=device, dtype=dtype)
        audio = torch.rand(batch_size, self.audio_channels, self.audio_samples,
                           generator=generator, device=device, dtype=dtype)
        return dict(video=video * 2 - 1, audio=audio * 2 - 1)

    def loss(self, batch: Dict[str, torch.Tensor],
             generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """DDPM epsilon loss: one step k ~ U{0..N-1} per clip shared by both modalities, and
        MSE(video) + MSE(audio), each a mean over its elements (the authors' objective)."""
        video, audio = batch['video'], batch['audio']
        b, device = video.shape[0], video.device
        steps = torch.randint(0, self.scheduler.num_timesteps, (b,), generator=generator,
                              device=device)
        noise_v = torch.randn(video.shape, generator=generator, device=device, dtype=video.dtype)
        noise_a = torch.randn(audio.shape, generator=generator, device=device, dtype=audio.dtype)
        eps_v, eps_a = self(self.scheduler.add_noise(video, noise_v, steps),
                            self.scheduler.add_noise(audio, noise_a, steps), steps.float())
        return F.mse_loss(eps_v.float(), noise_v.float()) + \
            F.mse_loss(eps_a.float(), noise_a.float())

    @torch.no_grad()
    def sample(self, batch_size: int, num_steps: Optional[int] = None,
               generator: Optional[torch.Generator] = None, progress: bool = False
               ) -> Dict[str, torch.Tensor]:
        """Joint DPM-Solver sampling of both modalities from Gaussian noise drawn with
        ``generator``: video (B, 3, T, H, W) and the waveform (B, 1, N), unclipped.

        The two states travel through the solver as one flat (B, Nv + Na) tensor.
        """
        device, dtype = self._device_dtype()
        video_shape = (batch_size, self.video_channels, *self.video_size)
        audio_shape = (batch_size, self.audio_channels, self.audio_samples)
        video_numel = math.prod(video_shape[1:])
        noise = torch.cat([
            torch.randn(video_shape, generator=generator, device=device, dtype=dtype).flatten(1),
            torch.randn(audio_shape, generator=generator, device=device, dtype=dtype).flatten(1),
        ], dim=1)

        def model_fn(x: torch.Tensor, timesteps: torch.Tensor, condition=None) -> torch.Tensor:
            eps_v, eps_a = self(x[:, :video_numel].reshape(video_shape),
                                x[:, video_numel:].reshape(audio_shape), timesteps)
            return torch.cat([eps_v.flatten(1), eps_a.flatten(1)], dim=1)

        x = self.scheduler.sample(model_fn, noise, num_steps=num_steps, generator=generator,
                                  progress=progress)
        return dict(video=x[:, :video_numel].reshape(video_shape),
                    audio=x[:, video_numel:].reshape(audio_shape))
