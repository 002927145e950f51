"""DDPM / DDIM: discrete-time Gaussian diffusion with epsilon prediction and linear betas.

Forward process ``x_k = sqrt(abar_k) x0 + sqrt(1 - abar_k) eps`` for integer steps k in
[0, num_timesteps); the network predicts eps and receives k (as a float). Both samplers share
training and one update rule: the generalised DDIM step from ``abar`` to the next kept step's
``abar_prev``,

    x0_hat = (x - sqrt(1 - abar) eps_hat) / sqrt(abar)
    sigma = eta * sqrt((1 - abar_prev) / (1 - abar)) * sqrt(1 - abar / abar_prev)
    x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - sigma^2) eps_hat + sigma z,

which for eta = 1 is exactly DDPM's ancestral step with the posterior variance (the "fixed small"
variance) of the chain restricted to the kept steps, i.e. improved-DDPM respacing, whose betas are
``1 - abar_k / abar_prev``. DDPM is eta = 1; DDIM defaults to eta = 0 (deterministic).

``bounds`` in sampling (a box the data lie in, e.g. PAVDiT's latent box): every step clamps
x0_hat into it and continues with the eps consistent with the clamped x0_hat,
``(x - sqrt(abar) x0_hat) / sqrt(1 - abar)`` (improved-DDPM's ``clip_denoised``; for eta = 1 the
step is then the posterior q(x_prev | x, x0_hat) of the clamped x0_hat). The last step ends at
``abar_prev = 1``, where x_prev = x0_hat, so the sample lies in the box. The prior stays the
standard Gaussian: :meth:`DDPM.draw_noise` does not use ``bounds``.
"""
from typing import List, Optional, Tuple

import torch

from pavdit.diffusion.base import Bounds, DiffusionScheduler, Predict, clamp_to_box
from pavdit.diffusion.conditions import Condition, ModelFn, check_training_args, masked_mse
from pavdit.registry import DIFFUSION_SCHEDULERS


def x0_and_eps(x: torch.Tensor, eps: torch.Tensor, alpha: float, sigma: float,
               bounds: Optional[Bounds]) -> Tuple[torch.Tensor, torch.Tensor]:
    """The x0 prediction ``(x - sigma eps) / alpha`` of the state ``x = alpha x0 + sigma eps`` and
    its eps; with ``bounds``, x0 clamped into the box and the eps ``(x - alpha x0) / sigma``
    consistent with it."""
    x0 = (x - sigma * eps) / alpha
    if bounds is None:
        return x0, eps
    x0 = clamp_to_box(x0, bounds)
    return x0, (x - alpha * x0) / sigma


@DIFFUSION_SCHEDULERS.register_module()
class DDPM(DiffusionScheduler):
    """Epsilon-prediction diffusion with ancestral sampling (``bounds``: module docstring).

    Args:
        num_timesteps: length T of the forward chain.
        beta_start, beta_end: ends of the linear beta schedule.
        num_sampling_steps: default number of sampling steps; fewer than T respaces the chain to
            evenly spaced steps from T - 1 down to 0.
    """

    eta = 1.0  # DDPM's ancestral step (see the module docstring)

    def __init__(self, num_timesteps: int = 1000, beta_start: float = 1e-4,
                 beta_end: float = 0.02, num_sampling_steps: int = 1000):
        if num_timesteps < 1:
            raise ValueError(f'num_timesteps must be >= 1, got {num_timesteps}')
        if not 0 < beta_start <= beta_end < 1:
            raise ValueError(f'need 0 < beta_start <= beta_end < 1, got {beta_start}, {beta_end}')
        self.num_timesteps = num_timesteps
        self._check_steps(num_sampling_steps)
        self.num_sampling_steps = num_sampling_steps
        # fp64: 1 - abar near k = 0 is ~1e-4 and abar near k = T - 1 is ~4e-5; fp32 cumprods drift.
        betas = torch.linspace(beta_start, beta_end, num_timesteps, dtype=torch.float64)
        self.alphas_cumprod = torch.cumprod(1 - betas, dim=0)

    def _check_steps(self, num_steps: int) -> None:
        if not 1 <= num_steps <= self.num_timesteps:
            raise ValueError(f'number of sampling steps must be in [1, {self.num_timesteps}], '
                             f'got {num_steps}')

    def sampling_timesteps(self, num_steps: int) -> torch.Tensor:
        """The kept steps, (num_steps,) int64, evenly spaced from T - 1 down to 0."""
        self._check_steps(num_steps)
        # Spacing (T - 1) / (num_steps - 1) >= 1, so rounding never merges two steps.
        steps = torch.linspace(self.num_timesteps - 1, 0, num_steps, dtype=torch.float64)
        return steps.round().long()

    def draw_noise(self, shape, bounds=None, generator: Optional[torch.Generator] = None,
                   device=None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Samples of the prior, ``shape``: the standard Gaussian (``bounds`` has no meaning for
        a diffusion whose terminal distribution is Gaussian and is not used)."""
        return torch.randn(shape, generator=generator, device=device, dtype=dtype)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor,
                  timesteps: torch.Tensor) -> torch.Tensor:
        """``sqrt(abar_k) x0 + sqrt(1 - abar_k) noise``; x0, noise: (B, ...), timesteps: (B,)
        integer-valued steps k."""
        return self._mix(x0, noise, self.alphas_cumprod.to(timesteps.device)[timesteps.long()])

    @staticmethod
    def _mix(x0: torch.Tensor, noise: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
        """``sqrt(abar) x0 + sqrt(1 - abar) noise`` with abar (B,) fp64."""
        shape = (-1,) + (1,) * (x0.dim() - 1)  # (B,) -> (B, 1, ..., 1)
        signal = abar.sqrt().to(x0.dtype).reshape(shape)
        noise_level = (1 - abar).sqrt().to(x0.dtype).reshape(shape)
        return signal * x0 + noise_level * noise

    def training_loss(self, model_fn: ModelFn, x0: torch.Tensor, condition: Condition = None,
                      mask: Optional[torch.Tensor] = None, noise: Optional[torch.Tensor] = None,
                      generator: Optional[torch.Generator] = None) -> dict:
        """Epsilon-matching loss on clean samples x0 (B, ...), steps uniform in [0, T).

        Returns ``loss`` (masked MSE between the prediction and ``noise``) and ``t_mean`` (the
        mean step as a fraction of T).
        """
        check_training_args(x0, noise)
        if noise is None:
            noise = self.draw_noise(x0.shape, None, generator, x0.device, x0.dtype)
        steps = torch.randint(0, self.num_timesteps, (x0.shape[0],), generator=generator,
                              device=x0.device)
        timesteps = steps.float()
        pred = model_fn(self.add_noise(x0, noise, steps), timesteps, condition)
        return dict(loss=masked_mse(pred, noise, mask),
                    t_mean=timesteps.mean() / self.num_timesteps)

    def sampling_plan(self, num_steps: int) -> List[Tuple[float, float, float]]:
        """The steps (k, abar_k, abar_prev): k from :meth:`sampling_timesteps`, abar_prev that of
        the next kept step (1 after the last: x0)."""
        steps = self.sampling_timesteps(num_steps).tolist()
        abars = self.alphas_cumprod[steps].tolist() + [1.0]
        return [(float(k), abars[i], abars[i + 1]) for i, k in enumerate(steps)]

    def sampling_step(self, x: torch.Tensor, entry: Tuple[float, float, float],
                      predict: Predict, generator: Optional[torch.Generator],
                      bounds: Optional[Bounds]) -> torch.Tensor:
        """One generalised DDIM step (module docstring) from step k."""
        step, abar, abar_prev = entry
        x, eps = predict(x, step)
        return self._step(x, eps, abar, abar_prev, generator, bounds)

    def _step(self, x: torch.Tensor, eps: torch.Tensor, abar: float, abar_prev: float,
              generator: Optional[torch.Generator],
              bounds: Optional[Bounds] = None) -> torch.Tensor:
        """One generalised DDIM step (module docstring); draws noise only when sigma > 0."""
        x0, eps = x0_and_eps(x, eps, abar ** 0.5, (1 - abar) ** 0.5, bounds)
        sigma = self.eta * ((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)) ** 0.5
        # max(): for eta = 1 the difference is a rounding error away from 0 at the last steps.
        x = abar_prev ** 0.5 * x0 + max(1 - abar_prev - sigma ** 2, 0.0) ** 0.5 * eps
        if sigma > 0:
            x = x + sigma * torch.randn(x.shape, generator=generator, device=x.device,
                                        dtype=x.dtype)
        return x


@DIFFUSION_SCHEDULERS.register_module()
class DDIM(DDPM):
    """DDPM training with the DDIM sampler (Song et al., 2021).

    Args:
        eta: 0 = deterministic DDIM, 1 = DDPM's ancestral step; values between interpolate.
        num_sampling_steps: default number of sampling steps.
        **kwargs: as :class:`DDPM`.
    """

    def __init__(self, num_sampling_steps: int = 50, eta: float = 0.0, **kwargs):
        super().__init__(num_sampling_steps=num_sampling_steps, **kwargs)
        if eta < 0:
            raise ValueError(f'eta must be >= 0, got {eta}')
        self.eta = eta
