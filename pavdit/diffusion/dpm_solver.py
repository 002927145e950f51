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

Sampling arguments shared with the other schedulers (the base class's ``sample``):

- ``known`` / ``known_mask`` (inpainting, a2v / v2a): replacement as in the other schedulers.
  Before every model evaluation, a step's start and its inner points alike, the known elements of
  the evaluated state are set to ``alpha_t known + sigma_t eps_k`` at that evaluation's
  (fractional) step, with one fixed noise eps_k (:meth:`DPMSolver.add_noise` on the continuous
  schedule); the result holds them exactly.
- ``bounds``: every evaluation's x0 prediction ``(x - sigma_t eps) / alpha_t`` is clamped into the
  box and the solver continues with the eps consistent with it (as DDPM's ``clip_denoised``,
  :func:`~pavdit.diffusion.ddpm.x0_and_eps`). The solver stops at k = 0, not at x0 (its last
  state keeps noise of std sqrt(1 - abar_0) = 0.01), so the returned sample is clamped into the
  box as well (by the base class).
"""
import math
from typing import List, NamedTuple, Optional

import torch

from pavdit.diffusion.base import Bounds, Predict
from pavdit.diffusion.ddpm import DDPM, x0_and_eps
from pavdit.registry import DIFFUSION_SCHEDULERS

SKIP_TYPES = ('logSNR', 'time_uniform')


def _interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear f(x) through (xp, fp), xp increasing, extended linearly past its ends."""
    idx = torch.searchsorted(xp, x).clamp(1, len(xp) - 1)
    x0, x1, f0, f1 = xp[idx - 1], xp[idx], fp[idx - 1], fp[idx]
    return f0 + (x - x0) * (f1 - f0) / (x1 - x0)


class SolverStep(NamedTuple):
    """One solver step's grid points, its start (index 0) to its end (index ``order``), the
    inner points between: continuous times t, lambdas, log alphas and sigmas."""
    times: List[float]
    lambdas: List[float]
    log_alphas: List[float]
    sigmas: List[float]


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

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor,
                  timesteps: torch.Tensor) -> torch.Tensor:
        """``sqrt(abar) x0 + sqrt(1 - abar) noise`` at steps k (B,): integer-dtype steps (training)
        read DDPM's table exactly as :class:`DDPM` does; floating-point steps, possibly fractional
        (the solver's evaluation points), use :meth:`alphas_cumprod_at`."""
        if not timesteps.is_floating_point():
            return super().add_noise(x0, noise, timesteps)
        return self._mix(x0, noise, self.alphas_cumprod_at(timesteps))

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

    def sampling_plan(self, num_steps: int) -> List[SolverStep]:
        """The solver steps for ``num_steps`` NFE, one per entry of :meth:`solver_orders` (so the
        callback sees the state after every solver step, not after every evaluation)."""
        times = self.solver_times(num_steps)
        lambdas = self._lambda(times).tolist()
        log_alphas = self._log_alpha(times).tolist()
        sigmas = [math.sqrt(-math.expm1(2 * la)) for la in log_alphas]
        times = times.tolist()
        plan, i = [], 0
        for order in self.solver_orders(num_steps):
            grid = slice(i, i + order + 1)
            plan.append(SolverStep(times[grid], lambdas[grid], log_alphas[grid], sigmas[grid]))
            i += order
        return plan

    def sampling_step(self, x: torch.Tensor, entry: SolverStep, predict: Predict,
                      generator: Optional[torch.Generator],
                      bounds: Optional[Bounds]) -> torch.Tensor:
        """One singlestep DPM-Solver step of order ``len(entry.times) - 1`` (module docstring);
        deterministic (``generator`` is unused)."""
        times, lambdas, log_alphas, sigmas = entry
        order = len(times) - 1

        def eps(state: torch.Tensor, j: int):
            """(state with known elements set, eps prediction) at grid point j."""
            state, out = predict(state, times[j] * self.num_timesteps - 1)
            if bounds is not None:
                _, out = x0_and_eps(state, out, math.exp(log_alphas[j]), sigmas[j], bounds)
            return state, out

        def move(state: torch.Tensor, j: int, eps_s: torch.Tensor) -> torch.Tensor:
            """First-order (DDIM) move of ``state`` from the step's start to grid point j."""
            h = lambdas[j] - lambdas[0]
            return (math.exp(log_alphas[j] - log_alphas[0]) * state
                    - sigmas[j] * math.expm1(h) * eps_s)

        h = lambdas[order] - lambdas[0]
        x, eps_s = eps(x, 0)
        if order == 1:
            return move(x, 1, eps_s)
        r1 = (lambdas[1] - lambdas[0]) / h
        d1 = eps(move(x, 1, eps_s), 1)[1] - eps_s
        if order == 2:
            return move(x, 2, eps_s) - sigmas[2] * math.expm1(h) / (2 * r1) * d1
        r2 = (lambdas[2] - lambdas[0]) / h
        phi_22 = math.expm1(r2 * h) / (r2 * h) - 1
        u2 = move(x, 2, eps_s) - sigmas[2] * r2 / r1 * phi_22 * d1
        d2 = eps(u2, 2)[1] - eps_s
        phi_2 = math.expm1(h) / h - 1
        return move(x, 3, eps_s) - sigmas[3] / r2 * phi_2 * d2
