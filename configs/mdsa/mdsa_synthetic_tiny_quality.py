# The tiny MDSA of the demo's --quality mode: two clips per class, reconstruction only (MSE; at
# this budget the adversarial stage lowered mel PSNR, docs/mdsa.md), so no discriminators are
# built; batch 4, lr 2e-3 decayed to 1e-4 by a cosine over 3000 iterations (the ball appears
# between 2000 and 3000 iterations: docs/getting_started.md).
_base_ = ['./mdsa_synthetic_tiny.py']
model = dict(video_discriminator=None, audio_discriminator=None, disc_start=None)
train_dataloader = dict(batch_size=4, dataset=dict(num_items=12))
train_cfg = dict(max_iters=3000, val_interval=1000)
optim_wrapper = dict(generator=dict(optimizer=dict(lr=2e-3)))
param_scheduler = dict(generator=[dict(type='CosineAnnealingLR', T_max=3000, eta_min=1e-4,
                                       by_epoch=False, begin=0, end=3000)])
default_hooks = dict(checkpoint=dict(interval=1000))
