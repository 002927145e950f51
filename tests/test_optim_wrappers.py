"""Non-finite losses skip the step with a counter; a streak of them stops the run clearly."""
import warnings
from contextlib import nullcontext

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


class _TwoRanks:
    """Stands in for ``torch.distributed`` on rank ``rank`` of 2 (gloo): ``all_reduce`` adds the
    other rank's non-finite flag, and records the devices it was handed."""
    ReduceOp = torch.distributed.ReduceOp

    def __init__(self, rank: int, other_non_finite: bool):
        self.rank, self.other_non_finite, self.devices = rank, other_non_finite, []

    def is_available(self):
        return True

    def is_initialized(self):
        return True

    def get_world_size(self):
        return 2

    def get_rank(self):
        return self.rank

    def get_backend(self):
        return 'gloo'

    def all_reduce(self, tensor, op):
        assert op == self.ReduceOp.SUM
        self.devices.append(tensor.device)
        tensor.add_(int(self.other_non_finite))


@pytest.mark.parametrize('rank, loss_scale, other_non_finite, whose', [
    (0, 1.0, True, 'non-finite loss on another rank (this rank: '),
    (1, float('nan'), False, 'rank 1 of 2: non-finite loss (nan) on this rank'),
    (1, float('inf'), True, 'inf) on this rank at iteration ?, 2 of 2 ranks non-finite'),
], ids=['other-rank-nan', 'this-rank-nan', 'both-ranks'])
def test_ranks_agree_on_skipping_before_any_backward(monkeypatch, rank, loss_scale,
                                                     other_non_finite, whose):
    """With 2 data-parallel ranks, a non-finite loss on either one skips the step here too,
    without a backward (which would wait in DDP's all-reduce): one flag all-reduce per call."""
    from pavdit.engine import optim_wrappers
    fake = _TwoRanks(rank, other_non_finite)
    logged = []
    monkeypatch.setattr(optim_wrappers, 'dist', fake)
    monkeypatch.setattr(optim_wrappers, 'print_log', lambda msg, **kwargs: logged.append(msg))
    hub = MessageHub.get_instance('skip-test-ranks')
    hub.update_info('skipped_steps', 0)
    layer = torch.nn.Linear(3, 1)
    wrapper = SkipNonFiniteOptimWrapper(torch.optim.SGD(layer.parameters(), lr=0.1),
                                        max_consecutive_skips=2)
    monkeypatch.setattr(wrapper, 'backward', lambda *a, **k: pytest.fail('backward was called'))
    before = layer.weight.detach().clone()
    # Rank 0 logs through mmengine's logger; the others' consoles show only its errors, so they
    # warn as well.
    warns = pytest.warns(RuntimeWarning, match='step skipped on every rank')
    with warns if rank else nullcontext():
        wrapper.update_params(layer(torch.ones(1, 3)).sum() * loss_scale)
    assert torch.equal(layer.weight, before) and layer.weight.grad is None
    assert hub.get_info('skipped_steps') == 1 and wrapper.consecutive_skips == 1
    assert fake.devices == [torch.device('cpu')]  # gloo all-reduces on the CPU
    assert len(logged) == 1 and whose in logged[0] and 'step skipped on every rank' in logged[0]
    # The streak is the same on every rank, so all ranks stop together.
    with pytest.raises(RuntimeError, match='2 non-finite losses in a row'), \
            warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)
        wrapper.update_params(layer(torch.ones(1, 3)).sum() * loss_scale)


def test_ranks_all_step_when_every_loss_is_finite(monkeypatch):
    from pavdit.engine import optim_wrappers
    fake = _TwoRanks(0, other_non_finite=False)
    monkeypatch.setattr(optim_wrappers, 'dist', fake)
    layer = torch.nn.Linear(3, 1)
    wrapper = SkipNonFiniteOptimWrapper(torch.optim.SGD(layer.parameters(), lr=0.1))
    wrapper.consecutive_skips = 4
    before = layer.weight.detach().clone()
    for _ in range(2):
        wrapper.update_params(layer(torch.ones(1, 3)).sum())
    assert not torch.equal(layer.weight, before) and wrapper.consecutive_skips == 0
    assert len(fake.devices) == 2  # one agreement per update_params call


def test_the_flag_lives_where_the_backend_communicates(monkeypatch):
    from pavdit.engine import optim_wrappers
    fake = _TwoRanks(0, other_non_finite=False)
    monkeypatch.setattr(optim_wrappers, 'dist', fake)
    on_device = torch.empty((), device='meta')  # any non-CPU device
    assert optim_wrappers._flag_device(on_device) == torch.device('cpu')  # gloo
    monkeypatch.setattr(fake, 'get_backend', lambda: 'nccl')
    assert optim_wrappers._flag_device(on_device) == on_device.device
    monkeypatch.setattr(fake, 'get_backend', lambda: 'cpu:gloo,cuda:nccl')
    assert optim_wrappers._flag_device(torch.zeros(())) == torch.device('cpu')
    assert optim_wrappers._flag_device(on_device) == on_device.device


def test_a_skipped_step_is_not_an_ema_step():
    """MultiPhaseModel calls after_step (PAV-DiT's EMA update) only when no phase was skipped."""
    from pavdit.models.multi_phase_model import MultiPhaseModel

    class Regressor(MultiPhaseModel):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(3, 1)
            self.after_steps = 0

        def phases(self):
            return ['main']

        def phase_losses(self, phase, batch, carry):
            return dict(loss_mse=(self.layer(batch['x']) - 1).pow(2).mean())

        def forward(self, mode='loss', phase=None, carry=None, **batch):
            return self.loss(batch, phase, carry)

        def after_step(self, forward):
            self.after_steps += 1

    MessageHub.get_instance('skip-test-ema').update_info('skipped_steps', 0)
    model = Regressor()
    wrapper = SkipNonFiniteOptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    model.train_step(dict(x=torch.ones(2, 3)), wrapper)
    before = model.layer.weight.detach().clone()
    model.train_step(dict(x=torch.full((2, 3), float('nan'))), wrapper)
    assert wrapper.skipped_last_step and torch.equal(model.layer.weight, before)
    assert model.after_steps == 1
    model.train_step(dict(x=torch.ones(2, 3)), wrapper)
    assert not wrapper.skipped_last_step and model.after_steps == 2
