"""Non-finite losses skip the step with a counter; a streak of them stops the run clearly."""
import pytest
import torch
from mmengine.logging import MessageHub

from pavdit.engine.optim_wrappers import SkipNonFiniteOptimWrapper


def test_nan_and_inf_losses_skip_the_step_and_count():
    hub = MessageHub.get_instance('skip-test')
    hub.update_info('skipped_steps', 0)
    layer = torch.nn.Linear(3, 1)
    wrapper = SkipNonFiniteOptimWrapper(torch.optim.SGD(layer.parameters(), lr=0.1),
                                        max_consecutive_skips=3)
    before = layer.weight.detach().clone()
    for bad in (float('nan'), float('inf')):
        wrapper.update_params(layer(torch.ones(1, 3)).sum() * bad)
        assert torch.equal(layer.weight, before)  # weights untouched
        assert layer.weight.grad is None or not layer.weight.grad.any()
    assert hub.get_info('skipped_steps') == 2
    wrapper.update_params(layer(torch.ones(1, 3)).sum())  # a finite loss steps and resets
    assert not torch.equal(layer.weight, before) and wrapper.consecutive_skips == 0
    for _ in range(2):
        wrapper.update_params(layer(torch.ones(1, 3)).sum() * float('nan'))
    with pytest.raises(RuntimeError, match='3 non-finite losses in a row'):
        wrapper.update_params(layer(torch.ones(1, 3)).sum() * float('nan'))


def test_a_diverging_run_skips_steps_then_stops_with_a_clear_error(tmp_path):
    """Through tools/train.py: a learning rate of 1e30 makes the loss non-finite after one step;
    each non-finite step is skipped with a warning, and the 10th in a row ends the run."""
    import subprocess
    import sys
    from tests.conftest import REPO_ROOT
    proc = subprocess.run(
        [sys.executable, 'tools/train.py', 'configs/toy/tiny_attention_regressor.py', '--work-dir',
         str(tmp_path), '--cfg-options', 'optim_wrapper.optimizer.type=SGD',
         'optim_wrapper.optimizer.lr=1e30', 'train_cfg.max_iters=50'],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert output.count('non-finite loss') >= 10
    assert '10 non-finite losses in a row: stopping' in output, output[-2000:]
