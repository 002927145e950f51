"""A run killed with SIGKILL, mid-training or mid-save, resumes to the same weights and loss curve
as a run never interrupted; the last good checkpoint survives the kill."""
import json
import signal
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from pavdit.utils.checkpoint_io import load_checkpoint_file
from tests.conftest import REPO_ROOT, run_tool

MDSA = REPO_ROOT / 'configs/mdsa/mdsa_synthetic_tiny.py'
PAVDIT = REPO_ROOT / 'configs/pavdit/pavdit_synthetic_tiny.py'


def _mdsa_config():
    """The tiny MDSA, its adversarial stage (second optimizer, KL) switching on at iteration 3."""
    cfg = Config.fromfile(MDSA)
    cfg.model.disc_start = 3
    cfg.train_dataloader.dataset.num_items = 8
    return cfg


def _pavdit_config():
    """The tiny PAV-DiT over a randomly initialised tiny MDSA (no trained checkpoint needed), with
    its latent statistics fitted before training and an EMA that moves fast."""
    cfg = Config.fromfile(PAVDIT)
    cfg.model.autoencoder = Config.fromfile(MDSA).model
    cfg.model.ema_decay = 0.5
    cfg.train_dataloader.batch_size = 2
    cfg.train_dataloader.dataset.num_items = 8
    return cfg


def _write_config(cfg, path, kill=None):
    cfg.train_cfg.max_iters = 6
    cfg.train_cfg.val_interval = 100
    cfg.default_hooks.checkpoint.update(interval=2, max_keep_ckpts=-1)
    cfg.default_hooks.logger.interval = 1
    cfg.randomness = dict(seed=7, deterministic=False)
    if kill is not None:
        cfg.custom_imports = dict(imports=['tests.fault_injection'], allow_failed_imports=False)
        cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [
            dict(type='KillTrainingHook', **kill)]
    cfg.dump(str(path))
    return str(path)


def _loss_curve(work_dir) -> dict:
    """step -> logged losses, over every run (timestamped folder) in the work dir."""
    curve = {}
    for scalars in sorted(work_dir.glob('*/vis_data/scalars.json')):
        for line in scalars.read_text().splitlines():
            record = json.loads(line)
            losses = {k: v for k, v in record.items() if k.startswith('loss')}
            if losses:
                curve.setdefault(record['step'], []).append(losses)
    return curve


@pytest.mark.slow
@pytest.mark.parametrize('model, kill', [
    ('mdsa', dict(iteration=6, during_save=True)),
    ('pavdit', dict(iteration=5, during_save=False)),
], ids=['mdsa-killed-during-save', 'pavdit-killed-between-iterations'])
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path, model, kill):
    make = dict(mdsa=_mdsa_config, pavdit=_pavdit_config)[model]
    straight_dir, killed_dir = tmp_path / 'straight', tmp_path / 'killed'
    run_tool('tools/train.py', _write_config(make(), tmp_path / 'straight.py'),
             '--work-dir', str(straight_dir))

    killed = subprocess.run(
        [sys.executable, 'tools/train.py', _write_config(make(), tmp_path / 'kill.py', kill),
         '--work-dir', str(killed_dir)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    # The last good checkpoint is whole and the latest pointer names it; nothing half-written
    # carries a checkpoint's name.
    assert not (killed_dir / 'iter_6.pth').exists()
    assert (killed_dir / 'last_checkpoint').read_text().strip().endswith('iter_4.pth')
    assert load_checkpoint_file(killed_dir / 'iter_4.pth')['meta']['iter'] == 4

    run_tool('tools/train.py', _write_config(make(), tmp_path / 'resume.py'),
             '--work-dir', str(killed_dir), '--resume')

    straight = load_checkpoint_file(straight_dir / 'iter_6.pth')
    resumed = load_checkpoint_file(killed_dir / 'iter_6.pth')
    assert straight['state_dict'].keys() == resumed['state_dict'].keys()
    # Bit-identical for the MDSA. PAV-DiT's resumed weights differ from the uninterrupted ones by
    # float32 rounding (<= 2e-7 seen) although its loss curve is bit-identical: a wrong random
    # stream or optimizer state would move them by orders of magnitude more.
    tolerance = dict(mdsa=dict(rtol=0, atol=0), pavdit=dict(rtol=1e-5, atol=1e-6))[model]
    for key, value in straight['state_dict'].items():  # weights, EMA, latent statistics
        if isinstance(value, torch.Tensor):
            torch.testing.assert_close(resumed['state_dict'][key], value, **tolerance,
                                       msg=f'{model}: {key} differs after the resume')
        else:  # extra state, e.g. the generator's autoencoder architecture
            assert resumed['state_dict'][key] == value, key
    assert resumed['meta']['iter'] == 6
    expected = _loss_curve(straight_dir)
    assert sorted(expected) == list(range(1, 7))
    observed = _loss_curve(killed_dir)
    assert sorted(observed) == sorted(expected)
    for step, runs in observed.items():
        for losses in runs:  # logged before the kill, or again after the resume
            assert losses == expected[step][0], step
    if model == 'mdsa':
        assert 'loss_disc_video' in expected[6][0]  # the adversarial stage ran after the resume
    else:
        assert resumed['state_dict']['ema_steps'].item() == 6
