"""pavdit: sounding-video generation with projected latent audio-video diffusion transformers."""
# The registries first, whatever module of pavdit a program imports first: component modules
# register into them at import, and filling ATTENTION_KERNELS imports pavdit.models (which imports
# the diffusion schedulers), so starting anywhere else could meet a half-imported module.
# Importing pavdit changes nothing process-wide: programs that run mmengine Runners call
# pavdit.engine.compat.install() first (safe checkpoint loads, atomic saves).
from pavdit import registry  # noqa: F401

__version__ = '0.1.0'
