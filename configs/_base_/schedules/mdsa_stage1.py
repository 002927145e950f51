# MDSA stage 1: reconstruction (L1 + perceptual) only, the model's disc_start is None.
# Paper: Adam, lr 1e-4, batch 32.
train_cfg = dict(type='IterBasedTrainLoop', max_iters=100000, val_interval=5000)
val_cfg = dict(type='ValLoop')
val_evaluator = dict(type='ReconstructionMetric')
optim_wrapper = dict(
    constructor='ModelGroupsOptimWrapperConstructor',
    generator=dict(type='SkipNonFiniteOptimWrapper',
                   optimizer=dict(type='Adam', lr=1e-4, betas=(0.5, 0.9))),
    discriminator=dict(type='SkipNonFiniteOptimWrapper',
                       optimizer=dict(type='Adam', lr=1e-4, betas=(0.5, 0.9))),
)
