"""All nn.Module components, registered in ``pavdit.registry.MODELS``, by role."""
from pavdit.models import (autoencoders, discriminators, generators, layers, losses,  # noqa: F401
                           text_encoders, toy)
