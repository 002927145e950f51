"""Optimizer wrappers that skip a step whose loss is NaN or inf instead of corrupting the weights.

Under data parallelism the decision is agreed: every rank all-reduces a "my loss is non-finite"
flag before deciding, so all ranks skip a step together (no rank calls backward, so none waits in
DDP's gradient all-reduce) or all take it together.
"""
import warnings
from typing import Optional, Tuple

import torch
import torch.distributed as dist
from mmengine.dist import get_comm_device
from mmengine.logging import MessageHub, print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper

from pavdit.registry import OPTIM_WRAPPERS


def _data_parallel() -> bool:
    """Whether this process is one of several in the default process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _flag_device(loss: torch.Tensor) -> torch.device:
    """Where the backend can all-reduce a tensor: the CPU for gloo, the loss's device for NCCL
    (and the backend's own device for a CPU loss under an accelerator backend)."""
    backend = str(dist.get_backend()).lower()
    if backend == 'gloo' or (loss.device.type == 'cpu' and 'gloo' in backend):
        return torch.device('cpu')
    if loss.device.type != 'cpu':
        return loss.device
    return torch.device(get_comm_device())


def _non_finite_ranks(loss: torch.Tensor) -> Tuple[bool, int]:
    """(whether this rank's loss is non-finite, how many ranks' losses are), the second agreed by
    one all-reduce over the default process group. Every rank must call this equally often."""
    here = (~torch.isfinite(loss.detach()).all()).to(_flag_device(loss), torch.int32)
    ranks = here.clone()
    dist.all_reduce(ranks, op=dist.ReduceOp.SUM)
    here, ranks = torch.stack([here, ranks]).tolist()  # one device-to-host copy
    return bool(here), int(ranks)


class _SkipNonFinite:
    """``update_params`` skips non-finite losses: warning, counter, clear error after a streak.

    The counter of skipped steps is kept in the message hub (``skipped_steps``), so it is logged
    and saved with checkpoints; ``max_consecutive_skips`` non-finite losses in a row stop the run.

    With several data-parallel processes, a non-finite loss on any one of them skips the step on
    all of them (one all-reduce of a flag per ``update_params`` call, before backward): a rank that
    skipped alone would leave the others waiting in DDP's gradient all-reduce, and its gradient
    accumulation counter would drift from theirs. The counter, the streak and the error are thus
    the same on every rank, and every rank warns, saying whether its own loss was the bad one.
    """

    def __init__(self, *args, max_consecutive_skips: int = 10, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_consecutive_skips = max_consecutive_skips
        self.consecutive_skips = 0
        self.skipped_last_step = False  # read by MultiPhaseModel: no EMA update after a skip

    def update_params(self, loss: torch.Tensor, step_kwargs: Optional[dict] = None,
                      zero_kwargs: Optional[dict] = None) -> None:
        parallel = _data_parallel()
        if parallel:
            here, ranks = _non_finite_ranks(loss)
        else:
            here = not torch.isfinite(loss).all()
            ranks = int(here)
        self.skipped_last_step = bool(ranks)
        if not ranks:
            self.consecutive_skips = 0
            return super().update_params(loss, step_kwargs, zero_kwargs)
        self.consecutive_skips += 1
        hub = MessageHub.get_current_instance()
        skipped = int(hub.get_info('skipped_steps', 0)) + 1
        hub.update_info('skipped_steps', skipped)
        self.zero_grad(**(zero_kwargs or {}))
        where = f'at iteration {hub.get_info("iter", "?")}'
        if parallel:
            self._warn_every_rank(loss, here, ranks, where, skipped)
        else:
            print_log(f'non-finite loss ({loss.item()}) {where}: step skipped ({skipped} skipped '
                      f'so far)', logger='current', level=30)
        if self.consecutive_skips >= self.max_consecutive_skips:
            raise RuntimeError(
                f'{self.consecutive_skips} non-finite losses in a row: stopping. Lower the '
                f'learning rate, check the data for bad samples, or raise '
                f'optim_wrapper.max_consecutive_skips (now {self.max_consecutive_skips})')

    @staticmethod
    def _warn_every_rank(loss: torch.Tensor, here: bool, ranks: int, where: str,
                         skipped: int) -> None:
        rank, world = dist.get_rank(), dist.get_world_size()
        whose = (f'non-finite loss ({loss.item()}) on this rank' if here else
                 f'non-finite loss on another rank (this rank: {loss.item()})')
        message = (f'rank {rank} of {world}: {whose} {where}, {ranks} of {world} ranks '
                   f'non-finite: step skipped on every rank ({skipped} skipped so far)')
        print_log(message, logger='current', level=30)
        if rank != 0:  # mmengine's logger prints only errors on the other ranks' consoles
            warnings.warn(message, RuntimeWarning, stacklevel=3)


@OPTIM_WRAPPERS.register_module()
class SkipNonFiniteOptimWrapper(_SkipNonFinite, OptimWrapper):
    """mmengine's ``OptimWrapper`` that skips NaN / inf losses (see :class:`_SkipNonFinite`)."""


@OPTIM_WRAPPERS.register_module()
class SkipNonFiniteAmpOptimWrapper(_SkipNonFinite, AmpOptimWrapper):
    """mmengine's ``AmpOptimWrapper`` (bf16 / fp16 autocast) that skips NaN / inf losses."""
