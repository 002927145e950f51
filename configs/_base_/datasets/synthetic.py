# The embedded procedural sounding-video set (no data to fetch), 16 frames at 10 fps, 16 kHz.
num_frames = 16
fps = 10
sample_rate = 16000
resolution = 64
video_like_audio = dict(type='VideoLikeAudio', n_mels=64, frame_width=16, n_fft=512)

train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pavdit.sounding_video_collate'),
    dataset=dict(type='SyntheticSoundingVideo', num_items=64, num_frames=num_frames,
                 resolution=resolution, fps=fps, sample_rate=sample_rate, seed=0,
                 audio=video_like_audio),
)
val_dataloader = dict(
    batch_size=2,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pavdit.sounding_video_collate'),
    dataset=dict(type='SyntheticSoundingVideo', num_items=8, num_frames=num_frames,
                 resolution=resolution, fps=fps, sample_rate=sample_rate, seed=1000,
                 audio=video_like_audio),
)
