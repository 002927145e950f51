"""The interface every diffusion scheduler shares, with its sampling loop written once.

A scheduler is a forward process, the training objective on it and a sampler. A subclass of
:class:`DiffusionScheduler` implements only what is its own:

- ``draw_noise(shape, bounds, generator, device, dtype)``: samples of the prior (the noise end);
- ``add_noise(x0, noise, timesteps)``: the forward process at times in model units;
- ``training_loss(model_fn, x0, condition, mask, noise, generator, ...)``: a dict with ``loss``;
- ``sampling_plan(num_steps)``: one entry per sampler step (what the progress bar counts and the
  callback indexes), checking any limit of its own on ``num_steps``;
- ``sampling_step(x, entry, predict, generator, bounds)``: the update of one entry, calling
  ``predict(x, timestep)`` for each model evaluation.

:meth:`DiffusionScheduler.sample` owns the rest, identically for every scheduler: argument
checks, the state's dtype, classifier-free guidance, replacement inpainting of known elements
(``predict`` re-noises them to its time with ``add_noise`` and one fixed draw of ``draw_noise``),
the progress bar, the callback, the box ``bounds`` for the returned sample, and setting the known
elements exactly at the end.
"""
import abc
from typing import Any, Callable, Optional, Sequence, Tuple, Union

import torch
from tqdm import tqdm

from pavdit.diffusion.conditions import (Condition, KnownElements, ModelFn, check_sampling_args,
                                         guided_prediction)
from pavdit.utils.validation import check_tensor, describe

Bound = Union[float, torch.Tensor]
Bounds = Tuple[Bound, Bound]
# predict(x, timestep) -> (x with its known elements replaced by their values noised to
# ``timestep``, the guided model output there in x's dtype); timestep: a float in model units.
Predict = Callable[[torch.Tensor, float], Tuple[torch.Tensor, torch.Tensor]]


def check_bounds(bounds, name: str = 'bounds', shape: Optional[Sequence[int]] = None
                 ) -> Bounds:
    """Return ``bounds`` if it is a pair (low, high) of real numbers or tensors with low < high
    everywhere (and, given ``shape``, both broadcastable to it); else TypeError / ValueError
    naming ``name``. Reads the values (one synchronisation on a GPU)."""
    if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
        raise TypeError(f'{name} must be a pair (low, high), got {describe(bounds)}')
    tensors = []
    for side, value in zip(('low', 'high'), bounds):
        try:
            tensor = torch.as_tensor(value)
        except (TypeError, ValueError, RuntimeError):
            tensor = None
        if (tensor is None or isinstance(value, bool) or tensor.dtype == torch.bool
                or tensor.is_complex()):
            raise TypeError(f'{name}: {side} must be a real number or tensor, got '
                            f'{describe(value)}')
        tensors.append(tensor)
    low, high = tensors
    if shape is not None:
        shape = tuple(shape)
        try:
            fits = torch.broadcast_shapes(low.shape, high.shape, shape) == shape
        except RuntimeError:
            fits = False
        if not fits:
            raise ValueError(f'{name}: low {tuple(low.shape)} and high {tuple(high.shape)} must '
                             f'broadcast to the sample shape {shape}')
    if not bool(torch.all(low.to(high.device) < high)):
        raise ValueError(f'{name} need low < high everywhere, got {bounds}')
    return bounds


def clamp_to_box(x: torch.Tensor, bounds: Bounds) -> torch.Tensor:
    """``x`` with every element clamped into [low, high] (bounds broadcast to x); elements
    already inside are returned bit-for-bit unchanged."""
    low, high = (torch.as_tensor(b).to(x) for b in bounds)
    return torch.minimum(torch.maximum(x, low), high)


class DiffusionScheduler(abc.ABC):
    """Base class of the schedulers in ``DIFFUSION_SCHEDULERS`` (module docstring).

    Subclasses set ``num_sampling_steps`` (the default of :meth:`sample`'s ``num_steps``) and
    usually ``num_timesteps`` (the scale of the time the network sees), and implement the abstract
    methods. ``bounds`` is the box :meth:`sample` uses when given none: ``None`` here (no box),
    :class:`~pavdit.diffusion.flow.ReflectedFlow` sets its own.
    """

    num_sampling_steps: int
    bounds: Optional[Bounds] = None

    # -------------------------------------------------------------- what a scheduler implements

    @abc.abstractmethod
    def draw_noise(self, shape, bounds: Optional[Bounds] = None,
                   generator: Optional[torch.Generator] = None, device=None,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Samples of the prior, ``shape``. ``bounds`` matters only to a prior defined on the box
        (:class:`~pavdit.diffusion.flow.ReflectedFlow`); an unbounded prior does not use it."""

    @abc.abstractmethod
    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor,
                  timesteps: torch.Tensor) -> torch.Tensor:
        """The forward process: x0 and noise (B, ...) at ``timesteps`` (B,) in model units."""

    @abc.abstractmethod
    def training_loss(self, model_fn: ModelFn, x0: torch.Tensor, condition: Condition = None,
                      mask: Optional[torch.Tensor] = None, noise: Optional[torch.Tensor] = None,
                      generator: Optional[torch.Generator] = None) -> dict:
        """The training objective on clean samples x0 (B, ...): a dict with ``loss`` (a scalar)
        and ``t_mean`` (the mean time as a fraction of the chain)."""

    @abc.abstractmethod
    def sampling_plan(self, num_steps: int) -> Sequence[Any]:
        """One entry per sampler step for ``num_steps`` (an int >= 1, checked by :meth:`sample`;
        raise ValueError for any further limit), each what :meth:`sampling_step` needs."""

    @abc.abstractmethod
    def sampling_step(self, x: torch.Tensor, entry: Any, predict: Predict,
                      generator: Optional[torch.Generator],
                      bounds: Optional[Bounds]) -> torch.Tensor:
        """The state after the step ``entry`` of :meth:`sampling_plan`, from the state ``x``
        (B, ...) in at least fp32. Call ``x, out = predict(x, timestep)`` for each model
        evaluation (pass the state the model should see; continue from the returned one, whose
        known elements are set). ``generator`` is for any noise the step draws; ``bounds`` is the
        box (or None) for a step that treats it (clamping a prediction, reflecting the state);
        :meth:`sample` clamps the final state into it in any case."""

    # ----------------------------------------------------------------------- the shared sampler

    @torch.no_grad()
    def sample(self, model_fn: ModelFn, noise: torch.Tensor, condition: Condition = None,
               null_condition: Condition = None, guidance_scale: float = 1.0,
               num_steps: Optional[int] = None, known: Optional[torch.Tensor] = None,
               known_mask: Optional[torch.Tensor] = None,
               generator: Optional[torch.Generator] = None, progress: bool = False,
               bounds: Optional[Bounds] = None,
               callback: Optional[Callable[[int, torch.Tensor], None]] = None) -> torch.Tensor:
        """Sample from ``noise`` (B, ...), the prior's draw at the noise end, to x0 (B, ...) in
        noise's dtype.

        Args:
            model_fn: ``model_fn(x, timesteps, condition)``; x in noise's dtype, timesteps (B,)
                fp32 in model units.
            condition, null_condition, guidance_scale: classifier-free guidance,
                ``uncond + scale * (cond - uncond)`` from one call on the doubled batch; scale 1
                or no null condition is exactly unguided.
            num_steps: sampler steps (None: ``num_sampling_steps``), an int >= 1.
            known, known_mask: both or neither, each broadcastable to noise's shape; elements
                where the mask is nonzero are known (inpainting, audio-to-video). Before every
                model call they are replaced by their values noised to that call's time (one
                fixed noise draw for the whole trajectory), and the result holds them exactly.
            generator: torch.Generator for every random draw of the sampler.
            progress: show a progress bar (a bool).
            bounds: (low, high) box, numbers or tensors broadcastable to noise's shape, low < high;
                None: the scheduler's default (``self.bounds``; no box for most). The returned
                sample's unknown elements are clamped into it; what each step does with it is
                the scheduler's (see its docstring).
            callback: ``callback(step_index, x)`` after every step of the plan.

        Raises:
            TypeError / ValueError: naming the malformed argument.
        """
        num_steps, bounds = self.check_sample_args(
            model_fn, noise, guidance_scale, num_steps, known, known_mask, generator, progress,
            bounds, callback)
        plan = self.sampling_plan(num_steps)
        x = noise.to(torch.promote_types(noise.dtype, torch.float32))
        fixed = KnownElements.from_args(known, known_mask, x, generator, lambda: self.draw_noise(
            x.shape, bounds, generator, x.device, x.dtype))
        predict = self._predictor(model_fn, noise.dtype, condition, null_condition,
                                  guidance_scale, fixed)
        for index, entry in enumerate(tqdm(plan, desc=type(self).__name__,
                                           disable=not progress)):
            x = self.sampling_step(x, entry, predict, generator, bounds)
            if callback is not None:
                callback(index, x)
        if bounds is not None:
            x = clamp_to_box(x, bounds)
        if fixed is not None:
            x = fixed.paste(x, fixed.value)
        return x.to(noise.dtype)

    def check_sample_args(self, model_fn, noise, guidance_scale, num_steps, known, known_mask,
                          generator, progress, bounds, callback
                          ) -> Tuple[int, Optional[Bounds]]:
        """Validate :meth:`sample`'s arguments; return the number of steps and the box to use
        (``bounds``, or the scheduler's default). Raises TypeError / ValueError naming the
        argument."""
        if not callable(model_fn):
            raise TypeError(f'model_fn must be callable as model_fn(x, timesteps, condition), '
                            f'got {describe(model_fn)}')
        num_steps = check_sampling_args(noise, num_steps, self.num_sampling_steps,
                                        guidance_scale)
        if (known is None) != (known_mask is None):
            raise ValueError('known and known_mask go together: pass both or neither')
        if known is not None:
            check_tensor(known, 'known', dtype='real', allow_empty=True)
            check_tensor(known_mask, 'known_mask', dtype=None, allow_empty=True)
            for name, value in (('known', known), ('known_mask', known_mask)):
                try:
                    fits = torch.broadcast_shapes(value.shape, noise.shape) == noise.shape
                except RuntimeError:
                    fits = False
                if not fits:
                    raise ValueError(f'{name} {tuple(value.shape)} must broadcast to the sample '
                                     f'shape {tuple(noise.shape)} (that of noise)')
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f'generator must be a torch.Generator or None, got '
                            f'{describe(generator)}')
        if not isinstance(progress, bool):
            raise TypeError(f'progress must be a bool (show a progress bar), got '
                            f'{describe(progress)}')
        if callback is not None and not callable(callback):
            raise TypeError(f'callback must be callable as callback(step_index, x) or None, got '
                            f'{describe(callback)}')
        if bounds is None:
            bounds = self.bounds
        if bounds is not None:
            check_bounds(bounds, 'bounds', noise.shape)
        return num_steps, bounds

    def _predictor(self, model_fn: ModelFn, dtype: torch.dtype, condition: Condition,
                   null_condition: Condition, guidance_scale: float,
                   fixed: Optional[KnownElements]) -> Predict:
        """The ``predict`` handed to :meth:`sampling_step` (see ``Predict``)."""
        def predict(x: torch.Tensor, timestep: float) -> Tuple[torch.Tensor, torch.Tensor]:
            timesteps = torch.full((x.shape[0],), timestep, device=x.device, dtype=torch.float32)
            if fixed is not None:
                x = fixed.paste(x, self.add_noise(fixed.value, fixed.noise, timesteps))
            out = guided_prediction(model_fn, x.to(dtype), timesteps, condition, null_condition,
                                    guidance_scale)
            return x, out.to(x.dtype)
        return predict
