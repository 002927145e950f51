# Iteration-based training with AdamW at a constant learning rate; NaN / inf losses skip the step.
train_cfg = dict(type='IterBasedTrainLoop', max_iters=1000, val_interval=1000)
optim_wrapper = dict(type='SkipNonFiniteOptimWrapper',
                     optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.0))
