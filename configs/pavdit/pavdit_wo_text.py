# Table 1 "PAV-DiT wo/text": the same model trained and sampled unconditionally.
_base_ = ['./pavdit_landscape.py']
model = dict(conditioner=None, guidance_scale=1.0)
