"""Encode a dataset once with a trained autoencoder, for PAV-DiT* (generator-only training).

    python tools/cache_latents.py CONFIG AE_CHECKPOINT --out DIR [--shard-size 256]
        [--batch-size 8] [--split train|val] [--device cuda]

CONFIG provides the dataset (its ``<split>_dataloader.dataset``; real videos are read in their
deterministic evaluation clips). Latents (posterior means) go to ``DIR/shard_*.pt``, each written
atomically in torch.save's zip format, which LatentCacheDataset memory-maps for random access
(pavdit/data/latent_cache.py); ``DIR/index.json`` records progress, so an interrupted run started
again with the same arguments continues after the last complete shard. Train on the cache with
``dict(type='LatentCacheDataset', cache_dir=DIR)``.
"""
import argparse
import inspect
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from tqdm import tqdm  # noqa: E402

from pavdit.data import read_items, sounding_video_collate  # noqa: E402
from pavdit.data.latent_cache import save_shard  # noqa: E402
from pavdit.engine.checkpoints import load_model  # noqa: E402
from pavdit.registry import DATASETS  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Cache autoencoder latents of a dataset.')
    parser.add_argument('config', help='config whose dataloader gives the dataset')
    parser.add_argument('checkpoint', help='MDSA checkpoint written by tools/train.py')
    parser.add_argument('--out', required=True)
    parser.add_argument('--split', choices=['train', 'val'], default='train')
    parser.add_argument('--shard-size', type=int, default=256)
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    return parser.parse_args(argv)


def build_dataset(cfg: Config, split: str):
    dataset_cfg = cfg[f'{split}_dataloader'].dataset.copy()
    dataset_class = DATASETS.get(dataset_cfg['type'])
    if 'test_mode' in inspect.signature(dataset_class).parameters:
        dataset_cfg['test_mode'] = True  # the same clip of each video every time
    return DATASETS.build(dataset_cfg)


def save_atomically_json(obj, path: str) -> None:
    tmp = f'{path}.tmp'
    with open(tmp, 'w') as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    init_default_scope(cfg.get('default_scope', 'pavdit'))
    model, _ = load_model(args.checkpoint, args.device)
    dataset = build_dataset(cfg, args.split)
    os.makedirs(args.out, exist_ok=True)
    index_file = osp.join(args.out, 'index.json')
    recipe = dict(config=osp.abspath(args.config), checkpoint=osp.abspath(args.checkpoint),
                  split=args.split, items=len(dataset), shard_size=args.shard_size)
    index = dict(recipe=recipe, shards=[], complete=False,
                 classes=list(getattr(dataset, 'metainfo', {}).get('classes', ())))
    if osp.isfile(index_file):
        previous = json.load(open(index_file))
        if previous['recipe'] != recipe:
            raise RuntimeError(f'{args.out} holds a cache made with other arguments '
                               f'({previous["recipe"]}); use another --out')
        index = previous
    starts = range(len(index['shards']) * args.shard_size, len(dataset), args.shard_size)
    progress = tqdm(total=len(dataset), initial=starts.start if starts else len(dataset),
                    desc='caching latents', unit='clip')
    for start in starts:
        rows = list(range(start, min(start + args.shard_size, len(dataset))))
        shard = dict(latents={}, label=[], text=[], meta=[])
        for first in range(0, len(rows), args.batch_size):
            chunk = rows[first:first + args.batch_size]
            progress.update(len(chunk))
            items = read_items(dataset, chunk)
            if not items:
                continue
            batch = model.data_preprocessor(sounding_video_collate(items))
            with torch.no_grad():
                latents = model.encode(batch['video'], batch['audio'])
            for key, value in latents.items():
                shard['latents'].setdefault(key, []).append(value.cpu())
            shard['label'] += [item['label'] for item in items]
            shard['text'] += [item['text'] for item in items]
            shard['meta'] += [item['meta'] for item in items]
        shard['latents'] = {k: torch.cat(v) for k, v in shard['latents'].items()}
        shard['label'] = torch.tensor(shard['label'], dtype=torch.long)
        name = f'shard_{len(index["shards"]):05d}.pt'
        save_shard(shard, osp.join(args.out, name))
        index['shards'].append(dict(file=name, size=len(shard['label'])))
        save_atomically_json(index, index_file)
    index['complete'] = True
    save_atomically_json(index, index_file)
    progress.close()
    cached = sum(shard['size'] for shard in index['shards'])
    print(f'cached {cached} clips in {len(index["shards"])} shards under {args.out}'
          + (f' ({len(dataset) - cached} dropped as bad files)' if cached < len(dataset) else ''))


if __name__ == '__main__':
    main()
