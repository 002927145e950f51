"""pavdit: sounding-video generation with projected latent audio-video diffusion transformers."""
# Safe checkpoint loading and atomic checkpoint writes must be in force before any Runner runs.
from pavdit.engine import compat  # noqa: F401

__version__ = '0.1.0'
