"""Write the embedded synthetic sounding-video set to disk as .mp4 files.

    python tools/data/make_synthetic.py --out DIR --num N [--split train] [--resolution 64]
        [--frames 16] [--fps 10] [--sample-rate 16000] [--seed 0]

Layout (readable by SoundingVideoDataset): ``DIR/<split>/<class name>/<index>.mp4``, the class map
``DIR/class_map.json`` ({"class name": label}) and the ground-truth events
``DIR/<split>/events.jsonl`` (one row per file: path, class, event_frames).
"""
import argparse
import json
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from tqdm import tqdm  # noqa: E402

from pavdit.data.media import write_mp4  # noqa: E402
from pavdit.data.synthetic import CLASSES, SyntheticSoundingVideo  # noqa: E402
from pavdit.data.preview import to_uint8_frames  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Write the synthetic sounding-video set.')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--num', type=int, required=True, help='number of clips')
    parser.add_argument('--split', default='train')
    parser.add_argument('--resolution', type=int, nargs='+', default=[64],
                        help='H [W] of the frames')
    parser.add_argument('--frames', type=int, default=16, help='frames per file')
    parser.add_argument('--fps', type=float, default=10)
    parser.add_argument('--sample-rate', type=int, default=16000)
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    resolution = tuple(args.resolution * 2)[:2] if len(args.resolution) == 1 else tuple(
        args.resolution)
    dataset = SyntheticSoundingVideo(num_items=args.num, num_frames=args.frames,
                                     resolution=resolution, fps=args.fps,
                                     sample_rate=args.sample_rate, seed=args.seed)
    split_dir = osp.join(args.out, args.split)
    events = []
    for index in tqdm(range(args.num), desc='writing synthetic clips', unit='clip'):
        item = dataset[index]
        name = item['meta']['class_name']
        path = osp.join(split_dir, name, f'{index:05d}.mp4')
        write_mp4(path, to_uint8_frames(item['video']), args.fps, item['waveform'][0].numpy(),
                  args.sample_rate)
        events.append(dict(path=osp.relpath(path, split_dir), class_name=name,
                           event_frames=item['meta']['event_frames']))
    with open(osp.join(args.out, 'class_map.json'), 'w') as f:
        json.dump({name: label for label, name in enumerate(CLASSES)}, f, indent=1)
    with open(osp.join(split_dir, 'events.jsonl'), 'w') as f:
        f.writelines(json.dumps(row) + '\n' for row in events)
    print(f'wrote {args.num} clips to {split_dir} and the class map {args.out}/class_map.json')


if __name__ == '__main__':
    main()
