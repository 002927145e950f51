"""Datasets, media I/O, video-like audio, collation and the data preprocessor."""
from pavdit.data.collate import read_items, sounding_video_collate
from pavdit.data.latent_cache import LatentCacheDataset
from pavdit.data.sounding_video_dataset import SoundingVideoDataset
from pavdit.data.synthetic import SyntheticSoundingVideo
from pavdit.data.teacher_dataset import TeacherRegressionDataset
from pavdit.data.video_like_audio import VideoLikeAudio

__all__ = ['LatentCacheDataset', 'SoundingVideoDataset', 'SyntheticSoundingVideo', 'TeacherRegressionDataset', 'VideoLikeAudio',
           'read_items', 'sounding_video_collate']
