"""Training hooks."""
import itertools
import logging
import random
from typing import Optional

import numpy as np
import torch
from mmengine import dist
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from torch.utils.data import DataLoader

from pavdit.registry import HOOKS


@HOOKS.register_module()
class FitLatentStatsHook(Hook):
    """Before training, fit the generator's latent normaliser on ``num_batches`` batches drawn
    from a seeded shuffle of the whole training set, then check the fitted reflection box on the
    next batch of that shuffle (held out from the fit).

    The shuffle matters: dataset files are often sorted by class, and the first batches of an
    unshuffled loader then hold one class, whose latent range does not cover the others'.
    A warning names the share of held-out latent elements outside the box when it passes
    ``max_outside`` (those elements would be folded back by every reflected-flow step).

    Skipped when the normaliser is already fitted (a resumed run or loaded weights restore its
    buffers), so resuming never changes the latent scale mid-training. In distributed runs rank 0's
    statistics are broadcast so every rank normalises identically.

    Args:
        num_batches: batches fitted on (the whole set when it holds fewer).
        seed: seed of the shuffle.
        max_outside: share of held-out elements outside the box above which to warn.
    """

    priority = 'VERY_HIGH'

    def __init__(self, num_batches: int = 50, seed: int = 0, max_outside: float = 0.01):
        self.num_batches, self.seed, self.max_outside = num_batches, seed, max_outside

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if model.latent_stats_fitted:
            return
        # A loader of our own: iterating the Runner's would consume (and, when we stop early,
        # close) its InfiniteSampler's index generator.
        train_loader = runner.train_dataloader
        loader = DataLoader(train_loader.dataset, batch_size=train_loader.batch_size,
                            shuffle=True, generator=torch.Generator().manual_seed(self.seed),
                            collate_fn=train_loader.collate_fn)
        batches = [model.latents_of(model.data_preprocessor(data, False))
                   for data in itertools.islice(loader, self.num_batches + 1)]
        held_out = batches.pop() if len(batches) > 1 else None
        model.fit_latent_stats(batches)
        print_log(f'fitted latent statistics on {len(batches)} shuffled batches',
                  logger='current')
        if held_out is not None:
            outside = model.latents_outside_box(held_out)
            if outside > self.max_outside:
                print_log(f'latent statistics: {100 * outside:.1f}% of a held-out batch lies '
                          f'outside the fitted reflection box (more than '
                          f'{100 * self.max_outside:.0f}%); fit on more batches '
                          f'(FitLatentStatsHook.num_batches) or widen '
                          f'LatentNormalizer.bound_margin', logger='current',
                          level=logging.WARNING)


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Save every rank's random number generator states in each checkpoint and restore them on
    resume, so the noise, timesteps, posterior samples and condition dropout after a resume are the
    ones an uninterrupted run would have drawn.

    The states are taken when the checkpoint is written (after the iteration's step) and put back
    just before the first iteration after the resume, i.e. after the loader has been advanced past
    the batches already trained on. Data randomness drawn while loading a batch (the real-video
    dataset's clip starts and flips) is not replayed; the synthetic set and cached latents are
    deterministic per index. A resume with another number of processes keeps fresh states.
    """

    priority = 'LOW'  # after_train_iter: before the CheckpointHook (VERY_LOW) saves

    def __init__(self):
        self._interval: Optional[int] = None
        self._gathered: Optional[tuple] = None  # (iteration, states of every rank)
        self._pending: Optional[dict] = None

    def before_train(self, runner) -> None:
        self._interval = next((hook.interval for hook in runner.hooks
                               if isinstance(hook, CheckpointHook) and not hook.by_epoch), None)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        # Gathering is collective, but runner.save_checkpoint runs on rank 0 only: every rank
        # gathers here on the iterations the CheckpointHook saves at.
        saves = self.is_last_train_iter(runner) or (
            self._interval is not None and self.every_n_train_iters(runner, self._interval))
        if dist.get_world_size() > 1 and saves:
            self._gathered = (runner.iter, dist.all_gather_object(_random_state()))

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if dist.get_world_size() == 1:
            checkpoint['random_state'] = [_random_state()]
        elif self._gathered is not None and self._gathered[0] == runner.iter:
            checkpoint['random_state'] = self._gathered[1]

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        states = checkpoint.get('random_state')
        if states is None:
            return
        if len(states) != dist.get_world_size():
            print_log(f'checkpoint holds random states of {len(states)} processes, this run has '
                      f'{dist.get_world_size()}: keeping fresh states', logger='current',
                      level=logging.WARNING)
            return
        self._pending = states[dist.get_rank()]

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self._pending is not None:
            _set_random_state(self._pending)
            self._pending = None


def _random_state() -> dict:
    """torch (CPU, CUDA), numpy and python RNG states as tensors and plain values, which
    weights-only loading accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return dict(torch=torch.get_rng_state(),
                cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                numpy=dict(kind=kind, keys=torch.from_numpy(keys.astype(np.int64)), pos=int(pos),
                           has_gauss=int(has_gauss), cached=float(cached)),
                python=random.getstate())


def _set_random_state(state: dict) -> None:
    # .cpu(): a resume may map the checkpoint's tensors to the GPU; RNG states live on the CPU.
    torch.set_rng_state(state['torch'].cpu())
    if state['cuda'] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state['cuda']])
    n = state['numpy']
    np.random.set_state((n['kind'], n['keys'].cpu().numpy().astype(np.uint32), n['pos'],
                         n['has_gauss'], n['cached']))
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
