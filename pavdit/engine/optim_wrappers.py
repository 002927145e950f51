"""Optimizer wrappers that skip a step whose loss is NaN or inf instead of corrupting the weights."""
from typing import Optional

import torch
from mmengine.logging import MessageHub, print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper

from pavdit.registry import OPTIM_WRAPPERS


class _SkipNonFinite:
    """``update_params`` skips non-finite losses: warning, counter, clear error after a streak.

    The counter of skipped steps is kept in the message hub (``skipped_steps``), so it is logged
    and saved with checkpoints; ``max_consecutive_skips`` non-finite losses in a row stop the run.
    """

    def __init__(self, *args, max_consecutive_skips: int = 10, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_consecutive_skips = max_consecutive_skips
        self.consecutive_skips = 0

    def update_params(self, loss: torch.Tensor, step_kwargs: Optional[dict] = None,
                      zero_kwargs: Optional[dict] = None) -> None:
        if torch.isfinite(loss).all():
            self.consecutive_skips = 0
            return super().update_params(loss, step_kwargs, zero_kwargs)
        self.consecutive_skips += 1
        hub = MessageHub.get_current_instance()
        skipped = int(hub.get_info('skipped_steps', 0)) + 1
        hub.update_info('skipped_steps', skipped)
        self.zero_grad(**(zero_kwargs or {}))
        print_log(f'non-finite loss ({loss.item()}) at iteration {hub.get_info("iter", "?")}: '
                  f'step skipped ({skipped} skipped so far)', logger='current', level=30)
        if self.consecutive_skips >= self.max_consecutive_skips:
            raise RuntimeError(
                f'{self.consecutive_skips} non-finite losses in a row: stopping. Lower the '
                f'learning rate, check the data for bad samples, or raise '
                f'optim_wrapper.max_consecutive_skips (now {self.max_consecutive_skips})')


@OPTIM_WRAPPERS.register_module()
class SkipNonFiniteOptimWrapper(_SkipNonFinite, OptimWrapper):
    """mmengine's ``OptimWrapper`` that skips NaN / inf losses (see :class:`_SkipNonFinite`)."""


@OPTIM_WRAPPERS.register_module()
class SkipNonFiniteAmpOptimWrapper(_SkipNonFinite, AmpOptimWrapper):
    """mmengine's ``AmpOptimWrapper`` (bf16 / fp16 autocast) that skips NaN / inf losses."""
