"""SoundingVideoDataset: clips of .mp4 files with their audio, in the data contract of DESIGN §3.

Sources:
- a folder in the Landscape / AIST++ layout, ``<data_root>/<split>/**.mp4``; labels from
  sub-folders (optionally indexed by a class-map file) or from AIST++ file names;
- a manifest (``.csv`` with a header, or ``.jsonl``) for large sets such as AudioSet, one row per
  file: ``path`` (relative to ``data_root``) and optional ``label`` (class name), ``text``.

Clip sampling follows StyleGAN-V: an index picks a *video* (so every video is equally likely
whatever its length), then a clip start inside it: random in training, seeded by
``(seed, index)`` in ``test_mode`` so evaluation sees the same clips every time.

Bad files (empty, corrupt or truncated, not a video, no audio stream, silent audio, too short for
one clip) are skipped with one warning naming the file and the reason, and counted in
``bad_files``; if no usable file remains, construction fails with the reasons. Most are found when
probing, at construction; a file that probes fine but fails when read (silent, undecodable) is
found in ``__getitem__``: training returns the next usable item instead, test mode returns None
(the item is dropped, never replaced by a duplicate; see :class:`SoundingVideoDataset`).
"""
import csv
import json
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.logging import print_log
from torch import nn
from torch.utils.data import Dataset

from pavdit.data.frame_transforms import RESIZE_MODES, hflip
from pavdit.data.labels import class_names_from, load_class_map
from pavdit.data.media import DOWNMIXES, MediaError, MediaInfo, read_clip
from pavdit.data.probe_cache import probe_all
from pavdit.registry import DATASETS, TRANSFORMS

VIDEO_EXTENSIONS = ('.mp4', '.mkv', '.webm', '.avi', '.mov')
WARNING = 30


@DATASETS.register_module()
class SoundingVideoDataset(Dataset):
    """Clips of T frames with their frame-aligned audio.

    Args:
        data_root: dataset folder.
        split: sub-folder of ``data_root`` holding the files ('train', 'test').
        manifest: CSV/JSONL file listing the files instead of scanning ``<data_root>/<split>``.
        class_map: JSON ``{"class": index}``; fixes label indices (else sorted class names).
        label_source: 'auto', 'folder', 'aist' or 'none' (see :mod:`pavdit.data.labels`).
        num_frames: frames per clip T.
        fps: clip frame rate (frames are resampled from the native rate).
        sample_rate: audio rate (resampled, mono).
        resolution: (H, W) or an int for square frames.
        resize_mode: 'letterbox' (MM-Diffusion) or 'center_crop'.
        flip_prob: probability of a horizontal flip (training only).
        test_mode: deterministic clips, no flip.
        seed: seed of the evaluation clips.
        audio: ``VideoLikeAudio`` config or module (sample_rate and fps are filled in).
        metadata_cache: JSON file caching probed metadata (default ``<data_root>/.pavdit_probe.json``;
            None disables caching).
        silence_threshold: a file whose audio never exceeds this amplitude counts as silent.
        max_retries: training only: how many other items to try when an item's file turns out
            bad.
        downmix: how multi-channel audio becomes mono (see :func:`read_clip`): 'mean' (default)
            or 'ffmpeg'.

    Item: ``video`` (3, T, H, W) in [-1, 1]; ``audio`` (1, T, n_mels, Wa) in [-1, 1];
    ``waveform`` (1, T * sample_rate / fps) in [-1, 1]; ``label`` int (-1 if none); ``text`` str;
    ``meta`` dict(path, clip_start, fps, sample_rate, index).

    A file that probes fine but fails when read (``MediaError``: silent or undecodable audio,
    corrupt frames) is warned about once and added to ``bad_files``. Then:

    - training: the next usable item is returned instead, so one bad file never stops a run;
    - ``test_mode``: the item is **None**. Evaluation sets must hold each clip once: returning a
      neighbour would count that clip twice (FVD real sets, test metrics). Direct callers skip
      None items; :func:`~pavdit.data.collate.sounding_video_collate` drops them, so a DataLoader
      batch can be smaller than ``batch_size``, or empty (``{}``) when every item was dropped.
    """

    def __init__(self, data_root: str, split: str = 'train', manifest: Optional[str] = None,
                 class_map: Optional[str] = None, label_source: str = 'auto',
                 num_frames: int = 16, fps: float = 10, sample_rate: int = 16000,
                 resolution: Union[int, Sequence[int]] = 256, resize_mode: str = 'letterbox',
                 flip_prob: float = 0.0, test_mode: bool = False, seed: int = 0,
                 audio: Union[dict, nn.Module] = dict(type='VideoLikeAudio'),
                 metadata_cache: Optional[str] = 'auto', silence_threshold: float = 1e-4,
                 max_retries: int = 20, downmix: str = 'mean'):
        if resize_mode not in RESIZE_MODES:
            raise ValueError(f'resize_mode must be one of {sorted(RESIZE_MODES)}, '
                             f'got {resize_mode!r}')
        self.data_root = Path(data_root)
        if not self.data_root.is_dir():
            raise FileNotFoundError(f'data_root {data_root} is not a folder (config key '
                                    f'train_dataloader.dataset.data_root or similar)')
        self.split, self.num_frames, self.fps = split, num_frames, fps
        self.sample_rate, self.seed, self.test_mode = sample_rate, seed, test_mode
        self.resolution = (resolution, resolution) if isinstance(resolution, int) else tuple(
            resolution)
        self.resize = RESIZE_MODES[resize_mode]
        self.flip_prob = 0.0 if test_mode else flip_prob
        self.silence_threshold, self.max_retries = silence_threshold, max_retries
        if downmix not in DOWNMIXES:
            raise ValueError(f'downmix must be one of {DOWNMIXES}, got {downmix!r}')
        self.downmix = downmix
        self.audio = audio if isinstance(audio, nn.Module) else TRANSFORMS.build(
            audio, default_args=dict(sample_rate=sample_rate, fps=fps))
        if metadata_cache == 'auto':
            metadata_cache = self.data_root / '.pavdit_probe.json'
        self.bad_files: Dict[str, str] = {}
        self.items = self._index(manifest, class_map, label_source, metadata_cache)

    # -- index -----------------------------------------------------------------------------------
    def _index(self, manifest, class_map, label_source, metadata_cache) -> List[dict]:
        rows = self._read_manifest(manifest) if manifest else self._scan_split(label_source,
                                                                                class_map)
        names = sorted({r['class_name'] for r in rows if r['class_name'] is not None})
        self.classes = load_class_map(class_map) if class_map else names
        infos = probe_all([r['path'] for r in rows], metadata_cache)
        clip_seconds = self.num_frames / self.fps
        items = []
        for row in rows:
            info = infos[row['path']]
            if isinstance(info, MediaError):
                self._mark_bad(row['path'], str(info).split(': ', 1)[-1])
            elif not info.has_audio:
                self._mark_bad(row['path'], 'no audio stream')
            elif info.duration + 0.5 / info.fps < clip_seconds:
                self._mark_bad(row['path'], f'too short for one clip ({info.duration:.2f} s < '
                                            f'{clip_seconds:.2f} s)')
            else:
                label = (self.classes.index(row['class_name'])
                         if row['class_name'] in self.classes else -1)
                text = row.get('text') or (f'a video of {row["class_name"]}'
                                           if row['class_name'] else '')
                items.append(dict(path=row['path'], info=info, label=label, text=text))
        if not items:
            reasons = Counter(self.bad_files.values()).most_common(5)
            raise RuntimeError(f'{self.__class__.__name__}: no usable video in {self.data_root} '
                               f'(split {self.split!r}, {len(rows)} files found; reasons: '
                               f'{reasons})')
        if self.bad_files:
            print_log(f'{self.__class__.__name__}: skipped {len(self.bad_files)} of {len(rows)} '
                      f'files in {self.data_root}', logger='current', level=WARNING)
        return items

    def _scan_split(self, label_source, class_map) -> List[dict]:
        split_dir = self.data_root / self.split
        if not split_dir.is_dir():
            raise FileNotFoundError(f'{split_dir} does not exist: expected <data_root>/<split>/ '
                                    f'with video files (or set manifest=)')
        files = sorted(p for p in split_dir.rglob('*') if p.suffix.lower() in VIDEO_EXTENSIONS)
        relative = [str(p.relative_to(split_dir)) for p in files]
        names = class_names_from(relative, label_source, class_map)
        return [dict(path=str(p), class_name=names[r]) for p, r in zip(files, relative)]

    def _read_manifest(self, manifest) -> List[dict]:
        manifest = Path(manifest)
        if not manifest.is_absolute():
            manifest = self.data_root / manifest
        if not manifest.is_file():
            raise FileNotFoundError(f'manifest {manifest} does not exist')
        if manifest.suffix not in ('.jsonl', '.csv'):
            raise ValueError(f'manifest {manifest}: expected a .csv or .jsonl file')
        try:
            if manifest.suffix == '.jsonl':
                rows = []
                for number, line in enumerate(manifest.read_text().splitlines(), 1):
                    if line.strip():
                        try:
                            rows.append(json.loads(line))
                        except ValueError as err:
                            raise ValueError(f'manifest {manifest}, line {number}: not a JSON '
                                             f'object ({err})') from None
            else:
                with manifest.open(newline='') as f:
                    rows = list(csv.DictReader(f))
        except (UnicodeDecodeError, csv.Error) as err:
            raise ValueError(f'manifest {manifest}: not a readable text manifest '
                             f'({err})') from None
        if not rows or not isinstance(rows[0], dict) or 'path' not in rows[0]:
            raise ValueError(f'manifest {manifest}: needs a "path" column/key')
        for number, row in enumerate(rows, 1):
            if not isinstance(row, dict) or not isinstance(row.get('path'), str) or (
                    not row['path']):
                raise ValueError(f'manifest {manifest}, row {number}: needs a "path" (a file '
                                 f'path relative to data_root), got {row!r}')
        return [dict(path=str(self.data_root / r['path']), class_name=r.get('label') or None,
                     text=r.get('text', '')) for r in rows]

    def _mark_bad(self, path: str, reason: str) -> None:
        if path not in self.bad_files:
            self.bad_files[path] = reason
            print_log(f'skipping {path}: {reason}', logger='current', level=WARNING)

    @property
    def metainfo(self) -> dict:
        return dict(classes=tuple(self.classes))

    # -- items -----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Optional[dict]:
        """The item at ``index``; in test mode None when its file turns out bad (see the class
        docstring), in training the next usable item instead."""
        if self.test_mode:
            if not -len(self.items) <= index < len(self.items):
                raise IndexError(f'index {index} out of range for {len(self.items)} items')
            index %= len(self.items)
            item = self.items[index]
            if item['path'] in self.bad_files:
                return None
            try:
                return self._load(item, index)
            except MediaError as err:
                self._mark_bad(item['path'], str(err).split(': ', 1)[-1])
                return None
        # A file can pass probing and still fail to decode (truncated, silent): skip it and use
        # the next item, so one bad file never stops a training run.
        for attempt in range(self.max_retries + 1):
            item = self.items[(index + attempt) % len(self.items)]
            if item['path'] in self.bad_files:
                continue
            try:
                return self._load(item, (index + attempt) % len(self.items))
            except MediaError as err:
                self._mark_bad(item['path'], str(err).split(': ', 1)[-1])
        raise RuntimeError(f'{self.max_retries + 1} consecutive bad files from index {index}; '
                           f'see the warnings above')

    def clip_start(self, info: MediaInfo, index: int) -> float:
        """Start (s) of the clip: uniform over the video, seeded by (seed, index) in test mode."""
        latest = max(0.0, info.duration - self.num_frames / self.fps)
        if self.test_mode:
            u = np.random.default_rng([self.seed, index]).uniform()
        else:
            u = torch.rand(()).item()  # DataLoader workers get distinct, seeded torch streams
        # Snap to the clip frame grid so frames and audio columns align exactly.
        return float(np.floor(u * latest * self.fps) / self.fps)

    def _load(self, item: dict, index: int) -> dict:
        info = item['info']
        start = self.clip_start(info, index)
        frames, waveform = read_clip(item['path'], start, self.num_frames, self.fps,
                                     self.sample_rate, info=info,
                                     silence_threshold=self.silence_threshold,
                                     downmix=self.downmix)
        frames = self.resize(frames, self.resolution)
        if self.flip_prob and torch.rand(()).item() < self.flip_prob:
            frames = hflip(frames)
        video = torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 127.5 - 1.0
        waveform = torch.from_numpy(waveform)
        return dict(video=video, audio=self.audio(waveform), waveform=waveform,
                    label=item['label'], text=item['text'],
                    meta=dict(path=item['path'], clip_start=start, fps=self.fps,
                              sample_rate=self.sample_rate, index=index))
