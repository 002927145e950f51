# Table 5 baseline: PVDM-style single-stream autoencoders, one per modality, with the same
# encoders and projectors but none of MDSA's plane attention or cross-modal parts.
_base_ = ['./mdsa_landscape.py']
model = dict(spatial_attention=None, temporal_attention=None, cross_modal_attention=None,
             decoder_fusion=None)
