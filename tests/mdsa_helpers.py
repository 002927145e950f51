"""Small MDSA builds for tests: the structure of a config at a CPU-friendly size."""
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from pavdit.registry import MODELS
from tests.conftest import REPO_ROOT

SMALL = dict(dim=32, depth=1, num_heads=2)


def small_model_cfg(config_name: str, **overrides):
    """The model of configs/mdsa/<config_name>.py with every width shrunk, blocks kept as they are."""
    cfg = Config.fromfile(REPO_ROOT / 'configs' / 'mdsa' / f'{config_name}.py').model
    for branch in (cfg.video, cfg.audio):
        branch.patch_size = 8
        branch.encoder.update(SMALL)
        branch.decoder.update(SMALL)
        branch.projector.update(SMALL, mlp_dim=64)
    for key in ('spatial_attention', 'temporal_attention', 'cross_modal_attention',
                'decoder_fusion'):
        if cfg.get(key) is not None:
            cfg[key].num_heads = 2
    if cfg.get('decoder_fusion') is not None:
        cfg.decoder_fusion.update(block_frames=2, spatial_blocks=(1, 1))
    for key in ('video_discriminator', 'audio_discriminator'):
        if cfg.get(key) is not None:
            cfg[key].update(base_channels=8, num_layers=2)
    cfg.perceptual_loss = None
    cfg.update(overrides)
    return cfg


def build_small(config_name: str, **overrides):
    init_default_scope('pavdit')
    torch.manual_seed(0)
    return MODELS.build(small_model_cfg(config_name, **overrides))


def random_batch(batch=2, frames=8, height=32, width=32, mels=64, frame_width=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(video=torch.rand(batch, 3, frames, height, width, generator=g) * 2 - 1,
                audio=torch.rand(batch, 1, frames, mels, frame_width, generator=g) * 2 - 1)
