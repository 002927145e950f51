# MDSA stage 2 schedule: continues stage 1's optimisers for 50k more iterations. The stage-2
# config sets model.disc_start (adversarial, feature matching and KL on; paper Eq. 12) and
# load_from (the stage-1 checkpoint).
_base_ = ['./mdsa_stage1.py']
train_cfg = dict(max_iters=50000)
