"""The rows of Table 3 at a preset size: how each model trains one step and samples one clip.

Rows: MM-Diffusion at two resolutions (signal space), MM-LDM and MM-LDM* (latents precomputed,
generator only), PAV-DiT and PAV-DiT* (likewise). All use random weights: only time and memory are
measured. Presets:

- ``paper``: the paper's setting (256x256, 16 frames; PAV-DiT 16 blocks, 30 reflected-flow steps;
  MM-Diffusion at 64x64 and 128x128 with 20 DPM-Solver steps; MM-LDM-S with 50 DDIM steps);
- ``cpu``: the paper's clip length (16 frames) and sampling step counts (30 / 20 / 50), with the
  frame size divided by 4 (64x64 for the latent models, 16x16 and 32x32 for MM-Diffusion, keeping
  its 4x and 2x lower resolution) and the networks narrower (about half to a third of the widths),
  so all six rows finish in minutes on 2 cores and their ratios still compare;
- ``tiny``: the smallest sizes, for tests.
"""
import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Tuple

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from torch import nn

from pavdit.data.video_like_audio import VideoLikeAudio
from pavdit.models.autoencoders.scaling import scale_mdsa_config
from pavdit.registry import MODELS

CONFIGS = Path(__file__).resolve().parents[2] / 'configs'
ROW_NAMES = ('mm_diffusion_64', 'mm_diffusion_128', 'mm_ldm', 'mm_ldm_star', 'pavdit',
             'pavdit_star')
ROW_TITLES = {'mm_diffusion_64': 'MM-Diffusion', 'mm_diffusion_128': 'MM-Diffusion',
              'mm_ldm': 'MM-LDM', 'mm_ldm_star': 'MM-LDM*', 'pavdit': 'PAV-DiT',
              'pavdit_star': 'PAV-DiT*'}

PRESETS = {
    'paper': dict(frames=16, resolution=256, low_resolutions=(64, 128), batch_size=2,
                  pavdit=dict(hidden_size=1152, depth=16, num_heads=16, steps=30, mdsa=None),
                  mm_diffusion=dict(model_channels=128, steps=20),
                  mm_ldm=dict(variant='S', num_sampling_steps=50)),
    'cpu': dict(frames=16, resolution=64, low_resolutions=(16, 32), batch_size=2,
                pavdit=dict(hidden_size=384, depth=8, num_heads=6, steps=30,
                            mdsa=dict(width=128, depth=2, num_heads=4)),
                mm_diffusion=dict(model_channels=64, steps=20),
                mm_ldm=dict(frames=16, image_size=64, audio_size=(64, 64),
                            vae_channels=(64, 128, 256, 256), vae_blocks=2,
                            video_latent_shape=(16, 4, 4), audio_latent_shape=(16, 2, 2),
                            ae_channels=32, ae_blocks=1, ae_head_dim=32, dit_hidden=192,
                            dit_depth=6, dit_heads=6, num_sampling_steps=50,
                            audio_sample_rate=16000, audio_num_samples=25600, audio_n_fft=512)),
    'tiny': dict(frames=4, resolution=32, low_resolutions=(16, 16), batch_size=1,
                 pavdit=dict(hidden_size=32, depth=1, num_heads=2, steps=2,
                             mdsa=dict(width=32, depth=1, num_heads=2)),
                 mm_diffusion=dict(model_channels=16, steps=2),
                 mm_ldm=dict(frames=4, image_size=32, audio_size=(32, 32),
                             vae_channels=(16, 16, 32, 32), vae_blocks=1,
                             video_latent_shape=(8, 2, 2), audio_latent_shape=(8, 2, 2),
                             ae_channels=16, ae_blocks=1, ae_head_dim=16, dit_hidden=32,
                             dit_depth=2, dit_heads=2, num_sampling_steps=2,
                             audio_sample_rate=16000, audio_num_samples=6400, audio_n_fft=256,
                             griffin_lim_iters=2)),
}


@dataclass
class Row:
    """One model in a Table 3 row.

    ``make_batch(batch_size)`` builds random training inputs; ``loss(batch)`` is one training
    forward (including the frozen encoders where the row includes them); ``sample(batch_size)``
    generates clips (decoding and audio reconstruction included unless the row is a * row);
    ``denoiser(batch_size)`` gives (network, inputs) of one denoising-network call, whose FLOPs
    the table reports.
    """
    name: str
    module: nn.Module
    make_batch: Callable[[int], dict]
    loss: Callable[[dict], torch.Tensor]
    sample: Callable[[int], object]
    denoiser: Callable[[int], Tuple[nn.Module, tuple]]
    resolution: int

    @property
    def title(self) -> str:
        return ROW_TITLES[self.name]


def build_row(name: str, preset: str, device: str = 'cpu', seed: int = 0,
              frames: int = None, resolution: int = None) -> Row:
    """Build row ``name`` of ``ROW_NAMES`` at ``preset`` on ``device`` (random weights);
    ``frames`` / ``resolution`` override the preset's (the scaling study)."""
    if name not in ROW_NAMES:
        raise KeyError(f'unknown benchmark row {name!r}; rows: {ROW_NAMES}')
    if preset not in PRESETS:
        raise KeyError(f'unknown preset {preset!r}; presets: {sorted(PRESETS)}')
    init_default_scope('pavdit')  # config-style type names below resolve in pavdit's registries
    settings = dict(PRESETS[preset])
    settings.update({k: v for k, v in (('frames', frames), ('resolution', resolution))
                     if v is not None})
    torch.manual_seed(seed)
    if name.startswith('pavdit'):
        return _pavdit_row(name, settings, device, latent_only=name.endswith('_star'))
    if name.startswith('mm_ldm'):
        return _mm_ldm_row(name, settings, device, latent_only=name.endswith('_star'))
    return _mm_diffusion_row(name, settings, device)


def _generator(device: str, seed: int = 0) -> torch.Generator:
    return torch.Generator(device).manual_seed(seed)


def _pavdit_row(name: str, settings: dict, device: str, latent_only: bool) -> Row:
    sizes = settings['pavdit']
    frames, resolution = settings['frames'], settings['resolution']
    autoencoder = Config.fromfile(CONFIGS / '_base_' / 'models' / 'mdsa.py').model.to_dict()
    if sizes['mdsa'] is not None:
        autoencoder = scale_mdsa_config(autoencoder, **sizes['mdsa'],
                                        block_frames=min(4, frames))
    model = MODELS.build(dict(
        type='PAVDiT', autoencoder=autoencoder, video_size=(frames, resolution, resolution),
        audio_size=(frames, 64, 16),
        generator=dict(type='STDiT', hidden_size=sizes['hidden_size'], depth=sizes['depth'],
                       num_heads=sizes['num_heads']),
        scheduler=dict(type='ReflectedFlow', num_sampling_steps=sizes['steps']),
        conditioner=None)).to(device)
    audio = VideoLikeAudio().to(device)

    def make_batch(batch_size: int) -> dict:
        g = _generator(device)
        video = torch.rand(batch_size, 3, frames, resolution, resolution, generator=g,
                           device=device) * 2 - 1
        mel = torch.rand(batch_size, 1, frames, 64, 16, generator=g, device=device) * 2 - 1
        if latent_only:
            with torch.no_grad():
                return dict(latents=model.latents_of(dict(video=video, audio=mel)))
        return dict(video=video, audio=mel)

    def loss(batch: dict) -> torch.Tensor:
        return model(mode='loss', **batch)['loss_flow']

    def sample(batch_size: int):
        outputs = model.sample(batch_size, generator=_generator(device), decode=not latent_only)
        if not latent_only:  # PAV-DiT inverts its mel frames to sound
            return [audio.inverse(o['audio']) for o in outputs]
        return outputs

    def denoiser(batch_size: int):
        canvas = torch.randn(batch_size, *model.canvas_shape, device=device)
        return model.generator, (canvas, torch.full((batch_size,), 500.0, device=device))

    return Row(name, model, make_batch, loss, sample, denoiser, resolution)


def _mm_diffusion_row(name: str, settings: dict, device: str) -> Row:
    from pavdit.models.baselines.mm_diffusion import MMDiffusion
    low, high = settings['low_resolutions']
    resolution = low if name.endswith('_64') else high
    sizes = settings['mm_diffusion']
    kwargs = copy.deepcopy(MMDiffusion.paper_config(64 if name.endswith('_64') else 128))
    kwargs.update(video_size=(settings['frames'], resolution, resolution),
                  audio_samples=settings['frames'] * 1600, model_channels=sizes['model_channels'],
                  num_sampling_steps=sizes['steps'])
    model = MMDiffusion(**kwargs).to(device)

    def make_batch(batch_size: int) -> dict:
        return model.make_batch(batch_size, device=device, generator=_generator(device))

    def denoiser(batch_size: int):
        batch = model.make_batch(batch_size, device=device)
        return model, (batch['video'], batch['audio'],
                       torch.full((batch_size,), 500.0, device=device))

    return Row(name, model, make_batch, model.loss,
               lambda b: model.sample(b, generator=_generator(device)), denoiser, resolution)


def _mm_ldm_row(name: str, settings: dict, device: str, latent_only: bool) -> Row:
    from pavdit.models.baselines.mm_ldm import MMLDM, paper_config
    sizes = dict(settings['mm_ldm'])
    kwargs = paper_config(sizes.pop('variant')) if 'variant' in sizes else {}
    kwargs.update(sizes)
    model = MMLDM(**kwargs).to(device)

    def make_batch(batch_size: int) -> dict:
        return model.make_batch(batch_size, device=device, generator=_generator(device),
                                latents=latent_only)

    def sample(batch_size: int):
        return model.sample(batch_size, generator=_generator(device), decode=not latent_only)

    def denoiser(batch_size: int):
        latents = model.make_batch(batch_size, device=device, latents=True)
        return model.dit, (latents['video_latent'], latents['audio_latent'],
                           torch.full((batch_size,), 500.0, device=device))

    return Row(name, model, make_batch, model.loss, sample, denoiser, model.image_size)


def row_parameters(row: Row) -> int:
    """Parameters of the model a row runs (PAV-DiT's EMA copy is bookkeeping, not model)."""
    total = sum(p.numel() for p in row.module.parameters())
    ema = getattr(row.module, 'ema_generator', None)
    return total - (sum(p.numel() for p in ema.parameters()) if ema is not None else 0)


def paper_parameter_counts() -> Dict[str, int]:
    """Parameters of the paper-size models, built on the meta device (no memory)."""
    from pavdit.models.baselines.mm_diffusion import MMDiffusion
    from pavdit.models.baselines.mm_ldm import MMLDM
    from pavdit.models.baselines.mm_ldm import paper_config as mm_ldm_paper_config
    counts = {}
    init_default_scope('pavdit')
    with torch.device('meta'):
        sizes = PRESETS['paper']['pavdit']
        autoencoder = Config.fromfile(CONFIGS / '_base_' / 'models' / 'mdsa.py').model.to_dict()
        autoencoder.update(video_discriminator=None, audio_discriminator=None,
                           perceptual_loss=None)
        generator = MODELS.build(dict(type='STDiT', hidden_size=sizes['hidden_size'],
                                      depth=sizes['depth'], num_heads=sizes['num_heads']))
        counts['PAV-DiT'] = sum(p.numel() for m in (MODELS.build(autoencoder), generator)
                                for p in m.parameters())
        counts['MM-Diffusion (64)'] = sum(p.numel() for p in MMDiffusion(
            **MMDiffusion.paper_config(64)).parameters())
        for variant in ('S', 'B', 'L'):
            counts[f'MM-LDM-{variant}'] = sum(p.numel() for p in MMLDM(
                **mm_ldm_paper_config(variant)).parameters())
    return counts
