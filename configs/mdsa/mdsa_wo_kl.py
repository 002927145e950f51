# Table 5: MDSA without the KL fine-tuning (stage 2 runs with the KL weight at 0).
_base_ = ['./mdsa_landscape.py']
model = dict(loss_weights=dict(kl=0.0))
