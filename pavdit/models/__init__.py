"""All nn.Module components, registered in ``pavdit.registry.MODELS``, by role."""
from pavdit.models import (autoencoders, baselines, discriminators, generators,  # noqa: F401
                           layers, losses, text_encoders, toy)
