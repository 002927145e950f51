"""Hooks that kill the training process for real (SIGKILL), loaded by a config's custom_imports.

``KillTrainingHook(iteration, during_save=False)``: after the optimizer step of ``iteration``
(1-based) the process sends itself SIGKILL, either at once (between iterations) or, with
``during_save``, in the middle of that iteration's checkpoint write: after the bytes reach the
temporary file, before it replaces the target.

``NonFiniteBatchHook(iteration, rank=0, value=nan)``: on data-parallel rank ``rank`` only, every
floating-point tensor of ``iteration``'s (1-based) batch is filled with ``value`` in place before
the step, as a corrupt sample would, so that rank's loss is non-finite.

``DumpRankStateHook()``: at the end of training every rank saves ``rank{rank}_state.pt`` in the
work dir: the iteration, the message hub's ``skipped_steps`` and the (unwrapped) model weights.
"""
import os
import os.path as osp
import signal

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from pavdit.utils import checkpoint_io
from pavdit.registry import HOOKS


def _die(*args) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class KillTrainingHook(Hook):
    priority = 'NORMAL'  # before the CheckpointHook (VERY_LOW) writes this iteration's checkpoint

    def __init__(self, iteration: int, during_save: bool = False):
        self.iteration = iteration
        self.during_save = during_save

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if runner.iter + 1 != self.iteration:
            return
        if not self.during_save:
            _die()
        checkpoint_io.os.fsync = _die  # the next file write (this checkpoint) dies half-way


def _fill_floats(data, value: float) -> None:
    if isinstance(data, torch.Tensor):
        if data.is_floating_point():
            data.fill_(value)
    elif isinstance(data, dict):
        for item in data.values():
            _fill_floats(item, value)
    elif isinstance(data, (list, tuple)):
        for item in data:
            _fill_floats(item, value)


@HOOKS.register_module()
class NonFiniteBatchHook(Hook):
    priority = 'NORMAL'

    def __init__(self, iteration: int, rank: int = 0, value: float = float('nan')):
        self.iteration = iteration
        self.rank = rank
        self.value = value

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if runner.iter + 1 == self.iteration and runner.rank == self.rank:
            _fill_floats(data_batch, self.value)


@HOOKS.register_module()
class DumpRankStateHook(Hook):
    priority = 'VERY_LOW'

    def after_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        torch.save(dict(iter=runner.iter,
                        skipped_steps=runner.message_hub.get_info('skipped_steps', 0),
                        state_dict={k: v.detach().cpu() for k, v in model.state_dict().items()
                                    if isinstance(v, torch.Tensor)}),
                   osp.join(runner.work_dir, f'rank{runner.rank}_state.pt'))
