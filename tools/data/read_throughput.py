"""Measure how fast a dataset delivers clips (clips/s) with 0 and 2 DataLoader workers.

    python tools/data/read_throughput.py --data-root DIR [--resolution 256] [--clips 64]
    python tools/data/read_throughput.py --synthetic [--resolution 256] [--clips 64]
    python tools/data/read_throughput.py --latent-cache [--shards 8] [--shard-size 256]
        [--planes paper|tiny] [--clips 512]

``--latent-cache`` writes a synthetic latent cache (random planes of the preset's sizes, in the
format of tools/cache_latents.py) to a temporary folder and reads it in a shuffled order with
LatentCacheDataset (shards memory-mapped once) and with the behaviour it replaced (one shard held
in memory, the whole shard loaded again whenever a read moves to another shard).
"""
import argparse
import json
import os.path as osp
import sys
import tempfile
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from pavdit.data import SoundingVideoDataset, sounding_video_collate  # noqa: E402
from pavdit.data.latent_cache import LatentCacheDataset, _check_shard, save_shard  # noqa: E402
from pavdit.data.synthetic import SyntheticSoundingVideo  # noqa: E402
from pavdit.utils.checkpoint_io import load_checkpoint_file  # noqa: E402

# Latent plane shapes (C, h, w) per item. paper: configs/_base_/models/mdsa.py at 256x256x16 video
# and 64x16 mel frames (video patch 8 -> 32x32 planes, audio patch 4 -> 16x4), 4 channels:
# 9728 values, 38 KiB per item. tiny: 32x32 video as in configs/mdsa/mdsa_synthetic_tiny.py.
PLANES = dict(
    paper=dict(video_t=(4, 32, 32), video_h=(4, 16, 32), video_w=(4, 16, 32),
               audio_t=(4, 16, 4), audio_h=(4, 16, 4), audio_w=(4, 16, 16)),
    tiny=dict(video_t=(4, 4, 4), video_h=(4, 16, 4), video_w=(4, 16, 4),
              audio_t=(4, 8, 2), audio_h=(4, 16, 2), audio_w=(4, 16, 8)))


class OneShardLatentCache(LatentCacheDataset):
    """The reader before memory-mapping: keeps the last shard, loads a whole shard (every tensor
    read into memory) whenever a read needs another one, finds the shard by a linear scan."""

    def __init__(self, cache_dir: str):
        super().__init__(cache_dir)
        self._loaded = (None, None)

    def _shard(self, number: int) -> dict:
        if self._loaded[0] != number:
            path = self.cache_dir / self.index['shards'][number]['file']
            shard = load_checkpoint_file(path)
            _check_shard(shard, path, self.shard_sizes[number])
            self._loaded = (number, shard)
        return self._loaded[1]

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(index)
        number = max(i for i, offset in enumerate(self.offsets) if offset <= index)
        shard, row = self._shard(number), index - self.offsets[number]
        return dict(latents={k: v[row] for k, v in shard['latents'].items()},
                    label=int(shard['label'][row]), text=shard['text'][row],
                    meta=shard['meta'][row])


def write_synthetic_cache(folder: str, shards: int, shard_size: int, planes: dict) -> None:
    generator = torch.Generator().manual_seed(0)
    index = dict(recipe=dict(synthetic=True), shards=[], complete=True, classes=['synthetic'])
    for number in range(shards):
        first = number * shard_size
        shard = dict(latents={k: torch.randn(shard_size, *shape, generator=generator)
                              for k, shape in planes.items()},
                     label=torch.zeros(shard_size, dtype=torch.long),
                     text=[f'synthetic clip {first + i}' for i in range(shard_size)],
                     meta=[dict(index=first + i) for i in range(shard_size)])
        name = f'shard_{number:05d}.pt'
        save_shard(shard, osp.join(folder, name))
        index['shards'].append(dict(file=name, size=shard_size))
    with open(osp.join(folder, 'index.json'), 'w') as f:
        json.dump(index, f)


def shuffled_items_per_second(dataset, num_items: int) -> float:
    """Read ``num_items`` items in a shuffled order straight from the dataset (no DataLoader)."""
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0)).tolist()
    order = (order * (num_items // len(order) + 1))[:num_items]
    start = time.perf_counter()
    for i in order:
        dataset[i]
    return num_items / (time.perf_counter() - start)


def latent_cache_throughput(args) -> None:
    planes = PLANES[args.planes]
    values = sum(torch.Size(shape).numel() for shape in planes.values())
    with tempfile.TemporaryDirectory(prefix='latent_cache_throughput_') as folder:
        write_synthetic_cache(folder, args.shards, args.shard_size, planes)
        print(f'synthetic latent cache: {args.shards} shards x {args.shard_size} items, '
              f'{args.planes} planes ({values} values, {values * 4 / 1024:.0f} KiB per item), '
              f'{args.clips} shuffled reads')
        rates = {}
        for name, reader in (('one shard in memory (before)', OneShardLatentCache),
                             ('memory-mapped shards', LatentCacheDataset)):
            rates[name] = shuffled_items_per_second(reader(folder), args.clips)
            loader = clips_per_second(reader(folder), args.clips, workers=2)
            print(f'{name}: {rates[name]:.0f} items/s direct, '
                  f'{loader:.0f} items/s DataLoader (2 workers, batch 4)')
        before, after = rates.values()
        print(f'speed-up (direct): {after / before:.1f}x')


def clips_per_second(dataset, num_clips: int, workers: int, batch_size: int = 4) -> float:
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, shuffle=True,
                        collate_fn=sounding_video_collate)
    seen, start = 0, None
    while seen < num_clips:
        for batch in loader:
            if start is None:  # the first batch pays for worker start-up; time the rest
                start = time.perf_counter()
                continue
            seen += len(batch['label'])
            if seen >= num_clips:
                break
    return seen / (time.perf_counter() - start)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description='Dataset read throughput.')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--data-root')
    source.add_argument('--synthetic', action='store_true')
    source.add_argument('--latent-cache', action='store_true',
                        help='time LatentCacheDataset on a synthetic cache (see the module doc)')
    parser.add_argument('--resolution', type=int, default=256)
    parser.add_argument('--clips', type=int, default=None,
                        help='clips to read (default 64; 512 with --latent-cache)')
    parser.add_argument('--shards', type=int, default=8, help='--latent-cache: shard count')
    parser.add_argument('--shard-size', type=int, default=256, help='--latent-cache: items each')
    parser.add_argument('--planes', choices=sorted(PLANES), default='paper',
                        help='--latent-cache: latent plane sizes')
    args = parser.parse_args(argv)
    if args.latent_cache:
        args.clips = args.clips or 512
        return latent_cache_throughput(args)
    args.clips = args.clips or 64
    if args.synthetic:
        dataset = SyntheticSoundingVideo(num_items=max(args.clips, 64), resolution=args.resolution)
    else:
        dataset = SoundingVideoDataset(args.data_root, resolution=args.resolution)
    for workers in (0, 2):
        rate = clips_per_second(dataset, args.clips, workers)
        print(f'{type(dataset).__name__} {args.resolution}x{args.resolution}, '
              f'{workers} workers: {rate:.1f} clips/s')


if __name__ == '__main__':
    main()
