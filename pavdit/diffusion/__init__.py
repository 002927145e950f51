"""Diffusion objectives and samplers, registered in ``DIFFUSION_SCHEDULERS``.

All schedulers share one interface: ``training_loss(model_fn, x0, ...)``, ``sample(model_fn,
noise, ...)`` and ``add_noise(x0, noise, timesteps)``, with ``model_fn(x, timesteps, condition)``.
"""
from pavdit.diffusion.conditions import (KnownElements, concat_conditions, guided_prediction,
                                         masked_mse)
from pavdit.diffusion.ddpm import DDIM, DDPM
from pavdit.diffusion.dpm_solver import DPMSolver
from pavdit.diffusion.flow import RectifiedFlow, ReflectedFlow, reflect

__all__ = ['DDIM', 'DDPM', 'DPMSolver', 'KnownElements', 'RectifiedFlow', 'ReflectedFlow', 'concat_conditions',
           'guided_prediction', 'masked_mse', 'reflect']
