"""Multi-process training on CPUs: 2 gloo processes equal one process on the same global batch."""
import os
import subprocess
import sys

import torch

from pavdit.engine.compat import load_checkpoint_file
from tests.conftest import run_tool

CONFIG = 'configs/toy/tiny_attention_regressor.py'
# SGD, so the comparison is not blurred by Adam's sign-like first steps on near-zero gradients.
COMMON = ['train_cfg.max_iters=5', 'default_hooks.checkpoint.interval=5', 'randomness.seed=3',
          'optim_wrapper.optimizer.type=SGD', 'optim_wrapper.optimizer.lr=0.1']


def test_two_gloo_processes_match_one_process(tmp_path):
    run_tool('tools/train.py', CONFIG, '--work-dir', str(tmp_path / 'one'), '--cfg-options',
             'train_dataloader.batch_size=8', *COMMON, 'default_hooks.checkpoint.interval=1',
             'default_hooks.checkpoint.max_keep_ckpts=-1')
    torchrun = os.path.join(os.path.dirname(sys.executable), 'torchrun')
    proc = subprocess.run(
        [torchrun, '--nproc-per-node', '2', '--master-port', '29531', 'tools/train.py', CONFIG,
         '--launcher', 'pytorch', '--work-dir', str(tmp_path / 'two'), '--cfg-options',
         'train_dataloader.batch_size=4', *COMMON],
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), capture_output=True,
        text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = load_checkpoint_file(tmp_path / 'one' / 'iter_5.pth')['state_dict']
    two = load_checkpoint_file(tmp_path / 'two' / 'iter_5.pth')['state_dict']
    assert one.keys() == two.keys()
    first = load_checkpoint_file(tmp_path / 'one' / 'iter_1.pth')['state_dict']
    assert any(not torch.equal(first[k], one[k]) for k in one)  # training moved the weights
    for key in one:
        # Each rank sees half of the same shuffled global batch of 8; DDP averages gradients.
        torch.testing.assert_close(two[key], one[key], atol=1e-6, rtol=1e-5)
