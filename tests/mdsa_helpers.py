"""Small MDSA builds for tests: the structure of a config at a CPU-friendly size."""
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from pavdit.models.autoencoders.scaling import scale_mdsa_config
from pavdit.registry import MODELS
from tests.conftest import REPO_ROOT


def small_model_cfg(config_name: str, **overrides) -> dict:
    """The model of configs/mdsa/<config_name>.py at width 32, blocks kept as they are."""
    cfg = Config.fromfile(REPO_ROOT / 'configs' / 'mdsa' / f'{config_name}.py').model.to_dict()
    cfg = scale_mdsa_config(cfg)
    cfg['perceptual_loss'] = None
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


def overfit(model, batch: dict, optimizer, iterations: int):
    """Train ``model`` on one fixed ``batch`` (stage 1, no adversarial term); return its
    reconstruction (video, audio) of that batch in eval mode."""
    for _ in range(iterations):
        losses, _ = model.generator_losses(batch, adversarial=False)
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        return model.decode(model.encode(batch['video'], batch['audio']))
