"""pavdit: sounding-video generation with projected latent audio-video diffusion transformers."""
# Importing pavdit changes nothing process-wide: programs that run mmengine Runners call
# pavdit.engine.compat.install() first (safe checkpoint loads, atomic saves).
__version__ = '0.1.0'
