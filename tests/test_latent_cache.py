"""LatentCacheDataset: random access over memory-mapped shards, each mapped once per process."""
import json
import pickle
import random

import pytest
import torch
from torch.utils.data import DataLoader

import pavdit.data.latent_cache as latent_cache
from pavdit.data import sounding_video_collate
from pavdit.data.latent_cache import LatentCacheDataset, LatentCacheError, save_shard
from tests.conftest import run_tool

SHAPES = dict(video_t=(4, 4, 4), video_h=(4, 3, 4), video_w=(4, 3, 4),
              audio_t=(4, 2, 2), audio_h=(4, 3, 2), audio_w=(4, 3, 2))
SIZES = (5, 0, 7, 3, 6)  # an empty shard in between, as tools/cache_latents.py can write


def write_cache(root, sizes=SIZES):
    """A cache whose row i has label i and every latent filled from a seed of i; returns the
    items as written, in order."""
    items, shards = [], []
    for number, size in enumerate(sizes):
        rows = [dict(latents={k: torch.randn(shape, generator=torch.Generator().manual_seed(
                    len(items) + r)) for k, shape in SHAPES.items()},
                     label=len(items) + r, text=f'clip {len(items) + r}',
                     meta=dict(row=len(items) + r, events=[r] * (r % 3)))
                for r in range(size)]
        shard = dict(latents={k: (torch.stack([row['latents'][k] for row in rows]) if rows
                                  else torch.zeros(0, *shape)) for k, shape in SHAPES.items()},
                     label=torch.tensor([row['label'] for row in rows], dtype=torch.long),
                     text=[row['text'] for row in rows], meta=[row['meta'] for row in rows])
        name = f'shard_{number:05d}.pt'
        save_shard(shard, root / name)
        shards.append(dict(file=name, size=size))
        items += rows
    (root / 'index.json').write_text(json.dumps(dict(shards=shards, complete=True,
                                                     classes=['a', 'b'])))
    return items


def assert_same_item(got, want):
    assert got['label'] == want['label'] and got['text'] == want['text']
    assert got['meta'] == want['meta'] and set(got['latents']) == set(want['latents'])
    for key, value in want['latents'].items():
        assert torch.equal(got['latents'][key], value), key


@pytest.fixture
def counted_loads(monkeypatch):
    """Every shard load through the dataset, as a list of file names."""
    loads, load = [], latent_cache.load_checkpoint_file

    def counting(path, *args, **kwargs):
        loads.append(path.name)
        return load(path, *args, **kwargs)
    monkeypatch.setattr(latent_cache, 'load_checkpoint_file', counting)
    return loads


def test_shuffled_reads_equal_sequential_reads_and_map_each_shard_once(tmp_path, counted_loads):
    written = write_cache(tmp_path)
    sequential = LatentCacheDataset(str(tmp_path))
    assert len(sequential) == len(written) == sum(SIZES)
    in_order = [sequential[i] for i in range(len(sequential))]
    for got, want in zip(in_order, written):
        assert_same_item(got, want)

    counted_loads.clear()
    dataset = LatentCacheDataset(str(tmp_path))
    order = list(range(len(dataset)))
    random.Random(0).shuffle(order)
    for _ in range(3):  # three epochs of shuffled reads
        for i in order:
            assert_same_item(dataset[i], in_order[i])
    # Each non-empty shard was loaded (mapped) exactly once, though a shuffled order changes
    # shard on nearly every read; the empty shard is never needed.
    non_empty = [f'shard_{n:05d}.pt' for n, size in enumerate(SIZES) if size]
    assert sorted(counted_loads) == non_empty


def test_rows_are_copies_not_views_of_the_mapping(tmp_path):
    write_cache(tmp_path)
    dataset = LatentCacheDataset(str(tmp_path))
    first = dataset[2]['latents']['video_t']
    first.fill_(7.0)  # a consumer writing into its item must not change the dataset
    assert not torch.equal(dataset[2]['latents']['video_t'], first)
    assert first.untyped_storage().nbytes() == first.numel() * first.element_size()


def test_index_lookup_at_shard_edges(tmp_path):
    written = write_cache(tmp_path)
    dataset = LatentCacheDataset(str(tmp_path))
    for i in (0, 4, 5, 11, 12, 14, 15, len(written) - 1):  # first/last rows around each shard
        assert dataset[i]['label'] == i
    for bad in (-1, len(written)):
        with pytest.raises(IndexError):
            dataset[bad]


def test_pickled_dataset_leaves_the_maps_behind_and_maps_again(tmp_path, counted_loads):
    write_cache(tmp_path)
    dataset = LatentCacheDataset(str(tmp_path))
    [dataset[i] for i in range(len(dataset))]
    blob = pickle.dumps(dataset)
    assert len(blob) < 10_000  # no tensor data travels (a spawned worker maps for itself)
    clone = pickle.loads(blob)
    counted_loads.clear()
    assert_same_item(clone[20], dataset[20])
    assert counted_loads == ['shard_00004.pt']


def test_dataloader_workers_read_every_item_once(tmp_path):
    write_cache(tmp_path)
    dataset = LatentCacheDataset(str(tmp_path))
    dataset[0]  # the parent has mapped a shard before the workers fork
    loader = DataLoader(dataset, batch_size=4, shuffle=True, num_workers=2,
                        collate_fn=sounding_video_collate)
    labels = torch.cat([batch['label'] for batch in loader])
    assert sorted(labels.tolist()) == list(range(len(dataset)))


def test_legacy_format_shard_is_refused_with_the_rebuild_hint(tmp_path):
    write_cache(tmp_path, sizes=(2,))
    shard = torch.load(tmp_path / 'shard_00000.pt', weights_only=True)
    torch.save(shard, tmp_path / 'shard_00000.pt', _use_new_zipfile_serialization=False)
    dataset = LatentCacheDataset(str(tmp_path))
    with pytest.raises(LatentCacheError, match='shard_00000.pt.*rebuild the cache with '
                                               'tools/cache_latents.py'):
        dataset[0]


def test_shard_with_wrong_row_count_is_refused_when_first_mapped(tmp_path):
    write_cache(tmp_path, sizes=(3, 4))
    index = json.loads((tmp_path / 'index.json').read_text())
    index['shards'][1]['size'] = 5
    (tmp_path / 'index.json').write_text(json.dumps(index))
    dataset = LatentCacheDataset(str(tmp_path))
    assert dataset[2]['label'] == 2  # the first shard is fine
    with pytest.raises(LatentCacheError, match='shard_00001.pt.*index says 5 rows'):
        dataset[3]


def test_read_throughput_times_both_latent_cache_readers():
    out = run_tool('tools/data/read_throughput.py', '--latent-cache', '--planes', 'tiny',
                   '--shards', '3', '--shard-size', '8', '--clips', '24').stdout
    assert '3 shards x 8 items' in out and 'speed-up' in out
    assert 'one shard in memory (before):' in out and 'memory-mapped shards:' in out
    assert out.count('items/s DataLoader (2 workers') == 2
