# PAV-DiT: frozen MDSA (stage-2 checkpoint) + STDiT (16 blocks; Open-Sora 1.0 STDiT-XL/2 width)
# over the six packed latent planes, text-conditioned, reflected flow with 30 sampling steps.
model = dict(
    type='PAVDiT',
    autoencoder=dict(checkpoint='work_dirs/mdsa_landscape/iter_150000.pth'),
    video_size=(16, 256, 256),
    audio_size=(16, 64, 16),
    packing=dict(type='PlaneStackPacking'),
    generator=dict(type='STDiT', patch_size=(1, 2, 2), hidden_size=1152, depth=16, num_heads=16,
                   grad_checkpointing=False),
    conditioner=dict(type='TextConditioner', encoder=dict(type='MiniLMTextEncoder'),
                     dropout_prob=0.1),
    scheduler=dict(type='ReflectedFlow', num_sampling_steps=30),
    guidance_scale=4.0,
    ema_decay=0.9999,
    data_preprocessor=dict(type='SoundingVideoDataPreprocessor'),
)
