"""Procedural sounding videos: data contract, determinism and audio-visual sync vs ground truth."""
import time

import numpy as np
import pytest
import torch

from pavdit.data.synthetic import CLASSES, SyntheticSoundingVideo, render_clip
from pavdit.data.video_like_audio import VideoLikeAudio
from pavdit.registry import DATASETS

# (fps, sample_rate, frame_width of the video-like audio): 1600, 2000 and 640 samples per frame.
RATES = [(10, 16000, 16), (8, 16000, 16), (25, 16000, 16)]


def frame_rms(waveform: np.ndarray, num_frames: int) -> np.ndarray:
    """(T,) RMS of each video frame's span of the waveform."""
    return np.sqrt((waveform.astype(np.float64).reshape(num_frames, -1) ** 2).mean(1))


def frame_change(frames: np.ndarray) -> np.ndarray:
    """(T,) mean absolute difference of frame t from frame t-1 (frame 0: 0)."""
    diffs = np.abs(np.diff(frames.astype(np.float64), axis=0)).mean((1, 2, 3))
    return np.concatenate([[0.0], diffs])


def audio_onsets(waveform: np.ndarray, num_frames: int, ratio: float = 2.0) -> set:
    """Frames whose RMS is more than ``ratio`` times the previous frame's."""
    rms = frame_rms(waveform, num_frames)
    return {t for t in range(1, num_frames) if rms[t] > ratio * rms[t - 1]}


def in_sync(clip: dict, events: list) -> bool:
    """True when every claimed event frame is an audio onset and a large visual change."""
    frames, waveform = clip['frames'], clip['waveform']
    change = frame_change(frames)
    median = np.median(change[1:])
    onsets = audio_onsets(waveform, len(frames))
    return all(e in onsets and change[e] > median for e in events)


@pytest.mark.parametrize('num_frames,height,width,fps,sample_rate', [
    (16, 64, 64, 10, 16000), (8, 16, 24, 8, 16000), (5, 24, 16, 25, 16000), (1, 32, 32, 10, 8000),
    (3, 40, 56, 25, 16000)])
def test_render_clip_contract(num_frames, height, width, fps, sample_rate):
    for class_name in CLASSES:
        clip = render_clip(class_name, seed=7, num_frames=num_frames, height=height, width=width,
                           fps=fps, sample_rate=sample_rate)
        frames, waveform, events = clip['frames'], clip['waveform'], clip['event_frames']
        assert frames.shape == (num_frames, height, width, 3) and frames.dtype == np.uint8
        assert waveform.shape == (num_frames * sample_rate // fps,)
        assert waveform.dtype == np.float32
        assert 0.45 < np.abs(waveform).max() < 0.85  # loud enough, with headroom
        assert frames.std() > 1  # not a blank frame
        assert events == sorted(events) and len(events) >= 1
        assert all(isinstance(e, int) and 0 <= e < num_frames for e in events)
        assert num_frames == 1 or min(events) >= 1
        assert all(b - a >= 2 for a, b in zip(events, events[1:]))


def test_large_clip_shapes():
    clip = render_clip('waves', 0, num_frames=16, height=256, width=256)
    assert clip['frames'].shape == (16, 256, 256, 3) and clip['waveform'].shape == (25600,)


def test_event_frames_follow_the_rules_for_many_seeds():
    counts = set()
    for seed in range(200):
        num_frames = 4 + seed % 20
        events = render_clip('pulse tone', seed, num_frames, 8, 8)['event_frames']
        counts.add(len(events))
        assert 1 <= len(events) <= max(1, (num_frames - 1) // 4)
        assert 1 <= min(events) and max(events) < num_frames
        assert all(b - a >= 2 for a, b in zip(events, events[1:]))
    assert len(counts) >= 3  # the number of events varies too


def test_render_clip_is_deterministic_and_seed_dependent():
    for class_name in CLASSES:
        a, b = render_clip(class_name, 3), render_clip(class_name, 3)
        c = render_clip(class_name, 4)
        assert np.array_equal(a['frames'], b['frames'])
        assert np.array_equal(a['waveform'], b['waveform'])
        assert a['event_frames'] == b['event_frames']
        assert not np.array_equal(a['frames'], c['frames'])
        assert not np.array_equal(a['waveform'], c['waveform'])
    # Colours vary per item: the first frames of different seeds differ in mean colour.
    means = [render_clip('rain', s)['frames'][0].mean((0, 1)) for s in range(4)]
    assert np.ptp(np.stack(means), axis=0).max() > 5


def test_render_clip_does_not_touch_global_rng():
    np.random.seed(0)
    expected = np.random.rand()
    np.random.seed(0)
    render_clip('fire crackling', 1)
    assert np.random.rand() == expected


@pytest.mark.parametrize('fps,sample_rate,frame_width', RATES)
@pytest.mark.parametrize('class_name', CLASSES)
def test_audio_onsets_and_visual_changes_are_at_the_event_frames(class_name, fps, sample_rate,
                                                                  frame_width):
    samples = sample_rate // fps
    for seed in range(8):
        num_frames = (16, 9, 24, 5)[seed % 4]
        height, width = ((32, 32), (24, 40), (40, 24), (16, 16))[seed % 4]
        clip = render_clip(class_name, seed, num_frames, height, width, fps, sample_rate)
        events, waveform = clip['event_frames'], clip['waveform']
        # Audio: exactly the event frames are onsets (RMS > 2x the previous frame's).
        assert audio_onsets(waveform, num_frames) == set(events), (seed, events)
        for e in events:
            # The sound starts on the event frame's first sample, not in the frame before.
            tail = waveform[e * samples - samples // 8:e * samples]
            head = waveform[e * samples:e * samples + samples // 8]
            assert np.sqrt((head ** 2).mean()) > 3 * np.sqrt((tail ** 2).mean()), (seed, e)
        # Video: the change into each event frame beats the clip's median change.
        assert in_sync(clip, events), (seed, events, frame_change(clip['frames']).round(1))


@pytest.mark.parametrize('class_name', CLASSES)
def test_sync_check_fails_on_wrong_event_frames(class_name):
    rng = np.random.default_rng(0)
    for seed in range(6):
        clip = render_clip(class_name, seed, 16, 32, 32)
        events = clip['event_frames']
        assert in_sync(clip, events)
        shifted = [e + 1 for e in events]  # one frame late
        shuffled = sorted(rng.choice([t for t in range(1, 16) if t not in events], len(events),
                                     replace=False).tolist())
        assert not in_sync(clip, shifted) and not in_sync(clip, shuffled), (seed, events)


@pytest.mark.parametrize('fps,sample_rate,frame_width', RATES)
def test_dataset_items_and_mel_frames_get_louder_at_events(fps, sample_rate, frame_width):
    dataset = SyntheticSoundingVideo(
        num_items=12, num_frames=12, resolution=(24, 40), fps=fps, sample_rate=sample_rate, seed=1,
        audio=dict(type='VideoLikeAudio', frame_width=frame_width, n_mels=32))
    assert len(dataset) == 12 and dataset.metainfo == dict(classes=CLASSES)
    num_samples = 12 * sample_rate // fps
    seen = set()
    for index in range(len(dataset)):
        item = dataset[index]
        video, audio, waveform, meta = item['video'], item['audio'], item['waveform'], item['meta']
        assert video.shape == (3, 12, 24, 40) and video.dtype == torch.float32
        assert -1 <= video.min() and video.max() <= 1
        assert audio.shape == (1, 12, 32, frame_width) and audio.dtype == torch.float32
        assert -1 <= audio.min() and audio.max() <= 1
        assert waveform.shape == (1, num_samples) and waveform.dtype == torch.float32
        class_name = CLASSES[index % len(CLASSES)]
        assert item['label'] == CLASSES.index(class_name) and meta['class_name'] == class_name
        assert item['text'] == f'a video of {class_name}'
        assert meta['path'] == f'synthetic://{class_name}/{index}' and meta['index'] == index
        assert (meta['fps'], meta['sample_rate'], meta['clip_start']) == (fps, sample_rate, 0.0)
        # The item is exactly the clip render_clip makes from the item's seed.
        clip = render_clip(class_name, meta['seed'], 12, 24, 40, fps, sample_rate)
        assert meta['event_frames'] == clip['event_frames']
        assert torch.equal(video, torch.from_numpy(clip['frames']).permute(3, 0, 1, 2) / 127.5 - 1)
        assert torch.equal(waveform[0], torch.from_numpy(clip['waveform']))
        loudness = audio[0].mean((1, 2))  # mean log-mel of each video frame
        for e in meta['event_frames']:
            assert loudness[e] > loudness[e - 1], (class_name, e, loudness)
        seen.add(class_name)
    assert seen == set(CLASSES)


def test_dataset_seeds_classes_resolution_and_audio_module():
    subset = SyntheticSoundingVideo(num_items=4, num_frames=4, resolution=16,
                                    classes=['waves', 'thunder'])
    assert subset.metainfo == dict(classes=('waves', 'thunder'))
    assert [subset[i]['label'] for i in range(4)] == [5, 1, 5, 1]
    assert subset[0]['video'].shape == (3, 4, 16, 16)
    # Items differ from one another and with the dataset seed, but not between instances.
    again = SyntheticSoundingVideo(num_items=4, num_frames=4, resolution=16,
                                   classes=['waves', 'thunder'])
    other = SyntheticSoundingVideo(num_items=4, num_frames=4, resolution=16, seed=1,
                                   classes=['waves', 'thunder'])
    assert torch.equal(subset[2]['video'], again[2]['video'])
    assert not torch.equal(subset[0]['video'], subset[2]['video'])
    assert not torch.equal(subset[0]['video'], other[0]['video'])
    with pytest.raises(IndexError):
        subset[4]
    module = VideoLikeAudio(sample_rate=16000, fps=8, n_mels=16)
    dataset = SyntheticSoundingVideo(num_items=1, num_frames=4, fps=8, audio=module)
    assert dataset.audio is module and dataset[0]['audio'].shape == (1, 4, 16, 16)
    built = DATASETS.build(dict(type='SyntheticSoundingVideo', num_items=2, num_frames=4))
    assert isinstance(built, SyntheticSoundingVideo) and built[1]['label'] == 1


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match='integer'):
        render_clip('thunder', 0, fps=3)  # 16000 / 3 samples per frame
    with pytest.raises(ValueError, match='integer'):
        render_clip('thunder', 0, fps=0)
    with pytest.raises(ValueError, match='choose from'):
        render_clip('volcano', 0)
    with pytest.raises(ValueError, match='>= 1'):
        render_clip('rain', 0, num_frames=0)
    with pytest.raises(ValueError, match="'thunder'"):  # the message lists CLASSES
        SyntheticSoundingVideo(classes=['thunder', 'volcano'])
    with pytest.raises(ValueError, match='integer'):
        SyntheticSoundingVideo(fps=7)
    with pytest.raises(ValueError, match='hop'):  # 640 samples per frame / 48 columns
        SyntheticSoundingVideo(fps=25, audio=dict(type='VideoLikeAudio', frame_width=48))
    with pytest.raises(ValueError, match='fps'):
        SyntheticSoundingVideo(fps=8, audio=VideoLikeAudio(sample_rate=16000, fps=10))


def test_rendering_is_vectorised():
    # Generous bounds (the targets are ~50 ms and ~0.5 s) that still catch per-pixel Python loops.
    for class_name in CLASSES:
        for size, limit in ((64, 0.25), (256, 2.0)):
            start = time.perf_counter()
            render_clip(class_name, 0, 16, size, size)
            assert time.perf_counter() - start < limit, (class_name, size)
