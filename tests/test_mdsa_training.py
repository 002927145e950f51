"""MDSA through tools/train.py: the tiny synthetic config trains, checkpoints, resumes its gate."""
import json

import pytest
import torch

from pavdit.engine.checkpoints import load_model
from tests.conftest import run_tool

TINY = 'configs/mdsa/mdsa_synthetic_tiny.py'


def _logged(work_dir):
    rows = []
    for scalars in sorted(work_dir.glob('*/vis_data/scalars.json')):
        rows += [json.loads(line) for line in scalars.read_text().splitlines()]
    return {row['iter']: row for row in rows if 'iter' in row and 'loss' in row}


def test_tiny_config_trains_and_its_checkpoint_encodes_and_decodes(tmp_path):
    run_tool('tools/train.py', TINY, '--work-dir', str(tmp_path), '--cfg-options',
             'train_cfg.max_iters=3')
    model, cfg = load_model(str(tmp_path / 'iter_3.pth'))
    video = torch.zeros(1, 3, 16, 32, 32)
    audio = torch.zeros(1, 1, 16, 64, 16)
    latents = model.encode(video, audio)
    assert latents['video_t'].shape == (1, 4, 4, 4)
    recon_video, recon_audio = model.decode(latents)
    assert recon_video.shape == video.shape and recon_audio.shape == audio.shape
    assert cfg.train_dataloader.dataset.type == 'SyntheticSoundingVideo'


def test_disc_start_gate_survives_resume(tmp_path):
    options = ['model.disc_start=3', 'default_hooks.logger.interval=1',
               'default_hooks.checkpoint.interval=2', 'train_cfg.val_interval=100']
    run_tool('tools/train.py', TINY, '--work-dir', str(tmp_path), '--cfg-options',
             'train_cfg.max_iters=2', *options)
    run_tool('tools/train.py', TINY, '--work-dir', str(tmp_path), '--resume', '--cfg-options',
             'train_cfg.max_iters=4', *options)
    logged = _logged(tmp_path)
    assert sorted(logged) == [1, 2, 3, 4]
    # mmengine logs iteration i after running step i - 1 (its message-hub 'iter' is 0-based).
    for iteration, row in logged.items():
        assert ('loss_disc_video' in row) == (iteration >= 4), (iteration, sorted(row))
        assert ('loss_kl_video' in row) == (iteration >= 4)


@pytest.mark.slow
def test_tiny_mdsa_overfits_two_synthetic_clips():
    """Measured: video PSNR 27.1 dB and mel PSNR 26.2 dB after 100 steps (docs/mdsa.md)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from pavdit.data import sounding_video_collate
    from pavdit.evaluation.functional import psnr
    from pavdit.registry import DATASETS, MODELS
    from tests.conftest import REPO_ROOT
    cfg = Config.fromfile(REPO_ROOT / TINY)
    init_default_scope('pavdit')
    torch.manual_seed(0)
    model = MODELS.build(dict(cfg.model, perceptual_loss=None, disc_start=None))
    dataset = DATASETS.build(dict(cfg.train_dataloader.dataset, num_items=2))
    batch = sounding_video_collate([dataset[0], dataset[1]])
    from tests.mdsa_helpers import overfit
    video, audio = overfit(model, batch, torch.optim.Adam(model.parameters(), lr=2e-3), 100)
    video_psnr = psnr((video.clamp(-1, 1) + 1) / 2, (batch['video'] + 1) / 2).mean().item()
    audio_psnr = psnr((audio.clamp(-1, 1) + 1) / 2, (batch['audio'] + 1) / 2).mean().item()
    assert video_psnr > 24.0 and audio_psnr > 23.0, (video_psnr, audio_psnr)
