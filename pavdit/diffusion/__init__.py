"""Diffusion objectives and samplers, registered in ``DIFFUSION_SCHEDULERS``.

All schedulers subclass :class:`~pavdit.diffusion.base.DiffusionScheduler` and share its interface:
``training_loss(model_fn, x0, ...)``, ``sample(model_fn, noise, ...)`` (written once in the base),
``draw_noise(shape, ...)`` and ``add_noise(x0, noise, timesteps)``, with
``model_fn(x, timesteps, condition)``.
"""
from pavdit.diffusion.base import DiffusionScheduler, check_bounds, clamp_to_box
from pavdit.diffusion.conditions import (KnownElements, concat_conditions, guided_prediction,
                                         masked_mse)
from pavdit.diffusion.ddpm import DDIM, DDPM
from pavdit.diffusion.dpm_solver import DPMSolver
from pavdit.diffusion.flow import RectifiedFlow, ReflectedFlow, reflect

__all__ = ['DDIM', 'DDPM', 'DPMSolver', 'DiffusionScheduler', 'KnownElements', 'RectifiedFlow',
           'ReflectedFlow', 'check_bounds', 'clamp_to_box', 'concat_conditions',
           'guided_prediction', 'masked_mse', 'reflect']
