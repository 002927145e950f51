# Table 5: MDSA without Bi-Block CrossAttn (no cross-modal attention in the decoder).
_base_ = ['./mdsa_landscape.py']
model = dict(decoder_fusion=None)
