"""All nn.Module components, registered in ``pavdit.registry.MODELS``, by role."""
from pavdit.models import autoencoders, discriminators, layers, losses, toy  # noqa: F401
