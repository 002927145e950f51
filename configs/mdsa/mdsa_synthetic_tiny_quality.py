# The tiny MDSA of the demo's --quality mode: two clips per class, reconstruction only (MSE; at
# this budget the adversarial stage lowered mel PSNR, docs/mdsa.md), batch 4, lr 2e-3, 1000 iters.
_base_ = ['./mdsa_synthetic_tiny.py']
model = dict(disc_start=None)
train_dataloader = dict(batch_size=4, dataset=dict(num_items=12))
train_cfg = dict(max_iters=1000, val_interval=500)
optim_wrapper = dict(generator=dict(optimizer=dict(lr=2e-3)))
default_hooks = dict(checkpoint=dict(interval=500))
