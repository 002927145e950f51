# Table 5: MDSA without MT-SelfAttn (spatial attention on z_t stays).
_base_ = ['./mdsa_landscape.py']
model = dict(temporal_attention=None)
