# Table 5: MDSA without GCM-Attn (no cross-modal attention between the latent planes).
_base_ = ['./mdsa_landscape.py']
model = dict(cross_modal_attention=None)
