"""Data-parallel wrappers (DDP, FSDP) for models that run their own training step.

mmengine's wrappers' ``train_step`` does one forward in 'loss' mode and one optimizer update
itself, so a model's own ``train_step`` never runs under them: the MDSA's generator-then-
discriminator steps and PAV-DiT's EMA update would be lost. These wrappers hand the step back to
the model and pass themselves as ``forward``: the model sends every loss-producing forward pass
through the wrapper (so gradients are all-reduced or sharded, and ``optim_context`` can use
``no_sync`` for gradient accumulation) and keeps control of its optimizers.

Contract for a model: ``train_step(data, optim_wrapper, forward=None)``, where ``forward`` (default:
the model itself) is called like the model, e.g. ``forward(mode='loss', **batch)``. One forward
through the wrapper is followed by exactly one backward before the next. A model whose
``train_step`` takes no ``forward`` argument gets mmengine's standard step.
"""
import functools
import inspect
from contextlib import nullcontext
from typing import Dict, Union

import torch
from mmengine.model import MMDistributedDataParallel, MMFullyShardedDataParallel
from torch import nn

from pavdit.registry import MODEL_WRAPPERS


class _ModelStep:
    """``train_step`` that defers to the wrapped model's own step when it accepts ``forward``."""

    @functools.cached_property
    def _model_runs_its_step(self) -> bool:
        return 'forward' in inspect.signature(self.module.train_step).parameters

    def train_step(self, data: Union[dict, tuple, list], optim_wrapper
                   ) -> Dict[str, torch.Tensor]:
        if not self._model_runs_its_step:
            return super().train_step(data, optim_wrapper)
        return self.module.train_step(data, optim_wrapper, forward=self)


@MODEL_WRAPPERS.register_module()
class ModelStepDistributedDataParallel(_ModelStep, MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that lets the wrapped model run its own ``train_step``.

    ``find_unused_parameters`` defaults to True: a GAN step leaves the frozen discriminator out of
    the generator's backward (and the other way round), and classifier-free guidance leaves the
    null condition unused in some iterations.
    """

    def __init__(self, module, find_unused_parameters: bool = True, **kwargs):
        super().__init__(module=module, find_unused_parameters=find_unused_parameters, **kwargs)


@MODEL_WRAPPERS.register_module()
class ModelStepFullyShardedDataParallel(_ModelStep, MMFullyShardedDataParallel):
    """``MMFullyShardedDataParallel`` that lets the wrapped model run its own ``train_step``.

    Sub-modules the model lists in ``fsdp_ignored_modules()`` (frozen parts, the EMA copy) stay
    whole on every process, outside the shards.
    """

    def __init__(self, module, device_id=None, **kwargs):
        if hasattr(module, 'fsdp_ignored_modules'):
            ignored = module.fsdp_ignored_modules()
            kwargs.setdefault('ignored_modules', ignored)
            if device_id is not None:  # FSDP moves only what it manages
                for part in ignored:
                    part.to(torch.device('cuda', device_id) if isinstance(device_id, int)
                            else device_id)
        super().__init__(module=module, device_id=device_id, **kwargs)


def full_parameters(forward: nn.Module):
    """Context in which the parameters of ``forward`` (an FSDP wrapper or a plain module) are
    whole tensors, e.g. to update an EMA copy from them."""
    if isinstance(forward, MMFullyShardedDataParallel):
        return forward.summon_full_params(forward, writeback=False)
    return nullcontext()
