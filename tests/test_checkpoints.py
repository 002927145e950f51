"""Safe, atomic checkpoints and exact resume with torch 2.11 + mmengine 0.10.7."""
import os
import pickle

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from pavdit.engine import compat
from pavdit.utils import checkpoint_io
from pavdit.utils.checkpoint_io import UnsafeCheckpointError, load_checkpoint_file
from tests.conftest import REPO_ROOT

TINY = REPO_ROOT / 'configs/toy/tiny_attention_regressor.py'


def _train(work_dir, max_iters, resume=False, name='run'):
    cfg = Config.fromfile(TINY)
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'{name}_{max_iters}_{resume}'
    cfg.train_cfg.max_iters = max_iters
    cfg.default_hooks.checkpoint.interval = 3
    cfg.default_hooks.logger.interval = 1
    cfg.resume = resume
    runner = Runner.from_cfg(cfg)
    runner.train()
    return {k: v.detach().clone() for k, v in runner.model.state_dict().items()}


def test_resume_continues_exactly(tmp_path):
    straight = _train(tmp_path / 'straight', 6, name='straight')
    _train(tmp_path / 'split', 3, name='split')
    checkpoint = load_checkpoint_file(tmp_path / 'split' / 'iter_3.pth')
    assert checkpoint['meta']['iter'] == 3 and 'optimizer' in checkpoint
    resumed = _train(tmp_path / 'split', 6, resume=True, name='split')
    assert straight.keys() == resumed.keys()
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key
    # And the run really trained: parameters moved from the 3-iteration checkpoint.
    assert not torch.equal(checkpoint['state_dict']['head.weight'], resumed['head.weight'])


class _RunsCode:
    def __reduce__(self):
        return (os.system, ('echo pwned > /dev/null',))


def test_checkpoint_that_would_run_code_is_refused(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'payload': _RunsCode()}, path)
    with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
        load_checkpoint_file(path)
    # The plain-pickle form (not a torch zip file) is refused too.
    raw = tmp_path / 'raw.pth'
    raw.write_bytes(pickle.dumps(_RunsCode()))
    with pytest.raises(UnsafeCheckpointError, match='raw.pth'):
        load_checkpoint_file(raw)


def test_mmengine_loader_goes_through_the_safe_loader(tmp_path):
    from mmengine.runner.checkpoint import _load_checkpoint
    path = tmp_path / 'evil.pth'
    torch.save({'payload': _RunsCode()}, path)
    with pytest.raises(UnsafeCheckpointError):
        _load_checkpoint(str(path), map_location='cpu')
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        _load_checkpoint(str(tmp_path / 'missing.pth'))


def test_getattr_is_not_on_the_allow_list():
    allowed = torch.serialization.get_safe_globals()
    assert getattr not in allowed and all(g is not getattr for g in checkpoint_io.SAFE_GLOBALS)


def test_interrupted_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    backend = compat.AtomicLocalBackend()
    target = tmp_path / 'latest.pth'
    backend.put(b'good checkpoint', target)

    def crash(*args):
        raise KeyboardInterrupt('killed during save')

    monkeypatch.setattr(checkpoint_io.os, 'replace', crash)
    with pytest.raises(KeyboardInterrupt):
        backend.put(b'half-written', target)
    assert target.read_bytes() == b'good checkpoint'
    assert [p.name for p in tmp_path.iterdir()] == ['latest.pth']  # no temp file left behind


def test_atomic_writes_get_the_mode_a_plain_open_gives(tmp_path):
    plain = tmp_path / 'plain.bin'
    plain.write_bytes(b'x')
    checkpoint_io.atomic_write(tmp_path / 'atomic.bin', b'x')  # not mkstemp's private 0600
    assert (tmp_path / 'atomic.bin').stat().st_mode == plain.stat().st_mode


_PATCH_STATE = """
import torch
from mmengine.fileio.backends import backends
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.registry import MODELS
from mmengine.runner import Runner
from mmengine.runner.checkpoint import CheckpointLoader
print(CheckpointLoader._schemes[''].__module__, backends['local'].__name__,
      Runner._init_model_weights.__module__,
      HistoryBuffer.__getstate__.__qualname__,
      getattr(MODELS.build_func, '_suggests_names', False),
      len(torch.serialization.get_safe_globals()))
"""


def test_importing_pavdit_patches_nothing_until_install():
    """Plain ``import pavdit`` (and building its models, loading its checkpoints) leaves mmengine
    and torch as they were; only ``pavdit.engine.compat.install()`` changes them."""
    import subprocess
    import sys
    script = ('import pavdit, pavdit.engine, pavdit.models\n'
              'from pavdit.utils.checkpoint_io import load_checkpoint_file\n' + _PATCH_STATE
              + 'from pavdit.engine import compat\ncompat.install()\ncompat.install()\n'
              + _PATCH_STATE)
    before = subprocess.run([sys.executable, '-c', _PATCH_STATE], capture_output=True, text=True,
                            check=True).stdout.split()
    after_import, after_install = (
        line.split() for line in subprocess.run(
            [sys.executable, '-c', script], capture_output=True, text=True, check=True,
            cwd=REPO_ROOT).stdout.splitlines())
    assert after_import == before
    assert after_install == ['pavdit.utils.checkpoint_io', 'AtomicLocalBackend',
                             'pavdit.engine.compat', '_history_buffer_state', 'True', before[-1]]



def test_random_states_of_another_world_size_are_kept_out_with_a_warning(monkeypatch):
    import logging

    from pavdit.engine import hooks
    logged = []
    monkeypatch.setattr(hooks, 'print_log', lambda msg, **kwargs: logged.append((msg, kwargs)))
    hook = hooks.RandomStateHook()
    hook.after_load_checkpoint(runner=None, checkpoint={'random_state': [{}, {}]})
    assert hook._pending is None
    (message, kwargs), = logged
    assert 'random states of 2 processes, this run has 1' in message
    assert kwargs['level'] == logging.WARNING  # an int: mmengine refuses level='WARNING'
