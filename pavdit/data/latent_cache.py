"""A dataset of precomputed latent planes (PAV-DiT*: the generator trains without the encoder).

Cache layout (written by tools/cache_latents.py): ``<cache_dir>/shard_00000.pt`` ... each holding
``dict(latents={key: (N, C, h, w)}, label=(N,), text=[...], meta=[...])``, and ``index.json``
with the shard sizes and what produced them.

A corrupt or inconsistent cache (unparsable ``index.json``, a shard that is truncated, not a
shard, or holds a different number of rows than the index says) raises :class:`LatentCacheError`
naming the file, when the index is read or when the shard is first loaded.
"""
import json
from pathlib import Path

import torch
from torch.utils.data import Dataset

from pavdit.engine.compat import UnsafeCheckpointError, load_checkpoint_file
from pavdit.registry import DATASETS
from pavdit.utils.validation import describe

REBUILD = 'rebuild the cache with tools/cache_latents.py'


class LatentCacheError(ValueError):
    """A latent cache file is corrupt or inconsistent; the message names the file."""


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
        self.index = _read_index(index_file)
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
            path = self.cache_dir / self.index['shards'][number]['file']
            try:
                shard = load_checkpoint_file(path)
            except (UnsafeCheckpointError, FileNotFoundError):
                raise
            except (RuntimeError, EOFError, OSError, ValueError) as err:
                raise LatentCacheError(f'latent cache shard {path} cannot be read '
                                       f'({type(err).__name__}: {err}); '
                                       f'{REBUILD}') from err
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


def _read_index(index_file: Path) -> dict:
    """index.json -> dict(shards=[dict(file=name, size=int >= 0), ...], complete=bool, ...)."""
    try:
        index = json.loads(index_file.read_text())
    except (UnicodeDecodeError, ValueError) as err:
        raise LatentCacheError(f'{index_file} is not valid JSON ({err}); {REBUILD}') from err
    shards = index.get('shards') if isinstance(index, dict) else None
    if not isinstance(shards, list):
        raise LatentCacheError(f'{index_file} must hold a JSON object with a "shards" list, got '
                               f'{describe(index)}; {REBUILD}')
    for i, shard in enumerate(shards):
        ok = (isinstance(shard, dict) and isinstance(shard.get('file'), str)
              and Path(shard['file']).name == shard['file'] and shard['file'] not in ('', '.', '..')
              and isinstance(shard.get('size'), int) and not isinstance(shard['size'], bool)
              and shard['size'] >= 0)
        if not ok:
            raise LatentCacheError(f'{index_file}: shards[{i}] must be dict(file=<file name in '
                                   f'the cache folder>, size=<int >= 0>), got {shard!r}; '
                                   f'{REBUILD}')
    return index


def _check_shard(shard, path: Path, size: int) -> None:
    """A shard holds ``size`` rows: latents {key: (size, ...) tensor}, label, text and meta."""
    def fail(reason: str):
        raise LatentCacheError(f'latent cache shard {path}: {reason} (the index says {size} '
                               f'rows); {REBUILD}')
    if not isinstance(shard, dict) or not {'latents', 'label', 'text', 'meta'} <= set(shard):
        fail(f'expected a dict with latents, label, text and meta, got {describe(shard)}'
             + (f' with keys {sorted(map(str, shard))}' if isinstance(shard, dict) else ''))
    if not isinstance(shard['latents'], dict):
        fail(f'latents must be a dict of tensors, got {describe(shard["latents"])}')
    for key, value in shard['latents'].items():
        if not torch.is_tensor(value) or value.dim() < 1 or len(value) != size:
            fail(f'latents[{key!r}] must be a tensor with {size} rows, got {describe(value)}')
    for key in ('label', 'text', 'meta'):
        value = shard[key]
        if not hasattr(value, '__len__') or (torch.is_tensor(value) and value.dim() != 1) or (
                len(value) != size):
            fail(f'{key} must hold {size} rows, got {describe(value)}')
