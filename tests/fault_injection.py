"""Hooks that kill the training process for real (SIGKILL), loaded by a config's custom_imports.

``KillTrainingHook(iteration, during_save=False)``: after the optimizer step of ``iteration``
(1-based) the process sends itself SIGKILL, either at once (between iterations) or, with
``during_save``, in the middle of that iteration's checkpoint write: after the bytes reach the
temporary file, before it replaces the target.
"""
import os
import signal

from mmengine.hooks import Hook

from pavdit.engine import compat
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
        compat.os.fsync = _die  # the next file write (this checkpoint) dies half-way
