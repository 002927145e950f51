# A tiny MDSA that trains on the embedded synthetic set on a CPU (no data to fetch): 32x32 video,
# 16 frames, 64x16 mel frames; stage 1 for the first 200 iterations, then stage 2 in the same run.
_base_ = ['../_base_/models/mdsa.py', '../_base_/datasets/synthetic.py',
          '../_base_/schedules/mdsa.py', '../_base_/default_runtime.py']

resolution = 32
tiny_branch = dict(
    encoder=dict(dim=64, depth=1, num_heads=2),
    projector=dict(dim=64, depth=1, num_heads=2, mlp_dim=128),
    decoder=dict(dim=64, depth=1, num_heads=2))
model = dict(
    video=dict(patch_size=8, **tiny_branch),
    audio=dict(patch_size=8, **tiny_branch),
    spatial_attention=dict(num_heads=2),
    temporal_attention=dict(num_heads=2),
    cross_modal_attention=dict(num_heads=2),
    decoder_fusion=dict(num_heads=2, spatial_blocks=(1, 1)),
    video_discriminator=dict(base_channels=16, num_layers=2),
    audio_discriminator=dict(base_channels=16, num_layers=2),
    # MSE, not the paper's L1: L1 drops the small bouncing ball (docs/mdsa.md, one-clip overfit).
    reconstruction_loss=dict(l1=0.0, mse=4.0),
    disc_start=200)
train_dataloader = dict(batch_size=2, dataset=dict(resolution=resolution, num_items=16))
val_dataloader = dict(dataset=dict(resolution=resolution, num_items=4))
train_cfg = dict(max_iters=300, val_interval=100)
optim_wrapper = dict(generator=dict(optimizer=dict(lr=1e-3)),
                     discriminator=dict(optimizer=dict(lr=1e-3)))
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=100))
custom_hooks = [dict(type='ClipLoggingHook', interval=150)]  # twice a 300-iteration run
