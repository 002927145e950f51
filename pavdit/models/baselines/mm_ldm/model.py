"""The registered MM-LDM model: frozen VAE and multimodal AE, the DiT trained with DDPM's epsilon
loss, DDIM sampling, decoding to video and waveform."""
import math
from typing import Dict, Optional, Sequence, Tuple

import torch
from einops import rearrange
from torch import nn

from pavdit.diffusion.ddpm import DDIM
from pavdit.models.baselines.mm_ldm.autoencoder import MultimodalKLAutoencoder
from pavdit.models.baselines.mm_ldm.config import VARIANTS, paper_config
from pavdit.models.baselines.mm_ldm.dit import AudioVideoDiT
from pavdit.models.baselines.mm_ldm.mel_inversion import MelImageToWaveform
from pavdit.models.baselines.mm_ldm.vae import FrameKLVAE
from pavdit.registry import MODELS


@MODELS.register_module()
class MMLDM(nn.Module):
    """MM-LDM sounding-video generator (see the package docstring for the design and sizes).

    Args:
        variant: 'S', 'B' or 'L': fills the DiT and multimodal AE sizes left as None.
        frames, image_size: T and the square frame size H = W.
        audio_size: (Ha, Wa) of the audio image (mel bands, columns).
        vae_channels, vae_blocks, vae_latent: the per-frame KL-VAE (SD f8: (128, 256, 512, 512),
            2, 4).
        video_latent_shape, audio_latent_shape: (C, H, W) top-level latents (16x16x16, 16x8x8).
        ae_channels, ae_blocks, ae_head_dim: multimodal AE base width, blocks, head width.
        dit_hidden, dit_depth, dit_heads, mlp_ratio: DiT size.
        num_classes: 0 = unconditional; > 0 = class-conditional (batch key ``label``).
        kernel: attention kernel for every attention layer.
        num_sampling_steps: DDIM steps of :meth:`sample` (paper: 50).
        num_timesteps, beta_start, beta_end: the DDPM chain (MM-LDM: 1000, 0.00085, 0.012).
        audio_sample_rate, audio_num_samples, audio_n_fft, griffin_lim_iters: waveform synthesis.
        vae_chunk: frames (or audio images) per VAE encoder/decoder call (bounds memory).
        grad_checkpointing: recompute DiT blocks in the backward pass.
    """

    def __init__(self, variant: str = 'S', frames: int = 16, image_size: int = 256,
                 audio_size: Sequence[int] = (256, 256),
                 vae_channels: Sequence[int] = (128, 256, 512, 512), vae_blocks: int = 2,
                 vae_latent: int = 4, video_latent_shape: Sequence[int] = (16, 16, 16),
                 audio_latent_shape: Sequence[int] = (16, 8, 8),
                 ae_channels: Optional[int] = None, ae_blocks: Optional[int] = None,
                 ae_head_dim: int = 64, dit_hidden: Optional[int] = None,
                 dit_depth: Optional[int] = None, dit_heads: Optional[int] = None,
                 mlp_ratio: float = 4.0, num_classes: int = 0, kernel: str = 'auto',
                 num_sampling_steps: int = 50, num_timesteps: int = 1000,
                 beta_start: float = 0.00085, beta_end: float = 0.012,
                 audio_sample_rate: int = 44100, audio_num_samples: int = 70560,
                 audio_n_fft: int = 2048, griffin_lim_iters: int = 32, vae_chunk: int = 16,
                 grad_checkpointing: bool = False):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f'MM-LDM variant must be one of {sorted(VARIANTS)}, got {variant!r}')
        sizes = dict(VARIANTS[variant])
        given = dict(ae_channels=ae_channels, ae_blocks=ae_blocks, dit_hidden=dit_hidden,
                     dit_depth=dit_depth, dit_heads=dit_heads)
        sizes.update({k: v for k, v in given.items() if v is not None})
        self.variant, self.sizes = variant, sizes
        self.frames, self.image_size = frames, image_size
        self.audio_size = tuple(audio_size)
        self.video_latent_shape = tuple(video_latent_shape)
        self.audio_latent_shape = tuple(audio_latent_shape)
        self.num_classes, self.vae_chunk = num_classes, vae_chunk

        self.vae = FrameKLVAE(vae_channels, vae_blocks, vae_latent, kernel=kernel)
        factor = self.vae.downsample
        if image_size % factor or self.audio_size[0] % factor or self.audio_size[1] % factor:
            raise ValueError(f'frame size {image_size} and audio image {self.audio_size} must be '
                             f'divisible by the VAE downsampling {factor}')
        self.autoencoder = MultimodalKLAutoencoder(
            frames=frames, in_channels=vae_latent,
            vae_latent_size=(image_size // factor,) * 2,
            audio_vae_latent_size=(self.audio_size[0] // factor, self.audio_size[1] // factor),
            video_latent_shape=video_latent_shape, audio_latent_shape=audio_latent_shape,
            channels=sizes['ae_channels'], blocks=sizes['ae_blocks'], head_dim=ae_head_dim,
            kernel=kernel)
        for stage in (self.vae, self.autoencoder):  # frozen, pretrained stages
            stage.requires_grad_(False)
            stage.eval()
        self.dit = AudioVideoDiT(video_latent_shape, audio_latent_shape, sizes['dit_hidden'],
                                 sizes['dit_depth'], sizes['dit_heads'], mlp_ratio, num_classes,
                                 kernel, grad_checkpointing)
        with torch.device('cpu'):  # the schedule's tables stay real under a meta context
            self.scheduler = DDIM(num_sampling_steps=num_sampling_steps,
                                  num_timesteps=num_timesteps, beta_start=beta_start,
                                  beta_end=beta_end)
        self.audio_to_waveform = MelImageToWaveform(
            n_mels=self.audio_size[0], columns=self.audio_size[1], sample_rate=audio_sample_rate,
            num_samples=audio_num_samples, n_fft=audio_n_fft,
            griffin_lim_iters=griffin_lim_iters)

    paper_config = staticmethod(paper_config)

    def train(self, mode: bool = True) -> 'MMLDM':
        """Only the DiT switches modes; the frozen stages stay in eval mode."""
        super().train(mode)
        self.vae.eval()
        self.autoencoder.eval()
        return self

    @property
    def device(self) -> torch.device:
        return next(self.dit.parameters()).device

    # -- latents --------------------------------------------------------------------------------
    def _chunked(self, fn, images: torch.Tensor) -> torch.Tensor:
        """``fn`` over (N, ...) in chunks of ``vae_chunk`` along N, concatenated."""
        return torch.cat([fn(chunk) for chunk in images.split(self.vae_chunk)])

    @torch.no_grad()
    def encode(self, video: torch.Tensor, audio: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Signals -> top-level latents: video (B, 3, T, H, W) and audio image (B, 1, Ha, Wa) in
        [-1, 1] -> dict(video_latent (B, 16, 16, 16), audio_latent (B, 16, 8, 8)) at paper size."""
        batch = video.shape[0]
        frames = rearrange(video, 'b c t h w -> (b t) c h w')
        frame_latents = rearrange(self._chunked(self.vae.encode, frames),
                                  '(b t) c h w -> b c t h w', b=batch)
        # mono -> the RGB VAE
        audio_latent = self._chunked(self.vae.encode, audio.expand(-1, 3, -1, -1))
        return dict(video_latent=self.autoencoder.encode_video(frame_latents),
                    audio_latent=self.autoencoder.encode_audio(audio_latent))

    @torch.no_grad()
    def decode(self, video_latent: torch.Tensor, audio_latent: torch.Tensor
               ) -> Dict[str, torch.Tensor]:
        """Top-level latents -> dict(video (B, 3, T, H, W), audio (B, 1, Ha, Wa)) in [-1, 1]."""
        batch = video_latent.shape[0]
        frame_latents = rearrange(self.autoencoder.decode_video(video_latent),
                                  'b c t h w -> (b t) c h w')
        frames = self._chunked(self.vae.decode, frame_latents)
        video = rearrange(frames, '(b t) c h w -> b c t h w', b=batch)
        audio_image = self._chunked(self.vae.decode, self.autoencoder.decode_audio(audio_latent))
        audio = audio_image.mean(1, keepdim=True)
        return dict(video=video.clamp(-1, 1), audio=audio.clamp(-1, 1))

    # -- diffusion ------------------------------------------------------------------------------
    def _pack(self, video_latent: torch.Tensor, audio_latent: torch.Tensor) -> torch.Tensor:
        return torch.cat([video_latent.flatten(1), audio_latent.flatten(1)], dim=1)

    def _unpack(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        split = math.prod(self.video_latent_shape)
        return (x[:, :split].reshape(-1, *self.video_latent_shape),
                x[:, split:].reshape(-1, *self.audio_latent_shape))

    def _denoise(self, x: torch.Tensor, timesteps: torch.Tensor, labels) -> torch.Tensor:
        """The scheduler's model_fn on the packed (B, Nv + Na) latents."""
        eps_video, eps_audio = self.dit(*self._unpack(x), timesteps, labels)
        return self._pack(eps_video, eps_audio)

    def loss(self, batch: dict) -> torch.Tensor:
        """DDPM epsilon loss of the DiT. ``batch`` holds signals (``video``, ``audio``: encoded by
        the frozen VAE and multimodal AE) or precomputed ``video_latent`` / ``audio_latent``."""
        if 'video_latent' in batch:
            latents = dict(video_latent=batch['video_latent'], audio_latent=batch['audio_latent'])
        else:
            latents = self.encode(batch['video'], batch['audio'])
        x0 = self._pack(latents['video_latent'], latents['audio_latent'])
        labels = batch.get('label') if self.num_classes > 0 else None
        return self.scheduler.training_loss(self._denoise, x0, condition=labels)['loss']

    @torch.no_grad()
    def sample(self, batch_size: int, num_steps: Optional[int] = None,
               generator: Optional[torch.Generator] = None, progress: bool = False,
               labels: Optional[torch.Tensor] = None, decode: bool = True
               ) -> Dict[str, torch.Tensor]:
        """DDIM over the DiT, multimodal AE decode, per-frame VAE decode, audio image -> waveform.

        Returns dict(video (B, 3, T, H, W) in [-1, 1], audio (B, 1, Ha, Wa) the audio image,
        audio_waveform (B, 1, N)); with ``decode=False`` (MM-LDM*: the generator alone) the
        top-level latents dict(video_latent, audio_latent) instead.
        """
        device = self.device
        dtype = next(self.dit.parameters()).dtype
        size = math.prod(self.video_latent_shape) + math.prod(self.audio_latent_shape)
        noise = torch.randn((batch_size, size), generator=generator, device=device, dtype=dtype)
        if self.num_classes > 0 and labels is None:
            labels = torch.randint(0, self.num_classes, (batch_size,), generator=generator,
                                   device=device)
        x = self.scheduler.sample(self._denoise, noise, condition=labels, num_steps=num_steps,
                                  generator=generator, progress=progress)
        if not decode:
            return dict(zip(('video_latent', 'audio_latent'), self._unpack(x)))
        signals = self.decode(*self._unpack(x))
        return dict(video=signals['video'], audio=signals['audio'],
                    audio_waveform=self.audio_to_waveform(signals['audio']))

    # -- inputs ---------------------------------------------------------------------------------
    def make_batch(self, batch_size: int, device=None, generator: Optional[torch.Generator] = None,
                   latents: bool = False) -> dict:
        """Random inputs: signals ``video`` (B, 3, T, H, W), ``audio`` (B, 1, Ha, Wa) uniform in
        [-1, 1]; with ``latents=True`` the top-level latents (MM-LDM*) ``video_latent`` and
        ``audio_latent`` (standard normal). Class-conditional models also get ``label`` (B,)."""
        device = self.device if device is None else torch.device(device)

        def uniform(*shape):
            return torch.rand(shape, generator=generator, device=device) * 2 - 1

        if latents:
            batch = dict(video_latent=torch.randn((batch_size, *self.video_latent_shape),
                                                  generator=generator, device=device),
                         audio_latent=torch.randn((batch_size, *self.audio_latent_shape),
                                                  generator=generator, device=device))
        else:
            batch = dict(video=uniform(batch_size, 3, self.frames, self.image_size,
                                       self.image_size),
                         audio=uniform(batch_size, 1, *self.audio_size))
        if self.num_classes > 0:
            batch['label'] = torch.randint(0, self.num_classes, (batch_size,),
                                           generator=generator, device=device)
        return batch

    def extra_repr(self) -> str:
        return (f'variant={self.variant!r}, frames={self.frames}, image_size={self.image_size}, '
                f'audio_size={self.audio_size}, video_latent={self.video_latent_shape}, '
                f'audio_latent={self.audio_latent_shape}')
