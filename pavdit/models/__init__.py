"""All nn.Module components, registered in ``pavdit.registry.MODELS``, by role."""
from pavdit.models import layers, toy  # noqa: F401
