"""The generator: latent statistics, plane packing, STDiT and the full PAV-DiT model."""
from pavdit.models.generators.latent_stats import LatentNormalizer
from pavdit.models.generators.packing import PlaneStackPacking, ShelfPacking
from pavdit.models.generators.pavdit_model import PAVDiT, plane_shapes
from pavdit.models.generators.stdit import STDiT

__all__ = ['LatentNormalizer', 'PAVDiT', 'PlaneStackPacking', 'ShelfPacking', 'STDiT',
           'plane_shapes']
