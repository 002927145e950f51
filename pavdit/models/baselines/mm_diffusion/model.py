"""The registered MM-Diffusion model: the coupled video / audio U-Net (built stage by stage from
:mod:`.blocks` and :mod:`.cross_attention`), its DDPM training loss and DPM-Solver sampling."""
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from pavdit.diffusion.dpm_solver import DPMSolver
from pavdit.models.baselines.common import group_norm, zero_module
from pavdit.models.baselines.mm_diffusion.blocks import (AUDIO_FACTOR, VIDEO_FACTOR,
                                                         CoupledResBlock, CoupledStage,
                                                         PseudoConv3d)
from pavdit.models.baselines.mm_diffusion.cross_attention import RandomShiftCrossAttention
from pavdit.models.layers import timestep_embedding, timestep_mlp
from pavdit.registry import MODELS


@dataclass
class CoupledBlockFactory:
    """Builds the U-Net's coupled residual blocks and multimodal attention blocks with the
    settings they all share (see :class:`MMDiffusion` for the arguments).

    ``windows`` maps a downsampling rate to its multimodal-attention window in frames; a stage at a
    rate outside it has no multimodal attention.
    """

    emb_channels: int
    dropout: float
    num_heads: int
    num_head_channels: int
    kernel: str
    norm_groups: int
    checkpoint_attention: bool
    dilation_cycle: int
    video_attention_resolutions: Sequence[int]
    audio_attention_resolutions: Sequence[int]
    windows: Dict[int, int]
    random_shift: bool
    shift_in_eval: bool

    def res_block(self, in_channels: int, out_channels: int, dilation: int, rate: int = 0,
                  resample: Optional[str] = None, both_attention: bool = False
                  ) -> CoupledResBlock:
        """A residual block whose audio conv has dilation ``2 ** (dilation % dilation_cycle)``,
        with self-attention where ``rate`` is an attention resolution (rate 0: none, as in the
        resampling blocks) or, with ``both_attention``, in both modalities."""
        return CoupledResBlock(
            in_channels, out_channels, audio_dilation=2 ** (dilation % self.dilation_cycle),
            resample=resample,
            video_attention=both_attention or rate in self.video_attention_resolutions,
            audio_attention=both_attention or rate in self.audio_attention_resolutions,
            emb_channels=self.emb_channels, dropout=self.dropout, num_heads=self.num_heads,
            kernel=self.kernel, norm_groups=self.norm_groups,
            checkpoint_attention=self.checkpoint_attention)

    def cross_attention(self, channels: int, window: int, random_shift: bool
                        ) -> RandomShiftCrossAttention:
        """Multimodal attention over ``window`` frames with heads of ``num_head_channels``."""
        return RandomShiftCrossAttention(
            channels, channels // self.num_head_channels, window, random_shift=random_shift,
            shift_in_eval=self.shift_in_eval, kernel=self.kernel, norm_groups=self.norm_groups,
            checkpoint_attention=self.checkpoint_attention)

    def level_stage(self, in_channels: int, out_channels: int, dilation: int, rate: int
                    ) -> CoupledStage:
        """One stage of a U-Net level: a residual block, then windowed multimodal attention
        (random shifts per ``random_shift``) when ``rate`` has a window."""
        stage = CoupledStage([self.res_block(in_channels, out_channels, dilation, rate)])
        if rate in self.windows:
            stage.append(self.cross_attention(out_channels, self.windows[rate], self.random_shift))
        return stage


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
        self._check_sizes(height, width, audio_samples, levels, cross_attention_resolutions,
                          cross_attention_windows)
        windows = self._cross_attention_windows(frames, audio_samples, levels,
                                                cross_attention_resolutions,
                                                cross_attention_windows)
        self.video_size = (frames, height, width)
        self.audio_samples = audio_samples
        self.video_channels, self.audio_channels = video_channels, audio_channels
        self.model_channels = model_channels
        emb_dim = time_embed_dim or model_channels
        self.time_embed = timestep_mlp(model_channels, emb_dim)
        blocks = CoupledBlockFactory(
            emb_channels=emb_dim, dropout=dropout, num_heads=num_heads,
            num_head_channels=num_head_channels, kernel=kernel, norm_groups=norm_groups,
            checkpoint_attention=checkpoint_attention, dilation_cycle=dilation_cycle,
            video_attention_resolutions=video_attention_resolutions,
            audio_attention_resolutions=audio_attention_resolutions, windows=windows,
            random_shift=cross_attention_shift, shift_in_eval=shift_in_eval)
        widths = [int(mult * model_channels) for mult in channel_mult]
        self.video_in = PseudoConv3d(video_channels, widths[0], 3)
        self.audio_in = nn.Conv1d(audio_channels, widths[0], 3, padding=1)
        self.input_stages, skip_channels, dilation = self._build_encoder(blocks, widths,
                                                                         num_res_blocks)
        self.middle = self._build_middle(blocks, widths[-1], dilation, middle_cross_attention,
                                         frames)
        self.output_stages = self._build_decoder(blocks, widths, num_res_blocks, skip_channels,
                                                 dilation - 1)
        self.video_out = self._output_head(nn.Conv3d, widths[0], video_channels, norm_groups)
        self.audio_out = self._output_head(nn.Conv1d, widths[0], audio_channels, norm_groups)
        self.scheduler = DPMSolver(num_sampling_steps=num_sampling_steps, order=solver_order,
                                   skip_type=skip_type, num_timesteps=num_timesteps,
                                   beta_start=beta_start, beta_end=beta_end)

    # ------------------------------------------------------------------------------ construction

    @staticmethod
    def _check_sizes(height: int, width: int, audio_samples: int, levels: int,
                     cross_attention_resolutions: Sequence[int],
                     cross_attention_windows: Sequence[int]) -> None:
        """ValueError unless every multimodal-attention rate has a window and the frames and the
        waveform survive ``levels - 1`` downsamplings."""
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

    @staticmethod
    def _cross_attention_windows(frames: int, audio_samples: int, levels: int,
                                 cross_attention_resolutions: Sequence[int],
                                 cross_attention_windows: Sequence[int]) -> Dict[int, int]:
        """{rate: window in frames, clamped to T} for the rates 2 ** level this U-Net has (others
        are ignored). ValueError where a window shorter than the clip meets an audio length that
        the frame count does not divide."""
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
        return windows

    @staticmethod
    def _build_encoder(blocks: CoupledBlockFactory, widths: Sequence[int], num_res_blocks: int
                       ) -> Tuple[nn.ModuleList, List[int], int]:
        """Input stages: per level, ``num_res_blocks`` level stages and (but after the last level)
        a downsampling residual block. Returns the stages, the widths of the skip connections
        (the input convs' first) and the audio-dilation counter the middle block continues."""
        stages, skip_channels = nn.ModuleList(), [widths[0]]
        channels, dilation = widths[0], 1
        for level, level_width in enumerate(widths):
            for _ in range(num_res_blocks):
                stages.append(blocks.level_stage(channels, level_width, dilation,
                                                 VIDEO_FACTOR ** level))
                dilation += 1
                channels = level_width
                skip_channels.append(channels)
            if level != len(widths) - 1:
                stages.append(CoupledStage([blocks.res_block(channels, channels, dilation,
                                                             resample='down')]))
                dilation += 1
                skip_channels.append(channels)
        return stages, skip_channels, dilation

    @staticmethod
    def _build_middle(blocks: CoupledBlockFactory, channels: int, dilation: int,
                      cross_attention: bool, frames: int) -> CoupledStage:
        """Residual block, full-clip multimodal attention without shifts (when
        ``cross_attention``), residual block; both residual blocks with video and audio
        self-attention."""
        middle = [blocks.res_block(channels, channels, dilation, both_attention=True)]
        if cross_attention:
            middle.append(blocks.cross_attention(channels, frames, random_shift=False))
        middle.append(blocks.res_block(channels, channels, dilation, both_attention=True))
        return CoupledStage(middle)

    @staticmethod
    def _build_decoder(blocks: CoupledBlockFactory, widths: Sequence[int], num_res_blocks: int,
                       skip_channels: Sequence[int], dilation: int) -> nn.ModuleList:
        """Output stages, widest level first: per level, ``num_res_blocks + 1`` level stages, each
        on the concatenation with one skip connection (the last one taken first), the last
        stage of each level but the first ending in an upsampling residual block. ``dilation``
        counts down from the given value."""
        skip_channels = list(skip_channels)
        stages, channels = nn.ModuleList(), widths[-1]
        for level in reversed(range(len(widths))):
            for block in range(num_res_blocks + 1):
                stage = blocks.level_stage(channels + skip_channels.pop(), widths[level], dilation,
                                           VIDEO_FACTOR ** level)
                dilation -= 1
                channels = widths[level]
                if level and block == num_res_blocks:
                    stage.append(blocks.res_block(channels, channels, dilation, resample='up'))
                stages.append(stage)
        return stages

    @staticmethod
    def _output_head(conv: type, channels: int, out_channels: int, norm_groups: int
                     ) -> nn.Sequential:
        """GroupNorm, SiLU and a zero-initialised 3-tap ``conv`` (Conv3d / Conv1d) to the
        signal's channels."""
        return nn.Sequential(group_norm(channels, norm_groups), nn.SiLU(),
                             zero_module(conv(channels, out_channels, 3, padding=1)))

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
