"""MDSA autoencoder components: TimeSformer encoder/decoder, projectors, plane and cross-modal attention."""
from pavdit.models.autoencoders.cross_modal import BiBlockCrossAttention, GroupCrossModalAttention
from pavdit.models.autoencoders.mdsa import LATENT_KEYS, MDSA
from pavdit.models.autoencoders.plane_attention import (MultiScaleTemporalAttention,
                                                        PlaneSpatialAttention)
from pavdit.models.autoencoders.projectors import AxisProjector
from pavdit.models.autoencoders.timesformer import TimeSformerDecoder, TimeSformerEncoder

__all__ = ['AxisProjector', 'BiBlockCrossAttention', 'GroupCrossModalAttention', 'LATENT_KEYS',
           'MDSA', 'MultiScaleTemporalAttention', 'PlaneSpatialAttention', 'TimeSformerDecoder',
           'TimeSformerEncoder']
