"""A dataset of precomputed latent planes (PAV-DiT*: the generator trains without the encoder).

Cache layout (written by tools/cache_latents.py): ``<cache_dir>/shard_00000.pt`` ... each holding
``dict(latents={key: (N, C, h, w)}, label=(N,), text=[...], meta=[...])``, and ``index.json``
with the shard sizes and what produced them.
"""
import json
from pathlib import Path

import torch
from torch.utils.data import Dataset

from pavdit.engine.compat import load_checkpoint_file
from pavdit.registry import DATASETS


@DATASETS.register_module()
class LatentCacheDataset(Dataset):
    """Items ``dict(latents={key: (C, h, w)}, label=int, text=str, meta=dict)`` from a cache.

    Shards are loaded lazily and the most recent one is kept, so memory holds one shard at a time.
    """

    def __init__(self, cache_dir: str):
        self.cache_dir = Path(cache_dir)
        index_file = self.cache_dir / 'index.json'
        if not index_file.is_file():
            raise FileNotFoundError(f'{index_file} not found: cache_dir={cache_dir} is not a '
                                    f'latent cache (make one with tools/cache_latents.py)')
        self.index = json.loads(index_file.read_text())
        self.shard_sizes = [shard['size'] for shard in self.index['shards']]
        if not self.index.get('complete'):
            raise RuntimeError(f'latent cache {cache_dir} is incomplete; run tools/cache_latents.py '
                               f'again with the same arguments to finish it')
        self.offsets = [sum(self.shard_sizes[:i]) for i in range(len(self.shard_sizes))]
        self._loaded = (None, None)

    def __len__(self) -> int:
        return sum(self.shard_sizes)

    @property
    def metainfo(self) -> dict:
        return dict(classes=tuple(self.index.get('classes', ())))

    def _shard(self, number: int) -> dict:
        if self._loaded[0] != number:
            name = self.index['shards'][number]['file']
            self._loaded = (number, load_checkpoint_file(self.cache_dir / name))
        return self._loaded[1]

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(index)
        number = max(i for i, offset in enumerate(self.offsets) if offset <= index)
        shard, row = self._shard(number), index - self.offsets[number]
        return dict(latents={k: v[row] for k, v in shard['latents'].items()},
                    label=int(shard['label'][row]), text=shard['text'][row],
                    meta=shard['meta'][row])
