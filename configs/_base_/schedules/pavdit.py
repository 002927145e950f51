# Generator training (paper: AdamW, lr 1e-4, batch 64). The latent statistics are fitted on the
# first batches of a fresh run (not on resume).
train_cfg = dict(type='IterBasedTrainLoop', max_iters=200000, val_interval=10 ** 9)
optim_wrapper = dict(type='SkipNonFiniteOptimWrapper',
                     optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.0),
                     clip_grad=dict(max_norm=1.0))
# Samples in TensorBoard (first in the list: custom_hooks.0.* on the command line).
custom_hooks = [dict(type='ClipLoggingHook', interval=5000),
                dict(type='FitLatentStatsHook', num_batches=50)]
