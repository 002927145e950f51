# A tiny PAV-DiT on the embedded synthetic set, trainable on a CPU: the tiny MDSA
# (configs/mdsa/mdsa_synthetic_tiny.py, its checkpoint below) and a 2-block STDiT.
_base_ = ['../_base_/models/pavdit.py', '../_base_/datasets/synthetic.py',
          '../_base_/schedules/pavdit.py', '../_base_/default_runtime.py']
model = dict(
    autoencoder=dict(checkpoint='work_dirs/mdsa_synthetic_tiny/iter_300.pth'),
    video_size=(16, 32, 32),
    generator=dict(hidden_size=96, depth=2, num_heads=4),
    scheduler=dict(num_sampling_steps=30),
    guidance_scale=2.0,
    ema_decay=0.99)
train_dataloader = dict(batch_size=8, dataset=dict(resolution=32, num_items=16))
train_cfg = dict(max_iters=600)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
custom_hooks = [dict(type='ClipLoggingHook', interval=300),  # twice a 600-iteration run
                dict(type='FitLatentStatsHook', num_batches=2)]
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=200))
val_dataloader = None
val_cfg = None
val_evaluator = None
