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
