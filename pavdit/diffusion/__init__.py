"""Diffusion objectives and samplers, registered in ``DIFFUSION_SCHEDULERS``."""
