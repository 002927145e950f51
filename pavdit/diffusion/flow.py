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

``bounds`` in :meth:`~pavdit.diffusion.base.DiffusionScheduler.sample`: :class:`ReflectedFlow`
reflects every step into the box (its constructor's box when none is given) and draws the known
elements' re-noising noise from its prior on that box; :class:`RectifiedFlow` leaves its Euler path
untouched and only the returned sample is clamped into the box (by the base class).
"""
from typing import List, Optional, Tuple

import torch

from pavdit.diffusion.base import Bound, Bounds, DiffusionScheduler, Predict, check_bounds
from pavdit.diffusion.conditions import Condition, ModelFn, check_training_args, masked_mse
from pavdit.registry import DIFFUSION_SCHEDULERS

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
class RectifiedFlow(DiffusionScheduler):
    """Rectified-flow objective and Euler sampler (``bounds`` in sampling: module docstring).

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
        """Samples of the prior (the x at t = 1), ``shape``: the standard Gaussian, untruncated
        (``bounds`` is for :class:`ReflectedFlow`'s prior on the box and is not used here)."""
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

    def sampling_plan(self, num_steps: int) -> List[Tuple[float, float]]:
        """The Euler steps (t, t_next), consecutive points of :meth:`sampling_times`."""
        times = self.sampling_times(num_steps).tolist()
        return list(zip(times[:-1], times[1:]))

    def sampling_step(self, x: torch.Tensor, entry: Tuple[float, float], predict: Predict,
                      generator: Optional[torch.Generator],
                      bounds: Optional[Bounds]) -> torch.Tensor:
        """One Euler step ``x - (t - t_next) v`` from t to t_next, then :meth:`_constrain`."""
        t, t_next = entry
        x, v = predict(x, t * self.num_timesteps)
        return self._constrain(x - (t - t_next) * v, bounds)

    def _constrain(self, x: torch.Tensor, bounds: Optional[Bounds]) -> torch.Tensor:
        """What is applied to the state after every Euler step; rectified flow: nothing."""
        return x


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
        check_bounds(bounds)
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

    def _resolve_bounds(self, bounds: Optional[Bounds]) -> Bounds:
        if bounds is None:
            return self.bounds
        return check_bounds(bounds)

    def _constrain(self, x: torch.Tensor, bounds: Optional[Bounds]) -> torch.Tensor:
        """Reflect into the box (``sample`` hands its checked box, or the constructor's)."""
        return reflect(x, *(self.bounds if bounds is None else bounds))
