# MDSA schedule, both stages in one run (paper: Adam, lr 1e-4, batch 32): reconstruction only
# (L1 + perceptual) until the model's disc_start, then adversarial, feature-matching and KL terms
# (paper Eq. 12) with the discriminators trained alongside. The dataset configs set
# disc_start=100000, so stage 2 takes the last 50k of the 150k iterations.
train_cfg = dict(type='IterBasedTrainLoop', max_iters=150000, val_interval=5000)
val_cfg = dict(type='ValLoop')
val_evaluator = dict(type='ReconstructionMetric')
optim_wrapper = dict(
    constructor='ModelGroupsOptimWrapperConstructor',
    generator=dict(type='SkipNonFiniteOptimWrapper',
                   optimizer=dict(type='Adam', lr=1e-4, betas=(0.5, 0.9))),
    discriminator=dict(type='SkipNonFiniteOptimWrapper',
                       optimizer=dict(type='Adam', lr=1e-4, betas=(0.5, 0.9))),
)
# Reconstructions in TensorBoard, at the validation interval.
custom_hooks = [dict(type='ClipLoggingHook', interval=5000)]
