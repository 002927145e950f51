"""A dataset of precomputed latent planes (PAV-DiT*: the generator trains without the encoder).

Cache layout (written by tools/cache_latents.py): ``<cache_dir>/shard_00000.pt`` ... each holding
``dict(latents={key: (N, C, h, w)}, label=(N,), text=[...], meta=[...])`` saved by ``torch.save``
(zip format), and ``index.json`` with the shard sizes and what produced them.

Random access: every shard is memory-mapped (``torch.load(mmap=True, weights_only=True)``) the
first time one of its rows is read and stays open, so a shuffled sampler never reloads a shard:
the tensors' pages are read from disk (or the page cache) on demand, and only ``text`` / ``meta``
are held in memory. The shard of a row is found by ``bisect`` over the shards' first rows.
Each process maps for itself: pickling the dataset (DataLoader workers under ``spawn``) leaves the
maps behind, forked workers share the parent's. Caches written by earlier versions of
tools/cache_latents.py are the same format and read as they are. A shard in torch's legacy
(pre-1.6, non-zip) format cannot be mapped and raises :class:`LatentCacheError`.

A corrupt or inconsistent cache (unparsable ``index.json``, a shard that is truncated, not a
shard, or holds a different number of rows than the index says) raises :class:`LatentCacheError`
naming the file, when the index is read or when the shard is first mapped. Rewrite a cache only
through tools/cache_latents.py (it replaces files atomically, so a running reader keeps its
mapping of the old file); truncating a mapped shard in place would fault its reader.
"""
import bisect
import itertools
import json
import os
from pathlib import Path

import torch
from torch.utils.data import Dataset

from pavdit.utils.checkpoint_io import UnsafeCheckpointError, load_checkpoint_file
from pavdit.registry import DATASETS
from pavdit.utils.validation import describe

REBUILD = 'rebuild the cache with tools/cache_latents.py'
ZIP_MAGIC = b'PK\x03\x04'  # torch.save's (mappable) zip format; the legacy format is a bare pickle


class LatentCacheError(ValueError):
    """A latent cache file is corrupt or inconsistent; the message names the file."""


def save_shard(shard: dict, path) -> None:
    """Write one shard atomically (temporary file + rename) in the format the dataset maps.

    ``shard`` is ``dict(latents={key: (N, ...) tensor}, label=(N,) long tensor, text=[N str],
    meta=[N dict])``; tensors should be contiguous and own their storage (``torch.cat`` output),
    else torch.save writes the whole underlying storage.
    """
    tmp = f'{path}.tmp'
    torch.save(shard, tmp, _use_new_zipfile_serialization=True)
    os.replace(tmp, path)


@DATASETS.register_module()
class LatentCacheDataset(Dataset):
    """Items ``dict(latents={key: (C, h, w)}, label=int, text=str, meta=dict)`` from a cache.

    Shards are memory-mapped lazily, each once per process, and kept open (see the module doc).
    Returned latents are copies of the row, never views of the mapping.
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
        self.offsets = [0, *itertools.accumulate(self.shard_sizes)][:-1]  # first row per shard
        self._length = sum(self.shard_sizes)
        self._shards = {}  # shard number -> its loaded (memory-mapped) dict, in this process

    def __len__(self) -> int:
        return self._length

    def __getstate__(self) -> dict:
        # Another process maps the shards itself: pickled mapped tensors would be copied whole.
        return {**self.__dict__, '_shards': {}}

    @property
    def metainfo(self) -> dict:
        return dict(classes=tuple(self.index.get('classes', ())))

    def _shard(self, number: int) -> dict:
        shard = self._shards.get(number)
        if shard is None:
            shard = self._shards[number] = self._map_shard(number)
        return shard

    def _map_shard(self, number: int) -> dict:
        path = self.cache_dir / self.index['shards'][number]['file']
        try:
            with open(path, 'rb') as f:
                magic = f.read(len(ZIP_MAGIC))
        except FileNotFoundError:
            raise FileNotFoundError(f'latent cache shard {path} does not exist; '
                                    f'{REBUILD}') from None
        except OSError as err:
            raise LatentCacheError(f'latent cache shard {path} cannot be read '
                                   f'({type(err).__name__}: {err}); {REBUILD}') from err
        if magic != ZIP_MAGIC:
            raise LatentCacheError(f'latent cache shard {path} is not a zip-format torch.save '
                                   f'file (a legacy-format shard cannot be memory-mapped, or the '
                                   f'file is not a shard); {REBUILD}')
        try:
            shard = load_checkpoint_file(path, map_location='cpu', mmap=True)
        except (UnsafeCheckpointError, FileNotFoundError):
            raise
        except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError, TypeError,
                AttributeError) as err:  # what the weights-only unpickler raises on bad bytes
            raise LatentCacheError(f'latent cache shard {path} cannot be read '
                                   f'({type(err).__name__}: {err}); '
                                   f'{REBUILD}') from err
        _check_shard(shard, path, self.shard_sizes[number])
        return shard

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self._length:
            raise IndexError(index)
        number = bisect.bisect_right(self.offsets, index) - 1  # the last shard starting <= index
        shard, row = self._shard(number), index - self.offsets[number]
        return dict(latents={k: v[row].clone() for k, v in shard['latents'].items()},
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
