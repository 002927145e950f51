"""SoundingVideoDataset: layouts, labels, manifests, clip sampling, metadata cache, bad files."""
import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from pavdit.data import SoundingVideoDataset, read_items, sounding_video_collate
from pavdit.data import probe_cache
from pavdit.data.media import write_mp4
from pavdit.data.preprocessor import SoundingVideoDataPreprocessor
from tests.test_media import _write_audio_file

SR, FPS = 16000, 10


def _write(path, seconds=2.5, height=48, width=80, seed=0, silent=False):
    rng = np.random.default_rng(seed)
    num_frames = int(seconds * FPS)
    # Frame i has brightness 8 * i, so a frame's content tells which clip time it came from.
    frames = np.stack([np.full((height, width, 3), 8 * i, np.uint8) for i in range(num_frames)])
    frames[:, :, : width // 4, 0] = 255  # a red stripe on the left marks orientation
    wave = np.zeros(num_frames * SR // FPS, np.float32) if silent else rng.uniform(
        -0.3, 0.3, num_frames * SR // FPS).astype(np.float32)
    return write_mp4(path, frames, FPS, wave, SR)


@pytest.fixture(scope='module')
def landscape_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('landscape')
    for c, name in enumerate(['rain', 'thunder', 'waves']):
        for i in range(2):
            _write(root / 'train' / name / f'{i}.mp4', seed=10 * c + i)
    _write(root / 'test' / 'rain' / 'a.mp4')
    return root


def _dataset(root, **kwargs):
    kwargs.setdefault('resolution', 32)
    kwargs.setdefault('metadata_cache', None)
    return SoundingVideoDataset(str(root), **kwargs)


def test_items_follow_the_data_contract(landscape_root):
    ds = _dataset(landscape_root, resolution=(32, 40), test_mode=True)
    assert len(ds) == 6 and ds.metainfo['classes'] == ('rain', 'thunder', 'waves')
    item = ds[3]
    assert item['video'].shape == (3, 16, 32, 40) and item['video'].dtype == torch.float32
    assert item['video'].min() >= -1 and item['video'].max() <= 1
    assert item['audio'].shape == (1, 16, 64, 16)
    assert item['waveform'].shape == (1, 16 * SR // FPS)
    assert item['label'] == 1 and item['text'] == 'a video of thunder'
    assert set(item['meta']) >= {'path', 'clip_start', 'fps', 'sample_rate'}
    assert item['meta']['path'].endswith('thunder/1.mp4')
    # The clip start is where the frames come from: frame 0's brightness is 8 * start_frame.
    start_frame = round(item['meta']['clip_start'] * FPS)
    brightness = (item['video'][2, 0, 12:20, -4:].mean().item() + 1) * 127.5  # inside the box
    assert abs(brightness - 8 * start_frame) < 3


def test_test_mode_is_deterministic_and_train_mode_varies(landscape_root):
    a = _dataset(landscape_root, test_mode=True, seed=3)
    b = _dataset(landscape_root, test_mode=True, seed=3)
    starts = [a[i]['meta']['clip_start'] for i in range(len(a))]
    assert starts == [b[i]['meta']['clip_start'] for i in range(len(b))]
    assert starts != [_dataset(landscape_root, test_mode=True, seed=4)[i]['meta']['clip_start']
                      for i in range(len(a))]
    train = _dataset(landscape_root)
    torch.manual_seed(0)
    draws = {train[0]['meta']['clip_start'] for _ in range(12)}
    assert len(draws) > 1 and all(0 <= s <= 0.9 for s in draws)


def test_letterbox_pads_and_center_crop_fills(landscape_root):
    boxed = _dataset(landscape_root, resize_mode='letterbox', test_mode=True)[0]['video']
    cropped = _dataset(landscape_root, resize_mode='center_crop', test_mode=True)[0]['video']
    # 48x80 into 32x32: letterbox leaves black bars (value -1) above and below; crop does not.
    assert torch.all(boxed[:, :, :6] == -1) and torch.all(boxed[:, :, -6:] == -1)
    assert not torch.all(cropped[:, :, :6] == -1)


def test_flip_mirrors_the_frames(landscape_root):
    plain = _dataset(landscape_root, test_mode=True)
    flipped = _dataset(landscape_root, flip_prob=1.0)
    flipped.test_mode = True  # same clip as `plain`, but flipping stays on
    a, b = plain[0]['video'], flipped[0]['video']
    torch.testing.assert_close(b, a.flip(-1))
    assert a[0, 0, 16, 0] > a[0, 0, 16, -1]  # the red stripe is on the left before flipping


def test_class_map_fixes_label_indices(landscape_root, tmp_path):
    class_map = tmp_path / 'classes.json'
    class_map.write_text(json.dumps({'waves': 0, 'rain': 1, 'thunder': 2, 'fire': 3}))
    ds = _dataset(landscape_root, class_map=str(class_map), test_mode=True)
    assert ds.classes == ['waves', 'rain', 'thunder', 'fire']
    assert [ds.items[i]['label'] for i in (0, 2, 4)] == [1, 2, 0]
    class_map.write_text(json.dumps({'rain': 0}))
    with pytest.raises(ValueError, match='lacks classes'):
        _dataset(landscape_root, class_map=str(class_map))


def test_aist_file_names_give_genres(tmp_path):
    for name in ['gBR_sBM_c01_d04_mBR0_ch01.mp4', 'gKR_sFM_c02_d28_mKR3_ch20.mp4']:
        _write(tmp_path / 'train' / name, seconds=1.7)
    ds = _dataset(tmp_path)
    assert ds.classes == ['break', 'krump']
    assert sorted(item['text'] for item in ds.items) == ['a video of break', 'a video of krump']


@pytest.mark.parametrize('kind', ['csv', 'jsonl'])
def test_manifest(landscape_root, tmp_path, kind):
    rows = [dict(path='train/rain/0.mp4', label='rain', text='heavy rain'),
            dict(path='train/waves/1.mp4', label='waves', text='')]
    manifest = tmp_path / f'list.{kind}'
    if kind == 'csv':
        manifest.write_text('path,label,text\n' + ''.join(
            f'{r["path"]},{r["label"]},{r["text"]}\n' for r in rows))
    else:
        manifest.write_text(''.join(json.dumps(r) + '\n' for r in rows))
    ds = _dataset(landscape_root, manifest=str(manifest), test_mode=True)
    assert ds.classes == ['rain', 'waves']
    assert [ds[i]['text'] for i in range(2)] == ['heavy rain', 'a video of waves']
    assert [ds[i]['label'] for i in range(2)] == [0, 1]


def test_probe_cache_avoids_reprobing(landscape_root, tmp_path, monkeypatch):
    cache = tmp_path / 'probe.json'
    _dataset(landscape_root, metadata_cache=str(cache))
    assert len(json.loads(cache.read_text())) == 6

    def no_probe(path):
        raise AssertionError(f'probed {path} again')

    monkeypatch.setattr(probe_cache, 'probe', no_probe)
    assert len(_dataset(landscape_root, metadata_cache=str(cache))) == 6
    # A changed file is probed again.
    changed = landscape_root / 'train' / 'rain' / '0.mp4'
    original = changed.read_bytes()
    try:
        _write(changed, seconds=3.0)
        with pytest.raises(AssertionError, match='probed .*rain/0.mp4 again'):
            _dataset(landscape_root, metadata_cache=str(cache))
    finally:
        changed.write_bytes(original)


def test_every_kind_of_bad_file_is_skipped_and_named(tmp_path):
    good = _write(tmp_path / 'train' / 'rain' / 'good.mp4')
    bad_dir = tmp_path / 'train' / 'rain'
    (bad_dir / 'zero.mp4').write_bytes(b'')
    (bad_dir / 'notavideo.mp4').write_text('hello, I am text')
    (bad_dir / 'truncated.mp4').write_bytes(good.read_bytes()[:len(good.read_bytes()) // 2])
    _write(bad_dir / 'silent.mp4', silent=True)
    _write(bad_dir / 'short.mp4', seconds=0.8)
    import av
    with av.open(str(bad_dir / 'noaudio.mp4'), 'w', format='mp4') as out:
        stream = out.add_stream('libx264', rate=FPS)
        stream.width = stream.height = 32
        stream.pix_fmt = 'yuv420p'
        for _ in range(20):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8),
                                                             format='rgb24')))
        out.mux(stream.encode())
    (bad_dir / 'folder.mp4').mkdir()
    ds = _dataset(tmp_path, test_mode=True)
    assert set(ds.bad_files) == {str(bad_dir / n) for n in
                                 ['zero.mp4', 'notavideo.mp4', 'short.mp4', 'noaudio.mp4',
                                  'truncated.mp4', 'folder.mp4']}
    # A silent file passes probing; reading it marks it bad. Test mode drops it (None).
    items = {ds.items[i]['path'].split('/')[-1]: ds[i] for i in range(len(ds))}
    assert items['silent.mp4'] is None and items['good.mp4']['meta']['path'] == str(good)
    # Training returns another (good) item instead.
    train = _dataset(tmp_path)
    for i in range(len(train)):
        assert train[i]['meta']['path'] == str(good)
    reasons = {path.split('/')[-1]: reason for path, reason in ds.bad_files.items()}
    assert reasons['zero.mp4'] == 'file is empty (0 bytes)'
    assert reasons['noaudio.mp4'] == 'no audio stream'
    assert reasons['short.mp4'].startswith('too short for one clip')
    assert reasons['silent.mp4'].startswith('audio is silent')
    assert 'not a readable media file' in reasons['notavideo.mp4']
    assert reasons['truncated.mp4'].startswith('truncated')
    assert reasons['folder.mp4'] == 'is a directory, not a file'


def test_all_bad_is_a_clear_error(tmp_path):
    (tmp_path / 'train').mkdir()
    (tmp_path / 'train' / 'a.mp4').write_bytes(b'')
    with pytest.raises(RuntimeError, match='no usable video.*file is empty'):
        _dataset(tmp_path)
    with pytest.raises(FileNotFoundError, match='data_root'):
        _dataset(tmp_path / 'nowhere')
    with pytest.raises(FileNotFoundError, match='test'):
        _dataset(tmp_path, split='test')


def test_dataloader_with_workers_collate_and_preprocessor(landscape_root):
    ds = _dataset(landscape_root, test_mode=True)
    loader = DataLoader(ds, batch_size=3, num_workers=2, collate_fn=sounding_video_collate)
    batch = SoundingVideoDataPreprocessor()(next(iter(loader)))
    assert batch['video'].shape == (3, 3, 16, 32, 32)
    assert batch['audio'].shape == (3, 1, 16, 64, 16)
    assert batch['label'].tolist() == [0, 0, 1] and len(batch['meta']) == 3


def test_preprocessor_casts_signals_only(landscape_root):
    ds = _dataset(landscape_root, test_mode=True)
    batch = SoundingVideoDataPreprocessor(dtype='bfloat16')([ds[0], ds[1]])
    assert batch['video'].dtype == batch['audio'].dtype == torch.bfloat16
    assert batch['label'].dtype == torch.long and batch['text'] == [ds[0]['text'], ds[1]['text']]
    torch.testing.assert_close(batch['video'][1].float(), ds[1]['video'], atol=1e-2, rtol=1e-2)


@pytest.fixture(scope='module')
def root_with_a_bad_file(tmp_path_factory):
    """Three good files and one that probes fine but fails when read (silent audio), named so
    that the bad one is alone in the last batch of 3."""
    root = tmp_path_factory.mktemp('one_bad')
    for i, name in enumerate(['a', 'b', 'c']):
        _write(root / 'test' / f'{name}.mp4', seconds=1.7, seed=i)
    _write(root / 'test' / 'd_silent.mp4', seconds=1.7, silent=True)
    return root


def test_test_mode_drops_a_bad_file_and_never_duplicates_a_clip(root_with_a_bad_file):
    root = root_with_a_bad_file
    ds = _dataset(root, split='test', test_mode=True)
    assert len(ds) == 4 and not ds.bad_files  # the silent file probes fine
    items = [ds[i] for i in range(len(ds))]
    assert items[3] is None and all(item is not None for item in items[:3])
    assert [item['meta']['path'] for item in items[:3]] == [
        str(root / 'test' / f'{name}.mp4') for name in 'abc']
    assert list(ds.bad_files) == [str(root / 'test' / 'd_silent.mp4')]
    assert next(iter(ds.bad_files.values())).startswith('audio is silent')
    assert ds[3] is None  # known bad now: dropped again, not read again
    with pytest.raises(IndexError):
        ds[4]
    # Through a DataLoader: every good clip once; the batch of only the bad file is empty.
    loader = DataLoader(ds, batch_size=3, collate_fn=sounding_video_collate)
    batches = list(loader)
    assert len(batches) == 2 and batches[1] == {}
    paths = [meta['path'] for batch in batches if batch for meta in batch['meta']]
    assert sorted(paths) == [str(root / 'test' / f'{name}.mp4') for name in 'abc']
    assert batches[0]['video'].shape[0] == 3
    # A batch of 2 around the bad file: [c, None] -> c alone.
    pairs = list(DataLoader(ds, batch_size=2, collate_fn=sounding_video_collate))
    assert [len(batch['meta']) for batch in pairs] == [2, 1]
    # What tools read beside their batches: the same kept items, in order.
    kept = read_items(ds, range(2, 4))
    assert [item['meta']['path'] for item in kept] == [str(root / 'test' / 'c.mp4')]


def test_an_all_dropped_batch_gives_no_predictions(root_with_a_bad_file):
    from tests.mdsa_helpers import build_small
    model = build_small('mdsa_synthetic_tiny')
    assert model.val_step({}) == [] and model.test_step([None, None]) == []
    assert sounding_video_collate([None, None]) == {}
    with pytest.raises(ValueError, match='empty'):
        sounding_video_collate([])  # no items at all is still a caller's mistake


def test_training_mode_keeps_returning_the_next_usable_item(root_with_a_bad_file):
    ds = _dataset(root_with_a_bad_file, split='test')
    assert ds[3]['meta']['path'] == str(root_with_a_bad_file / 'test' / 'a.mp4')  # wraps around
    assert list(ds.bad_files) == [str(root_with_a_bad_file / 'test' / 'd_silent.mp4')]


def test_stereo_sources_are_averaged_to_mono(tmp_path):
    """The dataset passes ``downmix`` to read_clip: a loud stereo file (L = R = 0.8 sine) gives a
    waveform at the sine's level, not 3 dB above it."""
    path = tmp_path / 'test' / 'stereo.mp4'
    path.parent.mkdir(parents=True)
    tone = 0.8 * np.sin(2 * np.pi * 440 * np.arange(2 * SR) / SR)
    _write_audio_file(path, [tone, tone], rate=SR)
    rms = {}
    for downmix in ['mean', 'ffmpeg']:
        wave = _dataset(tmp_path, split='test', test_mode=True, downmix=downmix)[0]['waveform']
        rms[downmix] = wave[0, SR // 10:-SR // 10].square().mean().sqrt().item()
    assert rms['mean'] == pytest.approx(0.8 / np.sqrt(2), rel=0.02)
    assert rms['ffmpeg'] > 1.3 * rms['mean']
    with pytest.raises(ValueError, match='downmix'):
        _dataset(tmp_path, split='test', downmix='left')
