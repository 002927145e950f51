"""DPM-Solver (Lu et al., NeurIPS 2022) for epsilon-prediction DDPMs: the singlestep
"DPM-Solver-fast" that MM-Diffusion samples with (order 3, 20 steps, logSNR-uniform time steps,
the noise-prediction form, no final denoising step).

Training is DDPM's (this class subclasses :class:`~pavdit.diffusion.ddpm.DDPM`); only sampling
changes. The discrete chain k = 0 .. N - 1 is read as a continuous-time VP diffusion the way the
DPM-Solver authors do for discrete models:

- time ``t_k = (k + 1) / N`` and ``log alpha(t_k) = 0.5 log abar_k``, linearly interpolated in t
  between the grid points (so ``log abar`` is linear in the step between integers);
- ``sigma(t) = sqrt(1 - alpha(t)^2)`` and the half log-SNR ``lambda(t) = log alpha - log sigma``;
- the model is called at the (generally fractional) step ``k = N t - 1``, as a float, like the
  other schedulers. (MM-Diffusion's copy of the solver truncates it to an integer; upstream
  DPM-Solver does not.)

The ODE is solved from t = 1 (k = N - 1) to t = 1 / N (k = 0) on ``num_steps + 1`` times spaced
uniformly in lambda (``skip_type='logSNR'``) or in t (``'time_uniform'``). ``num_steps`` is the
number of model evaluations (NFE): for ``order = 3`` it is spent as K = num_steps // 3 + 1 steps,
[3] * (K - 2) + [2, 1] when num_steps % 3 == 0, [3] * (K - 1) + [1] when it is 1 and
[3] * (K - 1) + [2] when it is 2 (20 NFE = six third-order steps and one second-order step); a
step of order m spans m intervals of the time grid, whose inner points are its intermediate
times. With h = lambda_t - lambda_s, r_i the inner points' fractions of h, and eps_s the
prediction at (x_s, s):

- order 1 (= DDIM): ``x_t = alpha_t / alpha_s x_s - sigma_t (e^h - 1) eps_s``
- order 2: ``u = alpha_s1 / alpha_s x_s - sigma_s1 (e^{r1 h} - 1) eps_s``, then
  ``x_t = alpha_t / alpha_s x_s - sigma_t (e^h - 1) (eps_s + (eps(u, s1) - eps_s) / (2 r1))``
- order 3: ``u1`` as above; ``u2 = alpha_s2 / alpha_s x_s - sigma_s2 (e^{r2 h} - 1) eps_s
  - sigma_s2 r2 / r1 ((e^{r2 h} - 1) / (r2 h) - 1) D1`` with ``D1 = eps(u1, s1) - eps_s``;
  ``x_t = alpha_t / alpha_s x_s - sigma_t (e^h - 1) eps_s - sigma_t / r2 ((e^h - 1) / h - 1) D2``
  with ``D2 = eps(u2, s2) - eps_s``.

All schedule arithmetic is in fp64 Python floats; the state is kept in at least fp32.
"""
import math
from typing import Callable, List, Optional, Tuple

import torch
from tqdm import tqdm

from pavdit.diffusion.conditions import (Condition, ModelFn, check_sampling_args,
                                         guided_prediction)
from pavdit.diffusion.ddpm import DDPM
from pavdit.diffusion.flow import Bound
from pavdit.registry import DIFFUSION_SCHEDULERS

SKIP_TYPES = ('logSNR', 'time_uniform')


def _interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear f(x) through (xp, fp), xp increasing, extended linearly past its ends."""
    idx = torch.searchsorted(xp, x).clamp(1, len(xp) - 1)
    x0, x1, f0, f1 = xp[idx - 1], xp[idx], fp[idx - 1], fp[idx]
    return f0 + (x - x0) * (f1 - f0) / (x1 - x0)


@DIFFUSION_SCHEDULERS.register_module()
class DPMSolver(DDPM):
    """DDPM training with the singlestep DPM-Solver sampler (module docstring).

    Args:
        num_sampling_steps: default number of model evaluations per sample (NFE).
        order: highest solver order, 1, 2 or 3 (1 is DDIM on the logSNR grid).
        skip_type: ``'logSNR'`` (uniform in lambda, MM-Diffusion's choice) or ``'time_uniform'``.
        **kwargs: as :class:`DDPM` (num_timesteps, beta_start, beta_end).
    """

    eta = 0.0  # deterministic

    def __init__(self, num_sampling_steps: int = 20, order: int = 3, skip_type: str = 'logSNR',
                 **kwargs):
        super().__init__(num_sampling_steps=num_sampling_steps, **kwargs)
        if order not in (1, 2, 3):
            raise ValueError(f'DPM-Solver order must be 1, 2 or 3, got {order}')
        if skip_type not in SKIP_TYPES:
            raise ValueError(f'unknown skip_type {skip_type!r}; choose from {SKIP_TYPES}')
        if self.num_timesteps < 2:
            raise ValueError('DPM-Solver needs num_timesteps >= 2')
        self.order = order
        self.skip_type = skip_type
        # Rebuilt on the CPU explicitly, so a model constructed under ``torch.device('meta')``
        # still gets a usable schedule.
        betas = torch.linspace(kwargs.get('beta_start', 1e-4), kwargs.get('beta_end', 0.02),
                               self.num_timesteps, dtype=torch.float64, device='cpu')
        self.alphas_cumprod = torch.cumprod(1 - betas, dim=0)
        n = self.num_timesteps
        self._t_grid = torch.arange(1, n + 1, dtype=torch.float64, device='cpu') / n
        self._log_alpha_grid = 0.5 * torch.log(self.alphas_cumprod)

    # ------------------------------------------------------------------ continuous-time schedule

    def _log_alpha(self, t: torch.Tensor) -> torch.Tensor:
        return _interp(t, self._t_grid, self._log_alpha_grid)

    def _lambda(self, t: torch.Tensor) -> torch.Tensor:
        log_alpha = self._log_alpha(t)
        return log_alpha - 0.5 * torch.log(-torch.expm1(2 * log_alpha))

    def _inverse_lambda(self, lam: torch.Tensor) -> torch.Tensor:
        log_alpha = -0.5 * torch.logaddexp(torch.zeros_like(lam), -2 * lam)
        # log alpha decreases with t: interpolate on the reversed (increasing) grid.
        return _interp(log_alpha, self._log_alpha_grid.flip(0), self._t_grid.flip(0))

    def alphas_cumprod_at(self, timesteps: torch.Tensor) -> torch.Tensor:
        """abar at model steps k (float, possibly fractional) on the solver's continuous schedule
        (``log abar`` linear between integer steps); equals ``alphas_cumprod[k]`` at integers."""
        t = (timesteps.detach().to('cpu', torch.float64) + 1) / self.num_timesteps
        return torch.exp(2 * self._log_alpha(t)).to(timesteps.device)

    def solver_times(self, num_steps: int) -> torch.Tensor:
        """The ``num_steps + 1`` continuous times t from 1 down to 1 / N (fp64)."""
        self._check_steps(num_steps)
        t_start, t_end = 1.0, 1.0 / self.num_timesteps
        if self.skip_type == 'time_uniform':
            return torch.linspace(t_start, t_end, num_steps + 1, dtype=torch.float64)
        ends = self._lambda(torch.tensor([t_start, t_end], dtype=torch.float64))
        times = self._inverse_lambda(torch.linspace(ends[0].item(), ends[1].item(),
                                                    num_steps + 1, dtype=torch.float64))
        times[0], times[-1] = t_start, t_end  # exact ends despite the round trip
        return times

    def solver_orders(self, num_steps: int) -> List[int]:
        """Order of each step so that the orders sum to ``num_steps`` (module docstring)."""
        self._check_steps(num_steps)
        order = min(self.order, num_steps)
        if order == 3:
            k = num_steps // 3 + 1
            tail = {0: [2, 1], 1: [1], 2: [2]}[num_steps % 3]
            return [3] * (k - 1 - (num_steps % 3 == 0)) + tail
        if order == 2:
            return [2] * (num_steps // 2) + [1] * (num_steps % 2)
        return [1] * num_steps

    def model_timesteps(self, num_steps: int) -> torch.Tensor:
        """The model steps k (fp64, descending, fractional) at which sampling evaluates the
        model, one per NFE: each step's start and its inner points."""
        times = self.solver_times(num_steps)
        starts, i = [], 0
        for order in self.solver_orders(num_steps):
            starts.extend(range(i, i + order))
            i += order
        return times[starts] * self.num_timesteps - 1

    # ------------------------------------------------------------------------------- sampling

    @torch.no_grad()
    def sample(self, model_fn: ModelFn, noise: torch.Tensor, condition: Condition = None,
               null_condition: Condition = None, guidance_scale: float = 1.0,
               num_steps: Optional[int] = None, known: Optional[torch.Tensor] = None,
               known_mask: Optional[torch.Tensor] = None,
               generator: Optional[torch.Generator] = None, progress: bool = False,
               bounds: Optional[Tuple[Bound, Bound]] = None,
               callback: Optional[Callable[[int, torch.Tensor], None]] = None) -> torch.Tensor:
        """Solve the diffusion ODE from ``noise`` (B, ...) at k = N - 1 to a sample at k = 0, in
        noise's dtype, with ``num_steps`` model evaluations.

        The solver is deterministic (``generator`` is unused); ``bounds`` is ignored;
        ``callback(step_index, x)`` sees the state after every solver step (one per entry of
        :meth:`solver_orders`, not per evaluation). Known elements (inpainting) are not
        supported.
        """
        if known is not None or known_mask is not None:
            raise NotImplementedError(
                'DPMSolver does not support known elements (known / known_mask); use DDPM or '
                'DDIM for inpainting-style sampling')
        num_steps = check_sampling_args(noise, num_steps, self.num_sampling_steps, guidance_scale)
        times = self.solver_times(num_steps)
        lambdas = self._lambda(times).tolist()
        log_alphas = self._log_alpha(times).tolist()
        sigmas = [math.sqrt(-math.expm1(2 * la)) for la in log_alphas]
        times = times.tolist()
        x = noise.to(torch.promote_types(noise.dtype, torch.float32))

        def eps(state: torch.Tensor, i: int) -> torch.Tensor:
            step = times[i] * self.num_timesteps - 1
            timesteps = torch.full((state.shape[0],), step, device=state.device,
                                   dtype=torch.float32)
            return guided_prediction(model_fn, state.to(noise.dtype), timesteps, condition,
                                     null_condition, guidance_scale).to(state.dtype)

        def predict(state: torch.Tensor, s: int, j: int, eps_s: torch.Tensor) -> torch.Tensor:
            """First-order (DDIM) move of ``state`` from grid point s to grid point j."""
            h = lambdas[j] - lambdas[s]
            return (math.exp(log_alphas[j] - log_alphas[s]) * state
                    - sigmas[j] * math.expm1(h) * eps_s)

        orders = self.solver_orders(num_steps)
        i = 0
        for index, order in enumerate(tqdm(orders, desc=type(self).__name__,
                                           disable=not progress)):
            t = i + order
            h = lambdas[t] - lambdas[i]
            eps_s = eps(x, i)
            if order == 1:
                x = predict(x, i, t, eps_s)
            elif order == 2:
                r1 = (lambdas[i + 1] - lambdas[i]) / h
                d1 = eps(predict(x, i, i + 1, eps_s), i + 1) - eps_s
                x = predict(x, i, t, eps_s) - sigmas[t] * math.expm1(h) / (2 * r1) * d1
            else:
                r1 = (lambdas[i + 1] - lambdas[i]) / h
                r2 = (lambdas[i + 2] - lambdas[i]) / h
                d1 = eps(predict(x, i, i + 1, eps_s), i + 1) - eps_s
                phi_22 = math.expm1(r2 * h) / (r2 * h) - 1
                u2 = predict(x, i, i + 2, eps_s) - sigmas[i + 2] * r2 / r1 * phi_22 * d1
                d2 = eps(u2, i + 2) - eps_s
                phi_2 = math.expm1(h) / h - 1
                x = predict(x, i, t, eps_s) - sigmas[t] / r2 * phi_2 * d2
            i = t
            if callback is not None:
                callback(index, x)
        return x.to(noise.dtype)
