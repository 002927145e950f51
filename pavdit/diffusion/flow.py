"""Rectified flow (Open-Sora 1.0 "rflow") and reflected flow (Xie et al., ICML 2024).

Forward process ``x_t = (1 - t) x0 + t eps`` with t in [0, 1]; the network predicts the velocity
``v = eps - x0`` and receives ``t * num_timesteps``. Sampling integrates ``dx/dt = v`` from t = 1
(pure noise) to t = 0 with Euler steps. An optional shift ``t' = shift t / (1 + (shift - 1) t)``
moves the training and sampling times toward the noise end for ``shift > 1``.

:class:`ReflectedFlow` follows reflected flow matching (Xie et al., ICML 2024; tyuxie/RFM): the
prior is the standard Gaussian *truncated to the box* [low, high] (for training noise and for the
sampler's starting point alike), the path and velocity target are rectified flow's, and the
sampler mirrors the state back into the box after every Euler step, so samples never leave the
range the latents occupy. ``prior='normal'`` keeps the untruncated Gaussian (reflection only in
sampling); docs/generation.md compares the two on a known distribution.
"""
from typing import Callable, Optional, Tuple, Union

import torch
from tqdm import tqdm

from pavdit.diffusion.conditions import (Condition, KnownElements, ModelFn, check_sampling_args,
                                         check_training_args, guided_prediction, masked_mse)
from pavdit.registry import DIFFUSION_SCHEDULERS

Bound = Union[float, torch.Tensor]
TIMESTEP_SAMPLINGS = ('uniform', 'logit_normal')
PRIORS = ('truncated_normal', 'normal')


def truncated_normal(shape, low: Bound, high: Bound, generator: Optional[torch.Generator] = None,
                     device=None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normal samples conditioned on [low, high] (bounds broadcast to ``shape``), by
    inverting the normal CDF in float64: x = Phi^-1(Phi(low) + u (Phi(high) - Phi(low)))."""
    low = torch.as_tensor(low, dtype=torch.float64, device=device)
    high = torch.as_tensor(high, dtype=torch.float64, device=device)
    u = torch.rand(shape, generator=generator, device=device, dtype=torch.float64)
    cdf_low, cdf_high = torch.special.ndtr(low), torch.special.ndtr(high)
    x = torch.special.ndtri(cdf_low + u * (cdf_high - cdf_low))
    return torch.minimum(torch.maximum(x, low), high).to(dtype)  # rounding at the tails


def reflect(x: torch.Tensor, low: Bound, high: Bound) -> torch.Tensor:
    """Mirror the elements of x outside [low, high] back into it; bounds broadcast to x.

    An element that overshoots by more than the box width bounces between the walls until it
    lands inside (reflection is periodic with period 2 (high - low)). Elements already inside are
    returned bit-for-bit unchanged.
    """
    low, high = torch.as_tensor(low).to(x), torch.as_tensor(high).to(x)
    width = high - low
    folded = torch.remainder(x - low, 2 * width)  # in [0, 2 width)
    folded = low + torch.where(folded > width, 2 * width - folded, folded)
    # Rounding in ``low + folded`` can land an ulp outside; the box must hold exactly.
    folded = torch.clamp(folded, low, high)
    return torch.where((x < low) | (x > high), folded, x)


@DIFFUSION_SCHEDULERS.register_module()
class RectifiedFlow:
    """Rectified-flow objective and Euler sampler.

    Args:
        num_timesteps: scale of the time the network sees (``t * num_timesteps``).
        num_sampling_steps: default number of Euler steps.
        timestep_sampling: training-time distribution of t, ``'uniform'`` on [0, 1] or
            ``'logit_normal'`` (``sigmoid(N(logit_mean, logit_std^2))``).
        logit_mean, logit_std: parameters of the logit-normal.
        shift: timestep shift for training and sampling; 1 = none.
    """

    def __init__(self, num_timesteps: int = 1000, num_sampling_steps: int = 30,
                 timestep_sampling: str = 'uniform', logit_mean: float = 0.0,
                 logit_std: float = 1.0, shift: float = 1.0):
        if num_timesteps < 1 or num_sampling_steps < 1:
            raise ValueError(f'num_timesteps ({num_timesteps}) and num_sampling_steps '
                             f'({num_sampling_steps}) must be >= 1')
        if timestep_sampling not in TIMESTEP_SAMPLINGS:
            raise ValueError(f'unknown timestep_sampling {timestep_sampling!r}; '
                             f'choose one of {TIMESTEP_SAMPLINGS}')
        if logit_std <= 0 or shift <= 0:
            raise ValueError(f'logit_std ({logit_std}) and shift ({shift}) must be > 0')
        self.num_timesteps = num_timesteps
        self.num_sampling_steps = num_sampling_steps
        self.timestep_sampling = timestep_sampling
        self.logit_mean = logit_mean
        self.logit_std = logit_std
        self.shift = shift

    def shift_times(self, t: torch.Tensor) -> torch.Tensor:
        """``shift t / (1 + (shift - 1) t)``: 0 and 1 stay, the rest move toward 1 if shift > 1."""
        return self.shift * t / (1 + (self.shift - 1) * t)

    def sample_times(self, batch_size: int, device: Optional[torch.device] = None,
                     generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Training times t in [0, 1], (batch_size,) fp32, drawn and then shifted."""
        if self.timestep_sampling == 'uniform':
            t = torch.rand(batch_size, generator=generator, device=device)
        else:
            z = torch.randn(batch_size, generator=generator, device=device)
            t = torch.sigmoid(self.logit_mean + self.logit_std * z)
        return self.shift_times(t)

    def sampling_times(self, num_steps: int) -> torch.Tensor:
        """The Euler grid, (num_steps + 1,) fp64, shifted, from t = 1 down to t = 0."""
        if num_steps < 1:
            raise ValueError(f'num_steps must be >= 1, got {num_steps}')
        return self.shift_times(torch.linspace(1.0, 0.0, num_steps + 1, dtype=torch.float64))

    def draw_noise(self, shape, bounds: Optional[Tuple[Bound, Bound]] = None,
                   generator: Optional[torch.Generator] = None, device=None,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Samples of the prior (the x at t = 1), ``shape``: the standard Gaussian. ``bounds`` is
        used by :class:`ReflectedFlow` only."""
        return torch.randn(shape, generator=generator, device=device, dtype=dtype)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor,
                  timesteps: torch.Tensor) -> torch.Tensor:
        """``x_t = (1 - t) x0 + t noise``; x0, noise: (B, ...), timesteps: (B,) in model units."""
        t = (timesteps / self.num_timesteps).to(x0.dtype).reshape(-1, *([1] * (x0.dim() - 1)))
        return (1 - t) * x0 + t * noise

    def training_loss(self, model_fn: ModelFn, x0: torch.Tensor, condition: Condition = None,
                      mask: Optional[torch.Tensor] = None, noise: Optional[torch.Tensor] = None,
                      generator: Optional[torch.Generator] = None,
                      bounds: Optional[Tuple[Bound, Bound]] = None) -> dict:
        """Velocity-matching loss on clean samples x0 (B, ...); ``noise`` defaults to
        :meth:`draw_noise` (with ``bounds``).

        Returns ``loss`` (masked MSE between the prediction and ``noise - x0``) and ``t_mean``.
        """
        check_training_args(x0, noise)
        if noise is None:
            noise = self.draw_noise(x0.shape, bounds, generator, x0.device, x0.dtype)
        t = self.sample_times(x0.shape[0], x0.device, generator)
        timesteps = t * self.num_timesteps
        pred = model_fn(self.add_noise(x0, noise, timesteps), timesteps, condition)
        return dict(loss=masked_mse(pred, noise - x0, mask), t_mean=t.mean())

    def _step_constraint(self, bounds: Optional[Tuple[Bound, Bound]]
                         ) -> Callable[[torch.Tensor], torch.Tensor]:
        """What is applied to the state after every Euler step; rectified flow: nothing."""
        return lambda x: x

    @torch.no_grad()
    def sample(self, model_fn: ModelFn, noise: torch.Tensor, condition: Condition = None,
               null_condition: Condition = None, guidance_scale: float = 1.0,
               num_steps: Optional[int] = None, known: Optional[torch.Tensor] = None,
               known_mask: Optional[torch.Tensor] = None,
               generator: Optional[torch.Generator] = None, progress: bool = False,
               bounds: Optional[Tuple[Bound, Bound]] = None,
               callback: Optional[Callable[[int, torch.Tensor], None]] = None) -> torch.Tensor:
        """Integrate from ``noise`` (B, ...) at t = 1 to a sample x0 (B, ...) in noise's dtype.

        The state is kept in at least fp32; the model sees it in noise's dtype. Known elements are
        re-noised to the current t (with noise from :meth:`draw_noise`) before every model call
        and set exactly at the end; ``callback(step_index, x)`` sees the state after every step.
        ``bounds`` is used by :class:`ReflectedFlow` only.
        """
        num_steps = check_sampling_args(noise, num_steps, self.num_sampling_steps, guidance_scale)
        times = self.sampling_times(num_steps).tolist()
        constrain = self._step_constraint(bounds)
        x = noise.to(torch.promote_types(noise.dtype, torch.float32))
        fixed = KnownElements.from_args(known, known_mask, x, generator, lambda: self.draw_noise(
            x.shape, bounds, generator, x.device, x.dtype))
        for i in tqdm(range(len(times) - 1), desc=type(self).__name__, disable=not progress):
            timesteps = torch.full((x.shape[0],), times[i] * self.num_timesteps,
                                   device=x.device, dtype=torch.float32)
            if fixed is not None:
                x = fixed.paste(x, self.add_noise(fixed.value, fixed.noise, timesteps))
            v = guided_prediction(model_fn, x.to(noise.dtype), timesteps, condition,
                                  null_condition, guidance_scale).to(x.dtype)
            x = constrain(x - (times[i] - times[i + 1]) * v)
            if callback is not None:
                callback(i, x)
        if fixed is not None:
            x = fixed.paste(x, fixed.value)
        return x.to(noise.dtype)


@DIFFUSION_SCHEDULERS.register_module()
class ReflectedFlow(RectifiedFlow):
    """Reflected flow matching: a prior inside a box, and a sampler that reflects the state into
    the box after every Euler step.

    Args:
        bounds: default (low, high) box, scalars or tensors broadcastable to the sample (e.g.
            per-channel bounds from latent statistics); a ``bounds`` argument overrides it.
        prior: ``'truncated_normal'`` (the reference method: training noise and the sampler's
            start drawn from N(0, 1) truncated to the box) or ``'normal'`` (untruncated; only the
            sampler reflects).
        **kwargs: as :class:`RectifiedFlow`.
    """

    def __init__(self, bounds: Tuple[Bound, Bound] = (-3.0, 3.0),
                 prior: str = 'truncated_normal', **kwargs):
        super().__init__(**kwargs)
        if prior not in PRIORS:
            raise ValueError(f'unknown prior {prior!r}; choose one of {PRIORS}')
        self._check_bounds(bounds)
        self.bounds, self.prior = bounds, prior

    def draw_noise(self, shape, bounds: Optional[Tuple[Bound, Bound]] = None,
                   generator: Optional[torch.Generator] = None, device=None,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Prior samples, ``shape``: N(0, 1) truncated to ``bounds`` (default: the box given at
        construction), or untruncated when ``prior='normal'``."""
        if self.prior == 'normal':
            return super().draw_noise(shape, None, generator, device, dtype)
        low, high = self._resolve_bounds(bounds)
        return truncated_normal(shape, low, high, generator, device, dtype)

    def _resolve_bounds(self, bounds: Optional[Tuple[Bound, Bound]]) -> Tuple[Bound, Bound]:
        if bounds is None:
            return self.bounds
        self._check_bounds(bounds)
        return bounds

    @staticmethod
    def _check_bounds(bounds: Tuple[Bound, Bound]) -> None:
        low, high = bounds
        if not bool(torch.all(torch.as_tensor(low) < torch.as_tensor(high))):
            raise ValueError(f'reflection bounds need low < high everywhere, got {bounds}')

    def _step_constraint(self, bounds: Optional[Tuple[Bound, Bound]]
                         ) -> Callable[[torch.Tensor], torch.Tensor]:
        bounds = self._resolve_bounds(bounds)
        return lambda x: reflect(x, *bounds)
