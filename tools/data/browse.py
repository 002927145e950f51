"""Look at a dataset: one PNG per item, its frame strip above its mel frames.

    python tools/data/browse.py --data-root DIR [--split train] --num 8 --out DIR
    python tools/data/browse.py --synthetic --num 6 --out DIR

Ground-truth events are outlined in red: from the synthetic set itself, or from the
``<split>/events.jsonl`` that tools/data/make_synthetic.py writes beside its files.
"""
import argparse
import json
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from tqdm import tqdm  # noqa: E402

from pavdit.data import SoundingVideoDataset  # noqa: E402
from pavdit.data.preview import save_preview_png  # noqa: E402
from pavdit.data.synthetic import SyntheticSoundingVideo  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Write a preview PNG per dataset item.')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--data-root', help='folder in the <root>/<split>/... layout')
    source.add_argument('--synthetic', action='store_true', help='the embedded synthetic set')
    parser.add_argument('--split', default='train')
    parser.add_argument('--num', type=int, default=8)
    parser.add_argument('--resolution', type=int, default=64)
    parser.add_argument('--out', required=True)
    return parser.parse_args(argv)


def recorded_events(data_root: str, split: str) -> dict:
    """{absolute path: event frames} from make_synthetic's events.jsonl, if there is one."""
    events_file = osp.join(data_root, split, 'events.jsonl')
    if not osp.isfile(events_file):
        return {}
    with open(events_file) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return {osp.join(data_root, split, r['path']): r['event_frames'] for r in rows}


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.synthetic:
        dataset, events = SyntheticSoundingVideo(num_items=args.num,
                                                 resolution=args.resolution), {}
    else:
        dataset = SoundingVideoDataset(args.data_root, split=args.split, test_mode=True,
                                       resolution=args.resolution)
        events = recorded_events(args.data_root, args.split)
    written = 0
    for index in tqdm(range(min(args.num, len(dataset))), desc='previews', unit='item'):
        item = dataset[index]
        if item is None:  # a bad file, dropped in test mode (warned about)
            continue
        meta = item['meta']
        shift = round(meta['clip_start'] * meta['fps'])
        frames = meta.get('event_frames', [e - shift for e in events.get(meta['path'], [])])
        save_preview_png(item['video'], item['audio'], osp.join(args.out, f'{index:04d}.png'),
                         title=f'{osp.basename(meta["path"])}: "{item["text"]}"',
                         event_frames=[f for f in frames if 0 <= f < item['video'].shape[1]])
        written += 1
    print(f'wrote {written} previews to {args.out}')


if __name__ == '__main__':
    main()
