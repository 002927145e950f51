"""Baselines of Table 3's timing comparison (random weights; sizes as in their papers)."""
from pavdit.models.baselines.mm_diffusion import MMDiffusion
from pavdit.models.baselines.mm_ldm import MMLDM

__all__ = ['MMDiffusion', 'MMLDM']
