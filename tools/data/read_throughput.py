"""Measure how fast a dataset delivers clips (clips/s) with 0 and 2 DataLoader workers.

    python tools/data/read_throughput.py --data-root DIR [--resolution 256] [--clips 64]
    python tools/data/read_throughput.py --synthetic [--resolution 256] [--clips 64]
"""
import argparse
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from torch.utils.data import DataLoader  # noqa: E402

from pavdit.data import SoundingVideoDataset, sounding_video_collate  # noqa: E402
from pavdit.data.synthetic import SyntheticSoundingVideo  # noqa: E402


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
    parser.add_argument('--resolution', type=int, default=256)
    parser.add_argument('--clips', type=int, default=64)
    args = parser.parse_args(argv)
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
