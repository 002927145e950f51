# Landscape (MM-Diffusion's release): <data_root>/{train,test}/<class>/*.mp4 with embedded audio.
# Protocol: 16 frames at 10 fps (1.6 s), 256x256 letterboxed, audio at 16 kHz.
data_root = 'data/landscape'
num_frames = 16
fps = 10
sample_rate = 16000
resolution = 256
video_like_audio = dict(type='VideoLikeAudio', n_mels=64, frame_width=16, n_fft=512)

train_dataloader = dict(
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pavdit.sounding_video_collate'),
    dataset=dict(type='SoundingVideoDataset', data_root=data_root, split='train',
                 num_frames=num_frames, fps=fps, sample_rate=sample_rate, resolution=resolution,
                 resize_mode='letterbox', flip_prob=0.5, audio=video_like_audio),
)
val_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pavdit.sounding_video_collate'),
    dataset=dict(type='SoundingVideoDataset', data_root=data_root, split='test',
                 num_frames=num_frames, fps=fps, sample_rate=sample_rate, resolution=resolution,
                 resize_mode='letterbox', test_mode=True, audio=video_like_audio),
)
