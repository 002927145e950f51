# Runtime shared by every pavdit config: scope, hooks, logging, checkpoints, seeding.
default_scope = 'pavdit'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1000, max_keep_ckpts=3,
                    save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    random_state=dict(type='RandomStateHook'),  # exact resume: RNG states ride in checkpoints
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)

# Under torchrun: DDP that lets a model run its own train_step (the MDSA's two optimizers,
# PAV-DiT's EMA); plain models get mmengine's default step (docs/distributed.md).
# (Scoped name: the Runner looks the type up in mmengine's root registry.)
model_wrapper_cfg = dict(type='pavdit.ModelStepDistributedDataParallel')

log_processor = dict(by_epoch=False, window_size=10)
log_level = 'INFO'
# Scalars go to both: vis_data/scalars.json (read by tests and tools) and TensorBoard event files
# in the same folder, where ClipLoggingHook also writes its clips (docs/getting_started.md).
vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends)

load_from = None
resume = False
# diff_rank_seed: every process draws its own noise and timesteps (rank 0 keeps the plain seed).
randomness = dict(seed=0, diff_rank_seed=True, deterministic=False)
