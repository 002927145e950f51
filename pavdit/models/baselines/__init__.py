"""Baselines of Table 3's timing comparison (random weights; sizes as in their papers).

One package per baseline (``mm_diffusion/``, ``mm_ldm/``), one module per part; helpers both use
are in :mod:`.common`.
"""
from pavdit.models.baselines.mm_diffusion import MMDiffusion
from pavdit.models.baselines.mm_ldm import MMLDM

__all__ = ['MMDiffusion', 'MMLDM']
