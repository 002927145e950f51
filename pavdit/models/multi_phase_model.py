"""MultiPhaseModel: the training-step plumbing of models that run their own iteration, written once.

An iteration is a sequence of *phases* (the MDSA: the autoencoder, then its discriminators;
PAV-DiT: the generator). Each phase is one forward pass through ``forward`` (the model itself, or
its DDP / FSDP wrapper from :mod:`pavdit.engine.model_wrappers`, so gradients are all-reduced or
sharded), one backward and one optimizer update, with the parts that must not learn in that phase
frozen. Subclasses say what their phases are and what each one's losses are; nothing else.
"""
from collections.abc import Mapping
from contextlib import ExitStack, contextmanager
from typing import Dict, Iterable, List, Optional, Sequence, Union

import torch
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper, OptimWrapperDict
from torch import nn


class MultiPhaseModel(BaseModel):
    """Base of models with their own ``train_step`` (after mmagic's ``BaseGAN``).

    A subclass implements:

    - :meth:`phases`: the names of this iteration's phases, in order. A phase's name is the key
      of its optimizer in an ``OptimWrapperDict`` (see :meth:`optimizer_groups`); a model with a
      single ``OptimWrapper`` has one phase.
    - :meth:`phase_losses`: the loss dict of one phase. ``carry`` is a dict shared by the phases
      of one iteration (the MDSA passes its reconstructions to the discriminator phase).

    and may override :meth:`frozen_during` (modules that get no gradient in a phase),
    :meth:`after_step` (e.g. an EMA update) and :meth:`optimizer_groups`.

    ``forward(mode='loss', phase=..., carry=..., **batch)`` must return
    ``self.loss(batch, phase, carry)``: every phase's forward runs through the one 'loss' mode, so
    data-parallel wrappers need no mode of their own.
    """

    def phases(self) -> Sequence[str]:
        """Abstract: this iteration's phase names, in order."""
        raise NotImplementedError(f'{type(self).__name__} must define phases() to subclass '
                                  f'MultiPhaseModel')

    def phase_losses(self, phase: str, batch: dict, carry: dict) -> Dict[str, torch.Tensor]:
        """Abstract: the loss dict of ``phase`` on a preprocessed batch."""
        raise NotImplementedError(f'{type(self).__name__} must define phase_losses() to subclass '
                                  f'MultiPhaseModel')

    def frozen_during(self, phase: str) -> List[nn.Module]:
        """Modules whose parameters must stay out of ``phase``'s backward pass."""
        return []

    def after_step(self, forward: nn.Module) -> None:
        """Called once after the phases of an iteration, with the module the phases ran through;
        not called when an optimizer wrapper skipped its step (non-finite loss)."""

    def optimizer_groups(self) -> Dict[str, List[nn.Parameter]]:
        """Parameters per phase, for ``ModelGroupsOptimWrapperConstructor``: by default every
        trainable parameter in the first phase's group."""
        return {self.phases()[0]: [p for p in self.parameters() if p.requires_grad]}

    def loss(self, batch: dict, phase: Optional[str] = None,
             carry: Optional[dict] = None) -> Dict[str, torch.Tensor]:
        """Losses of ``phase`` (default: the first) on a preprocessed batch."""
        return self.phase_losses(phase or self.phases()[0], batch, {} if carry is None else carry)

    def train_step(self, data: Union[dict, list],
                   optim_wrapper: Union[OptimWrapper, OptimWrapperDict],
                   forward: Optional[nn.Module] = None) -> Dict[str, torch.Tensor]:
        """Run every phase: forward through ``forward`` (default: the model), backward, update.

        Returns the log variables of all phases."""
        forward = forward or self
        batch = self.data_preprocessor(data, True)
        carry, log_vars, skipped = {}, {}, False
        for phase in self.phases():
            wrapper = (optim_wrapper[phase] if isinstance(optim_wrapper, OptimWrapperDict)
                       else optim_wrapper)
            with wrapper.optim_context(forward), frozen(self.frozen_during(phase)):
                losses = forward(mode='loss', phase=phase, carry=carry, **batch)
            loss, phase_log_vars = self.parse_losses(losses)
            wrapper.update_params(loss)
            # A skipping wrapper (non-finite loss, agreed across ranks) left the weights as they
            # were; the EMA must not count that as a step.
            skipped |= getattr(wrapper, 'skipped_last_step', False)
            log_vars.update(phase_log_vars)
        if not skipped:
            self.after_step(forward)
        return log_vars

    def val_step(self, data: Union[dict, list]) -> list:
        """mmengine's val_step; a batch whose items a test-mode dataset all dropped (bad files;
        ``sounding_video_collate`` gives ``{}``) has no predictions."""
        return [] if _dropped_batch(data) else super().val_step(data)

    def test_step(self, data: Union[dict, list]) -> list:
        """mmengine's test_step; no predictions for an all-dropped batch (see :meth:`val_step`)."""
        return [] if _dropped_batch(data) else super().test_step(data)


def _dropped_batch(data) -> bool:
    """Whether ``data`` is a batch with no items left: ``{}``, or a list of only Nones."""
    if isinstance(data, Mapping):
        return not data
    return isinstance(data, (list, tuple)) and bool(data) and all(x is None for x in data)


@contextmanager
def frozen(modules: Iterable[Optional[nn.Module]]):
    """Within the context, the parameters of ``modules`` (None entries skipped) require no grad;
    their flags are restored afterwards."""
    with ExitStack() as stack:
        for module in modules:
            if module is not None:
                stack.enter_context(_frozen_module(module))
        yield


@contextmanager
def _frozen_module(module: nn.Module):
    flags = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)
