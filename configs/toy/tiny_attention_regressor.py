# A seconds-long CPU run that exercises the training plumbing (tests and the README main job).
_base_ = ['../_base_/default_runtime.py', '../_base_/schedules/iter_adamw.py']

model = dict(type='TinyAttentionRegressor', in_dim=8, dim=32, out_dim=4,
             attention=dict(type='SelfAttention', num_heads=4, kernel='auto'))

train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='TeacherRegressionDataset', num_items=64),
)

train_cfg = dict(max_iters=200)
optim_wrapper = dict(optimizer=dict(lr=3e-3))
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=100))
