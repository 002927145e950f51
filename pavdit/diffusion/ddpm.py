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
"""
from typing import Callable, Optional, Tuple

import torch
from tqdm import tqdm

from pavdit.diffusion.conditions import (Condition, KnownElements, ModelFn, check_sampling_args,
                                         check_training_args, guided_prediction, masked_mse)
from pavdit.diffusion.flow import Bound
from pavdit.registry import DIFFUSION_SCHEDULERS


@DIFFUSION_SCHEDULERS.register_module()
class DDPM:
    """Epsilon-prediction diffusion with ancestral sampling.

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
        abar = self.alphas_cumprod.to(timesteps.device)[timesteps.long()]
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
            noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        steps = torch.randint(0, self.num_timesteps, (x0.shape[0],), generator=generator,
                              device=x0.device)
        timesteps = steps.float()
        pred = model_fn(self.add_noise(x0, noise, steps), timesteps, condition)
        return dict(loss=masked_mse(pred, noise, mask),
                    t_mean=timesteps.mean() / self.num_timesteps)

    @torch.no_grad()
    def sample(self, model_fn: ModelFn, noise: torch.Tensor, condition: Condition = None,
               null_condition: Condition = None, guidance_scale: float = 1.0,
               num_steps: Optional[int] = None, known: Optional[torch.Tensor] = None,
               known_mask: Optional[torch.Tensor] = None,
               generator: Optional[torch.Generator] = None, progress: bool = False,
               bounds: Optional[Tuple[Bound, Bound]] = None,
               callback: Optional[Callable[[int, torch.Tensor], None]] = None) -> torch.Tensor:
        """Denoise ``noise`` (B, ...) from step T - 1 to a sample x0 (B, ...) in noise's dtype.

        The state is kept in at least fp32; the model sees it in noise's dtype. Known elements are
        re-noised to the current step before every model call and set exactly at the end;
        ``callback(step_index, x)`` sees the state after every step. ``bounds`` is ignored.
        """
        num_steps = check_sampling_args(noise, num_steps, self.num_sampling_steps, guidance_scale)
        steps = self.sampling_timesteps(num_steps).tolist()
        abars = self.alphas_cumprod[steps].tolist() + [1.0]  # abar_prev of the last step: x0
        x = noise.to(torch.promote_types(noise.dtype, torch.float32))
        fixed = KnownElements.from_args(known, known_mask, x, generator)
        for i in tqdm(range(num_steps), desc=type(self).__name__, disable=not progress):
            timesteps = torch.full((x.shape[0],), float(steps[i]), device=x.device,
                                   dtype=torch.float32)
            if fixed is not None:
                x = fixed.paste(x, self.add_noise(fixed.value, fixed.noise, timesteps))
            eps = guided_prediction(model_fn, x.to(noise.dtype), timesteps, condition,
                                    null_condition, guidance_scale).to(x.dtype)
            x = self._step(x, eps, abars[i], abars[i + 1], generator)
            if callback is not None:
                callback(i, x)
        if fixed is not None:
            x = fixed.paste(x, fixed.value)
        return x.to(noise.dtype)

    def _step(self, x: torch.Tensor, eps: torch.Tensor, abar: float, abar_prev: float,
              generator: Optional[torch.Generator]) -> torch.Tensor:
        """One generalised DDIM step (module docstring); draws noise only when sigma > 0."""
        x0 = (x - (1 - abar) ** 0.5 * eps) / abar ** 0.5
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
