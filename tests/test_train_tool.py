"""tools/train.py from the command line: train, save, resume (DESIGN §5)."""
import json
import subprocess
import sys

import pytest
import torch

from pavdit.utils.checkpoint_io import load_checkpoint_file
from tests.conftest import run_tool

CONFIG = 'configs/toy/tiny_attention_regressor.py'


def _iters_logged(work_dir):
    iters = []
    for scalars in sorted(work_dir.glob('*/vis_data/scalars.json')):
        iters += [json.loads(line)['iter'] for line in scalars.read_text().splitlines()]
    return iters


def test_train_then_resume_from_the_command_line(tmp_path):
    work_dir = tmp_path / 'w'
    common = ['default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1']
    run_tool('tools/train.py', CONFIG, '--work-dir', str(work_dir),
             '--cfg-options', 'train_cfg.max_iters=4', *common)
    assert (work_dir / 'iter_4.pth').is_file() and (work_dir / 'tiny_attention_regressor.py').is_file()
    out = run_tool('tools/train.py', CONFIG, '--work-dir', str(work_dir), '--resume',
                   '--cfg-options', 'train_cfg.max_iters=8', *common)
    assert 'resumed' in (out.stdout + out.stderr).lower()
    assert load_checkpoint_file(work_dir / 'iter_8.pth')['meta']['iter'] == 8
    # The second run logged iterations 5..8 only: it continued, it did not restart.
    assert _iters_logged(work_dir) == [1, 2, 3, 4, 5, 6, 7, 8]


def test_resume_from_an_explicit_checkpoint(tmp_path):
    work_dir = tmp_path / 'w'
    run_tool('tools/train.py', CONFIG, '--work-dir', str(work_dir),
             '--cfg-options', 'train_cfg.max_iters=2', 'default_hooks.checkpoint.interval=1')
    run_tool('tools/train.py', CONFIG, '--work-dir', str(work_dir / 'b'), '--resume',
             str(work_dir / 'iter_1.pth'), '--cfg-options', 'train_cfg.max_iters=3',
             'default_hooks.checkpoint.interval=1')
    # Continued from iteration 1: it saved iterations 2 and 3, and never re-ran iteration 1.
    assert sorted(p.name for p in (work_dir / 'b').glob('iter_*.pth')) == ['iter_2.pth',
                                                                           'iter_3.pth']
    assert load_checkpoint_file(work_dir / 'b' / 'iter_3.pth')['meta']['iter'] == 3


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU-only error')
def test_amp_without_cuda_is_a_clear_error(tmp_path):
    proc = subprocess.run([sys.executable, 'tools/train.py', CONFIG, '--amp', '--work-dir',
                           str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode != 0 and '--amp' in proc.stderr and 'CUDA' in proc.stderr
